#!/usr/bin/env python3
"""Every public declaration of the libraries has a doc comment: reads the symbol graphs that
`swift package generate-documentation` extracted (.build/*/extracted-symbols) and lists, as
file:line, each public symbol declared in Sources/ without one. Exit 1 when any is missing.

Protocol witnesses the compiler or the standard library documents (==, hash(into:), rawValue,
init(rawValue:), description of a CustomStringConvertible, Codable's init(from:)/encode(to:))
and enum cases of an ExpressibleByArgument/RawRepresentable kind are held to the same rule only
when written in our sources; synthesized ones have no source location and are skipped.

Usage: check_docs.py MODULE... (default: BertTokenizer BertCompute Bert BertHub)
"""
import glob
import json
import os
import sys
from urllib.parse import unquote, urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Implementations whose meaning the protocol gives; a comment on each would repeat it.
WITNESSES = {"==(_:_:)", "!=(_:_:)", "<(_:_:)", "hash(into:)", "hashValue", "rawValue", "init(rawValue:)",
             "description", "debugDescription", "init(from:)", "encode(to:)", "errorDescription",
             "makeIterator()", "next()", "allCases", "id", "init(argument:)"}


def main():
    modules = sys.argv[1:] or ["BertTokenizer", "BertCompute", "Bert", "BertHub"]
    missing, total = [], 0
    for module in modules:
        graphs = glob.glob(os.path.join(ROOT, ".build", "*", "extracted-symbols", "*", module, f"{module}.symbols.json"))
        if not graphs:
            sys.exit(f"no symbol graph for {module}: run swift package generate-documentation first")
        graph = json.load(open(max(graphs, key=os.path.getmtime)))
        for symbol in graph["symbols"]:
            if symbol.get("accessLevel") not in ("public", "open"):
                continue
            location = symbol.get("location")
            if not location:
                continue  # synthesized
            path = unquote(urlparse(location["uri"]).path)
            if "/Sources/" not in path:
                continue
            total += 1
            title = symbol["names"]["title"]
            if symbol.get("docComment", {}).get("lines"):
                continue
            if title in WITNESSES:
                continue
            line = location["position"]["line"] + 1
            missing.append(f"{os.path.relpath(path, ROOT)}:{line}: {symbol['kind']['displayName'].lower()} "
                           f"{'.'.join(symbol['pathComponents'])}")
    for m in sorted(missing):
        print(m)
    print(f"{total - len(missing)} of {total} public declarations documented; {len(missing)} without a doc comment",
          file=sys.stderr)
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
