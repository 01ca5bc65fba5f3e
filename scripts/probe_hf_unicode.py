#!/usr/bin/env python3
"""Probe Hugging Face `tokenizers` for its per-character Unicode behaviour.

BertNormalizer and BertPreTokenizer classify characters with Unicode tables that are older than
Swift's (e.g. punctuation added after Unicode 9 is not split), and strip accents with their own
NFD tables. To agree exactly on every platform we do not use the host's Unicode data: this
script asks `tokenizers` how it treats each code point and writes the answer as a compact table
that Sources/BertTokenizer/UnicodeTables.swift embeds.

Output: Sources/BertTokenizer/HFUnicodeData.swift, a Swift string literal of lines (hex code points):
  R a-b        clean_text removes the range (controls, format, private use, NUL, U+FFFD)
  W a-b        clean_text maps the range to a space
  C a-b        handle_chinese_chars puts spaces around the range
  S a-b        the pre-tokenizer splits on the range as whitespace
  P a-b        the pre-tokenizer makes each character of the range its own word (punctuation)
  M a-b        strip_accents removes the range (combining marks)
  L c x y ...  lowercase maps c to x y ...
  N c x y ...  NFD decomposes c into x y ... (Hangul syllables excepted: their decomposition is
               algorithmic and computed in code)
  K c k        c has canonical combining class k in NFD's canonical reordering
strip_accents is NFD (decompose, then stably sort each run of non-zero-class characters by class)
followed by removing the M characters; the characters move but the original spans stay in place,
which is why the classes are needed: a kept mark can take the span of another.
Every code point not listed maps to itself and is a word character. Checked facts, asserted below:
strip_accents followed by lowercase equals the composition of the two maps (so no combined table
is needed), and Hangul syllables decompose by the Unicode algorithm.

Usage: python3 scripts/probe_hf_unicode.py > Sources/BertTokenizer/HFUnicodeData.swift
"""
import sys
import tokenizers
import unicodedata
from tokenizers.normalizers import NFD, BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

def ranges(points):
    out = []
    for p in points:
        if out and out[-1][1] == p - 1:
            out[-1][1] = p
        else:
            out.append([p, p])
    return out

