#!/usr/bin/env python3
"""Build reference fixtures for the Swift WordPiece tokenizer with HF `tokenizers`.

Usage:
  make_tokenizer_reference.py --tokenizer MODEL_DIR --corpus CORPUS_DIR --out OUT_DIR
                              [--adversarial FILE] [--cases GLOB[,GLOB...]]

MODEL_DIR holds tokenizer.json; CORPUS_DIR holds en.txt and zh.txt;
--adversarial is a JSON Lines file from gen_adversarial.py (default: it is
generated with seed 1234, count 4000). Writes into OUT_DIR:

manifest.json
  {"tokenizers_version": "0.23.3", "format_version": 1, "tokenizer_sha256": ...,
   "cases": [{"name", "inputs", "pair", "lowercase", "strip_accents",
              "truncation": null | {"max_length", "stride", "strategy"},
              "padding": null | {"strategy": "batch_longest"|"fixed", "length",
                                 "pad_to_multiple_of", "group"},
              "file_settings", "reference", "decode",
              "num_inputs", "num_errors", "error_messages"}, ...]}

<inputs>.jsonl  (shared by the cases that name it)
  One JSON value per '\\n'-terminated line: a string (single) or a
  two-element array [a, b] (pair). U+0085, U+2028, U+2029 are always
  \\u-escaped, so no line contains a raw line separator.

<case>.bin
  Little-endian int32 stream. For each input, in order:
    E   number of encodings = 1 + len(enc.overflowing), or -1 when HF raised
        an error for this input (then nothing else follows for it);
    then E encodings (the main one, then enc.overflowing in order), each:
      n, ids[n], type_ids[n], special_tokens_mask[n], attention_mask[n],
      word_ids[n] (-1 for None), offset_starts[n], offset_ends[n]
  Offsets are HF Python offsets: code points of the original string (for the
  B tokens of a pair: of B's string). Only the top-level overflowing list is
  written; HF also nests overflowings inside the overflowings of pairs, and
  those are not written.

<case>.decode.jsonl  (some cases; first 2000 inputs)
  {"skip": decode(ids, skip_special_tokens=True),
   "keep": decode(ids, skip_special_tokens=False)} of the main encoding, or
  null for an input that raised.

Corpus lines: en.txt then zh.txt, each split on '\\n' only (the empty string
after the final '\\n' is not a line), lines longer than 2000 code points cut
into 2000-code-point pieces. "First N lines/pairs" subsets alternate English
and Chinese: en[0], zh[0], en[1], zh[1], ...; corpus pairs are
(en[2i], en[2i+1]) and (zh[2i], zh[2i+1]), alternating.

Without padding every input is encoded on its own with tok.encode(a) or
tok.encode(a, b); padding cases use encode_batch over consecutive groups of
`group` inputs (if a batch raises, every input of the group gets E = -1).
"""

import argparse
import fnmatch
import hashlib
import json
import os
import sys
import time
from array import array
from itertools import chain
from operator import le

import tokenizers
from tokenizers import Tokenizer
from tokenizers.normalizers import BertNormalizer

FORMAT_VERSION = 1
LINE_CAP = 2000
DECODE_LIMIT = 2000
ADV_SEED = 1234
ADV_COUNT = 4000

VARIANTS = [  # name, lowercase, strip_accents
    ("lower", True, None),
    ("cased", False, None),
    ("lower-keepaccents", True, False),
    ("cased-stripaccents", False, True),
]