def main():
    clean = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    lower = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    strip = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    both = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=True)
    pre = BertPreTokenizer()
    chinese = BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    removed, spaced, split_ws, punct, cjk, marks = [], [], [], [], [], []
    lower_map, strip_map, nfd_map, ccc = {}, {}, {}, {}
    nfd = NFD()
    both_check = []
    # Planes 4-13 are unassigned: probed by samples below and checked uniform.
    points = list(range(0, 0x40000)) + list(range(0xE0000, 0x110000))
    for cp in points:
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        n = clean.normalize_str("a" + c + "b")
        if n == "ab":
            removed.append(cp)
        elif n == "a b":
            spaced.append(cp)
        elif n != "a" + c + "b":
            sys.exit(f"unexpected clean_text result for U+{cp:04X}: {n!r}")
        n = chinese.normalize_str("a" + c + "b")
        if n == "a " + c + " b":
            cjk.append(cp)
        elif n != "a" + c + "b":
            sys.exit(f"unexpected handle_chinese_chars result for U+{cp:04X}: {n!r}")
        pieces = [p for p, _ in pre.pre_tokenize_str("a" + c + "b")]
        if pieces == ["a", "b"]:
            split_ws.append(cp)
        elif pieces == ["a", c, "b"]:
            punct.append(cp)
        elif pieces != ["a" + c + "b"]:
            sys.exit(f"unexpected pre-tokenization for U+{cp:04X}: {pieces!r}")
        low = lower.normalize_str(c)
        if low != c:
            lower_map[cp] = [ord(x) for x in low]
        st = strip.normalize_str(c)
        if st == "":
            marks.append(cp)
        elif st != c:
            strip_map[cp] = [ord(x) for x in st]
        d = nfd.normalize_str(c)
        if d != c:
            nfd_map[cp] = [ord(x) for x in d]
        # Canonical reordering moves c before U+0345 (class 240) exactly when its class is
        # between 1 and 239; the class itself is Unicode's, checked against the behaviour.
        if cp == 0x345:
            ccc[cp] = 240
        elif nfd.normalize_str("a\u0345" + c) == "a" + c + "\u0345" and len(d) == 1:
            k = unicodedata.combining(c)
            if not 0 < k < 240:
                sys.exit(f"U+{cp:04X} reorders but Python gives class {k}")
            ccc[cp] = k
        if st != c or low != c:
            both_check.append((cp, st, both.normalize_str(c)))
    for cp, st, b in both_check:
        if b != "".join(chr(y) for x in st for y in lower_map.get(ord(x), [ord(x)])):
            sys.exit(f"strip+lowercase is not the composition of the maps at U+{cp:04X}")
    for cp in range(0xAC00, 0xD7A4):
        if strip_map.pop(cp) != hangul(cp) or nfd_map.pop(cp) != hangul(cp):
            sys.exit(f"Hangul U+{cp:04X} does not decompose algorithmically")
    mark_set = set(marks)
    for cp, d in nfd_map.items():
        kept = [x for x in d if x not in mark_set]
        if kept != strip_map.get(cp, [cp]) and not (kept == [] and cp in mark_set):
            sys.exit(f"strip_accents of U+{cp:04X} is not NFD without the marks")
    # Classes relative to each other: a pair of marks of different classes is put in class order.
    items = sorted(ccc.items())
    for (a, ka), (b, kb) in zip(items, items[1:]):
        got = nfd.normalize_str("a" + chr(b) + chr(a))
        want = "a" + (chr(a) + chr(b) if ka < kb else chr(b) + chr(a))
        if got != want:
            sys.exit(f"reordering of U+{a:04X} and U+{b:04X} disagrees with classes {ka}, {kb}")
    plane_removed = []
    # Samples of the planes not probed one by one: they must behave alike.
    for lo, hi in ((0x40000, 0xDFFFF),):
        kinds = set()
        for cp in list(range(lo, hi + 1, 0x1001)) + [hi]:
            c = chr(cp)
            if (len(pre.pre_tokenize_str("a" + c + "b")) != 1 or lower.normalize_str(c) != c
                    or strip.normalize_str(c) != c or chinese.normalize_str(c) != c):
                sys.exit(f"plane sample U+{cp:X} is not a plain character")
            kinds.add(clean.normalize_str("a" + c + "b") == "ab")
        if len(kinds) != 1:
            sys.exit(f"plane {lo:X}-{hi:X} is not uniform")
        if kinds.pop():
            plane_removed.append((lo, hi))
    out = [f"tokenizers {tokenizers.__version__}"]
    def emit(tag, pts, extra=()):
        for a, b in ranges(sorted(set(pts))) + [list(r) for r in extra]:
            out.append(f"{tag} {a:X}-{b:X}")
    emit("R", removed, plane_removed)
    emit("W", spaced)
    emit("C", cjk)
    emit("S", split_ws)
    emit("P", punct)
    emit("M", marks)
    for tag, table in (("L", lower_map), ("N", nfd_map)):
        for cp in sorted(table):
            out.append(" ".join([tag, f"{cp:X}"] + [f"{x:X}" for x in table[cp]]))
    for cp in sorted(ccc):
        out.append(f"K {cp:X} {ccc[cp]:X}")
    body = "\n".join(out)
    sys.stdout.write(
        "// Generated by scripts/probe_hf_unicode.py from Hugging Face tokenizers' behaviour. Do not edit.\n"
        "// Format: see that script.\n\n"
        f'let hfUnicodeData = """\n{body}\n"""\n')


def hangul(cp):
    s = cp - 0xAC00
    out = [0x1100 + s // 588, 0x1161 + (s % 588) // 28]
    if s % 28:
        out.append(0x11A7 + s % 28)
    return out


if __name__ == "__main__":
    main()