def log(msg):
    print(f"[swift-bert] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def read_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    out = []
    for line in lines:
        if len(line) <= LINE_CAP:
            out.append(line)
        else:
            out.extend(line[i:i + LINE_CAP] for i in range(0, len(line), LINE_CAP))
    return out


def alternate(a, b, n):
    """a[0], b[0], a[1], b[1], ... (the rest of the longer list after the
    shorter one ends), cut to n items."""
    out = []
    for i in range(max(len(a), len(b))):
        if i < len(a):
            out.append(a[i])
        if i < len(b):
            out.append(b[i])
        if len(out) >= n:
            break
    return out[:n]


def consecutive_pairs(lines):
    return [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]


def dumps_line(value):
    line = json.dumps(value, ensure_ascii=False)
    return line.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_jsonl(path, values):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for v in values:
            f.write(dumps_line(v if isinstance(v, str) else list(v)))
            f.write("\n")


def read_jsonl(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    return [json.loads(line) for line in text.split("\n") if line != ""]


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------

def append_encoding(out, enc):
    ids = enc.ids
    out.append(len(ids))
    out.extend(ids)
    out.extend(enc.type_ids)
    out.extend(enc.special_tokens_mask)
    out.extend(enc.attention_mask)
    out.extend([-1 if w is None else w for w in enc.word_ids])
    flat = list(chain.from_iterable(enc.offsets))
    out.extend(flat[0::2])
    out.extend(flat[1::2])


def append_result(out, enc):
    over = enc.overflowing
    out.append(1 + len(over))
    append_encoding(out, enc)
    for o in over:
        append_encoding(out, o)


def is_error(exc):
    return not isinstance(exc, (KeyboardInterrupt, SystemExit, MemoryError))


def run_case(tok, inputs, pair, padding_group, decode):
    """Returns (int32 array, decode rows or None, error messages list)."""
    out = array("i")
    errors = []
    dec = [] if decode else None
    n_dec = min(DECODE_LIMIT, len(inputs)) if decode else 0

    def record_decode(i, enc):
        if i < n_dec:
            dec.append(None if enc is None else {
                "skip": tok.decode(enc.ids, skip_special_tokens=True),
                "keep": tok.decode(enc.ids, skip_special_tokens=False),
            })

    if padding_group is None:
        encode = tok.encode
        for i, x in enumerate(inputs):
            try:
                enc = encode(x[0], x[1]) if pair else encode(x)
            except BaseException as e:  # pyo3 panics are BaseException
                if not is_error(e):
                    raise
                out.append(-1)
                errors.append(str(e))
                record_decode(i, None)
                continue
            append_result(out, enc)
            record_decode(i, enc)
    else:
        for start in range(0, len(inputs), padding_group):
            group = inputs[start:start + padding_group]
            batch = [tuple(x) for x in group] if pair else list(group)
            try:
                encs = tok.encode_batch(batch)
            except BaseException as e:
                if not is_error(e):
                    raise
                for j in range(len(group)):
                    out.append(-1)
                    errors.append(str(e))
                    record_decode(start + j, None)
                continue
            for j, enc in enumerate(encs):
                append_result(out, enc)
                record_decode(start + j, enc)
    return out, dec, errors


def write_int32_le(path, arr):
    assert arr.itemsize == 4, "array('i') is not 32-bit on this platform"
    if sys.byteorder != "little":
        arr = array(arr.typecode, arr)
        arr.byteswap()
    with open(path, "wb") as f:
        arr.tofile(f)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

def make_cases(lines, pairs30k, lines30k, lines3k, pairs3k, adv, adv_pairs):
    """Each case: dict of manifest fields plus '_inputs' (name, values)."""
    cases = []

    def case(name, inputs, pair, lowercase=True, strip=None, trunc=None, padding=None,
             decode=False, file_settings=False):
        cases.append({
            "name": name, "_inputs": inputs, "pair": pair, "lowercase": lowercase,
            "strip_accents": strip, "truncation": trunc, "padding": padding,
            "file_settings": file_settings, "_decode": decode,
        })

    def tr(m, s=0, strategy="longest_first"):
        return {"max_length": m, "stride": s, "strategy": strategy}

    corpus = ("corpus-lines.jsonl", lines)
    # a) whole corpus, four normalizer variants
    for v, low, strip in VARIANTS:
        case(f"corpus-single-{v}", corpus, False, low, strip, decode=v in ("lower", "cased"))
    # b) pairs
    cp = ("corpus-pairs-30000.jsonl", pairs30k)
    case("corpus-pair-lower", cp, True)
    for strategy in ("longest_first", "only_first", "only_second"):
        case(f"corpus-pair-lower-trunc-{strategy}", cp, True, trunc=tr(40, 0, strategy))
    case("corpus-pair-lower-overflow", cp, True, trunc=tr(48, 8))
    # c) single with truncation
    c30 = ("corpus-lines-30000.jsonl", lines30k)
    case("corpus-single-lower-trunc", c30, False, trunc=tr(32))
    case("corpus-single-lower-overflow", c30, False, trunc=tr(32, 8))
    # d) adversarial
    a1 = ("adversarial.jsonl", adv)
    a2 = ("adversarial-pairs.jsonl", adv_pairs)
    for v, low, strip in VARIANTS:
        case(f"adv-single-{v}", a1, False, low, strip, decode=v in ("lower", "cased"))
    case("adv-pair-lower", a2, True)
    case("adv-pair-cased", a2, True, lowercase=False)
    case("adv-pair-lower-trunc-longest_first", a2, True, trunc=tr(24))
    case("adv-single-lower-overflow", a1, False, trunc=tr(16, 4))
    # e) the tokenizer.json's own truncation and padding
    c3 = ("corpus-lines-3000.jsonl", lines3k)
    case("file-settings", c3, False, file_settings=True)
    # f) padding
    case("pad-batch-longest", ("corpus-pairs-3000.jsonl", pairs3k), True,
         padding={"strategy": "batch_longest", "length": None, "pad_to_multiple_of": 8, "group": 16})
    case("pad-fixed", c3, False, trunc=tr(64),
         padding={"strategy": "fixed", "length": 64, "pad_to_multiple_of": None, "group": 16})
    return cases


def configure(tokenizer_path, c):
    tok = Tokenizer.from_file(tokenizer_path)
    if c["file_settings"]:
        norm = json.load(open(tokenizer_path, encoding="utf-8")).get("normalizer") or {}
        c["lowercase"] = norm.get("lowercase", True)
        c["strip_accents"] = norm.get("strip_accents")
        t = tok.truncation
        c["truncation"] = None if t is None else {
            "max_length": t["max_length"], "stride": t["stride"], "strategy": t["strategy"]}
        p = tok.padding
        c["padding"] = None if p is None else {
            "strategy": "fixed" if p["length"] is not None else "batch_longest",
            "length": p["length"], "pad_to_multiple_of": p["pad_to_multiple_of"], "group": 1}
        # Encoded one by one: group 1 means tok.encode per input.
        return tok, None
    tok.no_truncation()
    tok.no_padding()
    tok.normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                    strip_accents=c["strip_accents"], lowercase=c["lowercase"])
    t = c["truncation"]
    if t is not None:
        tok.enable_truncation(max_length=t["max_length"], stride=t["stride"],
                              strategy=t["strategy"], direction="right")
    p = c["padding"]
    if p is None:
        return tok, None
    if p["strategy"] == "fixed":
        tok.enable_padding(length=p["length"], pad_to_multiple_of=p["pad_to_multiple_of"])
    else:
        tok.enable_padding(pad_to_multiple_of=p["pad_to_multiple_of"])
    return tok, p["group"]


# ---------------------------------------------------------------------------
# Reading back (also documents the format)
# ---------------------------------------------------------------------------

FIELDS = ("ids", "type_ids", "special_tokens_mask", "attention_mask", "word_ids",
          "offset_starts", "offset_ends")


def read_reference(path):
    """Parse a .bin reference: a list with, per input, None (HF raised) or a
    list of encodings, each a dict of FIELDS -> list of int."""
    data = array("i")
    with open(path, "rb") as f:
        data.frombytes(f.read())
    if sys.byteorder != "little":
        data.byteswap()
    pos = 0
    results = []
    while pos < len(data):
        e = data[pos]
        pos += 1
        if e == -1:
            results.append(None)
            continue
        if e < 1:
            raise ValueError(f"{path}: bad encoding count {e} at int {pos - 1}")
        encs = []
        for _ in range(e):
            n = data[pos]
            pos += 1
            enc = {}
            for name in FIELDS:
                enc[name] = data[pos:pos + n].tolist()
                pos += n
            encs.append(enc)
        results.append(encs)
    if pos != len(data):
        raise ValueError(f"{path}: truncated")
    return results


def as_fields(enc):
    flat = list(chain.from_iterable(enc.offsets))
    return {"ids": enc.ids, "type_ids": enc.type_ids,
            "special_tokens_mask": enc.special_tokens_mask,
            "attention_mask": enc.attention_mask,
            "word_ids": [-1 if w is None else w for w in enc.word_ids],
            "offset_starts": flat[0::2], "offset_ends": flat[1::2]}


def verify(out_dir, tokenizer_dir, sample=300, seed=0):
    """Re-read every reference in out_dir and check it: structure, counts,
    invariants, and a fresh HF encoding of `sample` random inputs per case."""
    import random
    tokenizer_path = os.path.join(tokenizer_dir, "tokenizer.json")
    with open(os.path.join(out_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    r = random.Random(seed)
    inputs_cache = {}
    for c in manifest["cases"]:
        name = c["name"]
        if c["inputs"] not in inputs_cache:
            inputs_cache[c["inputs"]] = read_jsonl(os.path.join(out_dir, c["inputs"]))
        inputs = inputs_cache[c["inputs"]]
        refs = read_reference(os.path.join(out_dir, c["reference"]))
        if len(refs) != len(inputs) or len(inputs) != c["num_inputs"]:
            raise AssertionError(f"{name}: {len(refs)} references for {len(inputs)} inputs")
        if sum(x is None for x in refs) != c["num_errors"]:
            raise AssertionError(f"{name}: error count differs from the manifest")
        pad = c["padding"]
        for i, encs in enumerate(refs):
            if encs is None:
                continue
            x = inputs[i]
            for enc in encs:
                n = len(enc["ids"])
                t = c["truncation"]
                if t is not None and pad is None and n > t["max_length"]:
                    raise AssertionError(f"{name}[{i}]: {n} tokens > max_length")
                if pad is not None and pad["strategy"] == "fixed" and n != pad["length"]:
                    raise AssertionError(f"{name}[{i}]: not padded to {pad['length']}")
                if pad is not None and pad["pad_to_multiple_of"] and n % pad["pad_to_multiple_of"]:
                    raise AssertionError(f"{name}[{i}]: length {n} not a multiple")
                starts, ends = enc["offset_starts"], enc["offset_ends"]
                if c["pair"]:
                    limit = max(len(x[0]), len(x[1]))
                else:
                    limit = len(x)
                if n and (min(starts) < 0 or max(ends) > limit or not all(map(le, starts, ends))):
                    raise AssertionError(f"{name}[{i}]: offsets outside the text")
        # Fresh encodings of a sample.
        tok, group = configure(tokenizer_path, dict(c))
        picks = sorted(r.sample(range(len(inputs)), min(sample, len(inputs))))
        for i in picks:
            if group is None:
                x = inputs[i]
                try:
                    enc = tok.encode(x[0], x[1]) if c["pair"] else tok.encode(x)
                except BaseException as e:
                    if not is_error(e):
                        raise
                    enc = None
                got = None if enc is None else [as_fields(enc)] + [as_fields(o) for o in enc.overflowing]
            else:
                g0 = i - i % group
                batch = [tuple(v) for v in inputs[g0:g0 + group]] if c["pair"] else inputs[g0:g0 + group]
                enc = tok.encode_batch(batch)[i - g0]
                got = [as_fields(enc)] + [as_fields(o) for o in enc.overflowing]
            if got != refs[i]:
                raise AssertionError(f"{name}[{i}]: reference differs from a fresh encoding")
        if c["decode"]:
            rows = read_jsonl(os.path.join(out_dir, c["decode"]))
            if len(rows) != min(DECODE_LIMIT, len(inputs)):
                raise AssertionError(f"{name}: {len(rows)} decode rows")
            for i in picks:
                if i < len(rows) and refs[i] is not None:
                    want = tok.decode(refs[i][0]["ids"], skip_special_tokens=True)
                    if rows[i]["skip"] != want:
                        raise AssertionError(f"{name}[{i}]: decode differs")
        log(f"verified {name}: {len(refs)} references, {sum(len(e) for e in refs if e)} encodings")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True, help="folder with tokenizer.json")
    ap.add_argument("--corpus", required=True, help="folder with en.txt and zh.txt")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--adversarial", help="JSON Lines from gen_adversarial.py")
    ap.add_argument("--cases", help="only these cases (comma-separated fnmatch globs)")
    ap.add_argument("--verify-only", action="store_true",
                    help="only re-read and check the references already in --out")
    ap.add_argument("--no-verify", action="store_true", help="skip the check after writing")
    args = ap.parse_args(argv)

    if args.verify_only:
        verify(args.out, args.tokenizer)
        return

    t0 = time.time()
    tokenizer_path = os.path.join(args.tokenizer, "tokenizer.json")
    with open(tokenizer_path, "rb") as f:
        tokenizer_sha = hashlib.sha256(f.read()).hexdigest()
    os.makedirs(args.out, exist_ok=True)

    en = read_lines(os.path.join(args.corpus, "en.txt"))
    zh = read_lines(os.path.join(args.corpus, "zh.txt"))
    lines = en + zh
    pairs = [p for ab in zip(consecutive_pairs(en), consecutive_pairs(zh)) for p in ab]
    pairs30k = pairs[:30000]
    lines30k = alternate(en, zh, 30000)
    lines3k = lines30k[:3000]
    pairs3k = pairs30k[:3000]

    if args.adversarial:
        adv = read_jsonl(args.adversarial)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import gen_adversarial
        adv = gen_adversarial.generate(ADV_SEED, ADV_COUNT)
    if not all(isinstance(s, str) for s in adv):
        sys.exit("adversarial inputs must be JSON strings")
    adv_pairs = [(adv[i], adv[i + 1]) for i in range(len(adv) - 1)]
    log(f"inputs: {len(en)} en + {len(zh)} zh lines, {len(pairs30k)} corpus pairs, "
        f"{len(adv)} adversarial strings, {len(adv_pairs)} adversarial pairs")

    cases = make_cases(lines, pairs30k, lines30k, lines3k, pairs3k, adv, adv_pairs)
    if args.cases:
        globs = args.cases.split(",")
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c["name"], g) for g in globs)]

    written = set()
    manifest_cases = []
    for c in cases:
        t1 = time.time()
        inputs_name, inputs = c.pop("_inputs")
        decode = c.pop("_decode")
        if inputs_name not in written:
            write_jsonl(os.path.join(args.out, inputs_name), inputs)
            written.add(inputs_name)
        tok, group = configure(tokenizer_path, c)
        arr, dec, errors = run_case(tok, inputs, c["pair"], group, decode)
        ref_name = c["name"] + ".bin"
        write_int32_le(os.path.join(args.out, ref_name), arr)
        dec_name = None
        if dec is not None:
            dec_name = c["name"] + ".decode.jsonl"
            write_jsonl_values(os.path.join(args.out, dec_name), dec)
        uniq = sorted(set(errors))
        manifest_cases.append({
            "name": c["name"], "inputs": inputs_name, "pair": c["pair"],
            "lowercase": c["lowercase"], "strip_accents": c["strip_accents"],
            "truncation": c["truncation"], "padding": c["padding"],
            "file_settings": c["file_settings"], "reference": ref_name, "decode": dec_name,
            "num_inputs": len(inputs), "num_errors": len(errors), "error_messages": uniq[:5],
        })
        log(f"{c['name']}: {len(inputs)} inputs, {len(errors)} errors, "
            f"{len(arr) * 4 / 1e6:.1f} MB, {time.time() - t1:.1f}s")

    manifest = {
        "tokenizers_version": tokenizers.__version__,
        "format_version": FORMAT_VERSION,
        "tokenizer_sha256": tokenizer_sha,
        "cases": manifest_cases,
    }
    tmp = os.path.join(args.out, "manifest.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp, os.path.join(args.out, "manifest.json"))
    log(f"wrote {len(manifest_cases)} cases to {args.out} in {time.time() - t0:.1f}s")
    if not args.no_verify:
        t1 = time.time()
        verify(args.out, args.tokenizer)
        log(f"verified in {time.time() - t1:.1f}s")


def write_jsonl_values(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(dumps_line(r))
            f.write("\n")


if __name__ == "__main__":
    main()
