#!/usr/bin/env python3
"""Benchmark the peer WordPiece tokenizers that swift-bert's tokenizer must beat.

Peers:
  hf         HuggingFace `tokenizers`: Tokenizer.from_file(DIR/tokenizer.json)
             .encode_batch(lines, add_special_tokens=True), with truncation and
             padding disabled (no_truncation / no_padding).
  nanotoken  PyPI `nanotoken` (Rust WordPiece), its fastest batch API producing
             ids with [CLS]/[SEP]. Two APIs are timed and the faster one is
             reported as "nanotoken":
               list   Tokenizer.encode_batch(lines)          (in-memory list[str])
               files  Tokenizer.encode_files(TextFileSource(FILE, separator="\\n"))
                      (the file is mmap'd and split in Rust)
             nanotoken ignores the truncation/padding stored in tokenizer.json;
             encode_batch truncates only when max_length is passed (it isn't).
  hf_fast    (only with --hf-fast) HF encode_batch_fast (no offsets).

With --compare-ids FILE, ids produced elsewhere (swift-bert's
`TokenizerBench --dump-ids FILE`) are checked against HF's ids line by line.
FILE is int32 little-endian: for each line, n and then the line's n ids
([CLS]/[SEP] included). The JSON then carries "swift_ids_mismatch_lines"
(lines whose ids differ from HF's; a missing or extra line counts as one;
0 means identical on every line), "swift_ids_lines" (lines in FILE) and
"swift_ids_first_mismatch_line" (0-based, or null). FILE is read before the
timings (an unreadable or malformed FILE fails at once, exit status 3) and
compared after them.

Usage:
  python3 scripts/bench_tokenizer_peers.py --tokenizer DIR --text FILE \\
      [--threads 1] [--repeat 3] [--json] [--hf-fast] [--nanotoken-api auto|list|files]
      [--compare-ids FILE]

The text is read as UTF-8 and split on '\\n' (str.split, not splitlines); no
line is dropped, empty lines included. Input bytes = UTF-8 size of the whole
file; tokens = total ids produced, [CLS]/[SEP] included. Each measurement is
the best of --repeat timed runs after one untimed warm-up run.

Thread counts
-------------
Both libraries are Rust extensions that use their own (statically linked)
copy of rayon's *global* thread pool. rayon sizes that pool once, lazily, on
first use, from RAYON_NUM_THREADS (falling back to the older
RAYON_RS_NUM_CPUS, then the CPU count). Both .so files contain both names and
both were checked to honour RAYON_NUM_THREADS. HF `tokenizers` additionally
reads TOKENIZERS_PARALLELISM: "false" makes encode_batch run serially on the
calling thread without creating any pool.

So the environment has to be in place before either library is first used.
This script does that by re-executing itself (os.execve, before importing
either library) with:
  --threads 1:  RAYON_NUM_THREADS=1 RAYON_RS_NUM_CPUS=1 TOKENIZERS_PARALLELISM=false
                and nanotoken is called with parallel=False (calling thread only)
  --threads N:  RAYON_NUM_THREADS=N RAYON_RS_NUM_CPUS=N TOKENIZERS_PARALLELISM=true
                and nanotoken is called with parallel=True
A caller may set exactly these variables itself; the script then skips the
re-exec. Any other value of them is overridden (by re-exec).

Exit status: 0, or 1 when nanotoken's ids differ from HF's on any line, or
(with --compare-ids) FILE's ids differ from HF's on any line (the JSON tells
which); 3 when the --compare-ids FILE is malformed.

As a check, each measurement also reports process CPU time / wall time over
the best run ("cpu_per_wall", about 1.0 for one thread, up to N for N) and
"threads_spawned": how many OS threads the process gained while that library
ran (Linux, from /proc/self/task; rayon workers persist after use, so this is
the library's pool size: N for N > 1; 0 for HF at 1 thread since it never
builds a pool; 0 for nanotoken at 1 thread since parallel=False). The baseline
is taken after all imports (numpy/OpenBLAS starts threads of its own).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

_CHILD_MARK = "BENCH_TOKENIZER_PEERS_CHILD"


def _wanted_env(threads: int) -> dict[str, str]:
    return {
        "RAYON_NUM_THREADS": str(threads),
        "RAYON_RS_NUM_CPUS": str(threads),
        "TOKENIZERS_PARALLELISM": "false" if threads == 1 else "true",
    }


def _ensure_thread_env(threads: int) -> None:
    """Re-exec this script with the rayon/tokenizers env set, unless already set.

    Must run before `tokenizers` or `nanotoken` is imported."""
    wanted = _wanted_env(threads)
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        return
    if os.environ.get(_CHILD_MARK):
        raise SystemExit(f"thread environment not applied after re-exec: {wanted}")
    loaded = [m for m in ("tokenizers", "nanotoken") if m in sys.modules]
    if loaded:
        raise SystemExit(f"{loaded} imported before the thread environment was set")
    env = dict(os.environ)
    env.update(wanted)
    env[_CHILD_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


def _process_threads() -> int | None:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def _time_best(fn, repeat: int):
    """One warm-up run, then the best of `repeat` timed runs.

    Returns (result of the last run, best seconds, cpu/wall of the best run)."""
    result = fn()  # warm-up
    best = float("inf")
    best_ratio = 0.0
    gc_was_enabled = gc.isenabled()
    for _ in range(repeat):
        result = None  # free the previous result outside the timed region
        gc.collect()
        gc.disable()
        try:
            c0 = time.process_time()
            t0 = time.perf_counter()
            out = fn()
            t1 = time.perf_counter()
            c1 = time.process_time()
        finally:
            if gc_was_enabled:
                gc.enable()
        result = out
        if t1 - t0 < best:
            best = t1 - t0
            best_ratio = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
    return result, best, best_ratio


def _entry(seconds: float, nbytes: int, tokens: int, **extra) -> dict:
    return {
        "seconds": seconds,
        "mb_per_s": nbytes / 1e6 / seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        **extra,
    }


def _mismatch_lines(hf_lens, hf_flat, nt_ids, nt_offsets, rows: int) -> int:
    """Number of lines (out of `rows`) whose nanotoken ids differ from HF's."""
    import numpy as np

    nt_offsets = np.asarray(nt_offsets[: rows + 1], dtype=np.int64)
    nt_lens = np.diff(nt_offsets)
    hf_lens = hf_lens[:rows]
    hf_off = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(hf_lens, out=hf_off[1:])
    if np.array_equal(nt_lens, hf_lens) and np.array_equal(
        np.asarray(nt_ids[: nt_offsets[-1]]), hf_flat[: hf_off[-1]]
    ):
        return 0
    bad = 0
    for i in range(rows):
        a = nt_ids[nt_offsets[i] : nt_offsets[i + 1]]
        b = hf_flat[hf_off[i] : hf_off[i + 1]]
        if not np.array_equal(a, b):
            bad += 1
    return bad


def _read_ids_dump(path: str):
    """Parse a --dump-ids file: int32 LE, per line n then n ids.

    Returns (lens int64[rows], flat ids int64[sum(lens)])."""
    import numpy as np

    raw = np.fromfile(path, dtype="<i4")
    total = len(raw)
    lens = []
    pos = 0
    while pos < total:
        n = int(raw[pos])
        if n < 0 or pos + 1 + n > total:
            raise ValueError(f"{path}: corrupt ids dump at int32 #{pos} (length {n}, {total} int32 in file)")
        lens.append(n)
        pos += 1 + n
    lens_arr = np.asarray(lens, dtype=np.int64)
    heads = np.zeros(len(lens_arr), dtype=np.int64)
    if len(lens_arr) > 1:
        np.cumsum(lens_arr[:-1] + 1, out=heads[1:])
    flat = np.delete(raw, heads).astype(np.int64)
    return lens_arr, flat


def _compare_ragged(ref_lens, ref_flat, lens, flat):
    """Lines whose ids differ between two ragged id lists (ref = HF).

    A line present in only one of them counts as differing. Returns
    (mismatching lines, first mismatching 0-based line or None)."""
    import numpy as np

    rows = min(len(ref_lens), len(lens))
    extra = abs(len(ref_lens) - len(lens))
    ref_off = np.zeros(len(ref_lens) + 1, dtype=np.int64)
    np.cumsum(ref_lens, out=ref_off[1:])
    off = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    if np.array_equal(ref_lens[:rows], lens[:rows]) and np.array_equal(
        ref_flat[: ref_off[rows]].astype(np.int64), flat[: off[rows]]
    ):
        return extra, (rows if extra else None)
    bad = 0
    first = None
    for i in range(rows):
        a = ref_flat[ref_off[i] : ref_off[i + 1]]
        b = flat[off[i] : off[i + 1]]
        if len(a) != len(b) or not np.array_equal(a.astype(np.int64), b):
            bad += 1
            if first is None:
                first = i
    if first is None and extra:
        first = rows
    return bad + extra, first


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True, help="directory with tokenizer.json (or the tokenizer.json itself)")
    ap.add_argument("--text", required=True, help="UTF-8 text file; one document per '\\n'-separated line")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (best is kept)")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--hf-fast", action="store_true", help="also time HF encode_batch_fast")
    ap.add_argument(
        "--nanotoken-api",
        choices=("auto", "list", "files"),
        default="auto",
        help="nanotoken API to time: encode_batch(list), encode_files(file), or both and report the faster (auto)",
    )
    ap.add_argument(
        "--compare-ids",
        metavar="FILE",
        help="ids dump (int32 LE, per line n then n ids; TokenizerBench --dump-ids) to check against HF's ids",
    )
    args = ap.parse_args()
    if args.threads < 1 or args.repeat < 1:
        ap.error("--threads and --repeat must be >= 1")
    if args.compare_ids is not None and not os.path.isfile(args.compare_ids):
        ap.error(f"--compare-ids: no such file: {args.compare_ids}")

    _ensure_thread_env(args.threads)

    # Imports only after the thread environment is in place.
    import numpy as np
    import nanotoken
    import tokenizers

    if args.compare_ids is not None:
        try:
            sw_lens, sw_flat = _read_ids_dump(args.compare_ids)
        except (ValueError, OSError) as e:
            print(f"error: --compare-ids: {e}", file=sys.stderr)
            return 3

    tok_path = args.tokenizer
    tok_json = os.path.join(tok_path, "tokenizer.json") if os.path.isdir(tok_path) else tok_path

    with open(args.text, "rb") as f:
        data = f.read()
    text = data.decode("utf-8")
    lines = text.split("\n")
    nbytes = len(data)
    nlines = len(lines)
    threads = args.threads
    parallel = threads > 1

    print(
        f"threads={threads}  RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS')}  "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM')}  "
        f"nanotoken parallel={parallel}  cpus={os.cpu_count()}"
    )
    print(
        f"text={args.text}  bytes={nbytes}  lines={nlines}  "
        f"tokenizers {tokenizers.__version__}  nanotoken {_version('nanotoken')}"
    )

    results: dict[str, dict] = {}
    baseline_threads = _process_threads()

    def spawned(since: int | None) -> int | None:
        now = _process_threads()
        return None if now is None or since is None else now - since

    # ---- HF tokenizers -------------------------------------------------------
    hf = tokenizers.Tokenizer.from_file(tok_json)
    hf.no_truncation()
    hf.no_padding()
    encs, sec, ratio = _time_best(lambda: hf.encode_batch(lines, add_special_tokens=True), args.repeat)
    hf_lens = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=nlines)
    hf_flat = np.fromiter((i for e in encs for i in e.ids), dtype=np.uint32, count=int(hf_lens.sum()))
    del encs
    results["hf"] = _entry(sec, nbytes, int(hf_lens.sum()), cpu_per_wall=ratio, threads_spawned=spawned(baseline_threads))

    if args.hf_fast:
        encs, sec, ratio = _time_best(lambda: hf.encode_batch_fast(lines, add_special_tokens=True), args.repeat)
        toks = sum(len(e.ids) for e in encs)
        del encs
        results["hf_fast"] = _entry(sec, nbytes, toks, cpu_per_wall=ratio, threads_spawned=spawned(baseline_threads))

    # ---- nanotoken -----------------------------------------------------------
    nt = nanotoken.Tokenizer(tok_path)
    before_nt = _process_threads()
    variants: dict[str, dict] = {}
    if args.nanotoken_api in ("auto", "list"):
        r, sec, ratio = _time_best(
            lambda: nt.encode_batch(lines, add_special_tokens=True, parallel=parallel), args.repeat
        )
        assert len(r) == nlines, (len(r), nlines)
        variants["list"] = _entry(
            sec,
            nbytes,
            r.num_tokens,
            api="Tokenizer.encode_batch(list[str])",
            cpu_per_wall=ratio,
            threads_spawned=spawned(before_nt),
            ids_mismatch_lines=_mismatch_lines(hf_lens, hf_flat, r.ids, r.offsets, nlines),
        )
        del r
    if args.nanotoken_api in ("auto", "files"):
        src = nanotoken.TextFileSource(args.text, separator="\n")
        r, sec, ratio = _time_best(
            lambda: nt.encode_files(src, add_special_tokens=True, parallel=parallel), args.repeat
        )
        rows = len(r)
        tokens = r.num_tokens
        mism = _mismatch_lines(hf_lens, hf_flat, r.ids, r.offsets, min(rows, nlines))
        # encode_files drops a trailing empty document (file ending in '\n'); that
        # line would be [CLS][SEP] -- count it as HF does so figures stay comparable.
        if rows == nlines - 1 and lines[-1] == "":
            tokens += int(hf_lens[-1])
        elif rows != nlines:
            mism += abs(nlines - rows)
        variants["files"] = _entry(
            sec,
            nbytes,
            tokens,
            api="Tokenizer.encode_files(TextFileSource(sep='\\n'))",
            cpu_per_wall=ratio,
            threads_spawned=spawned(before_nt),
            ids_mismatch_lines=mism,
        )
        del r
    best_name = min(variants, key=lambda k: variants[k]["seconds"])
    results["nanotoken"] = dict(variants[best_name])
    mismatch = results["nanotoken"].pop("ids_mismatch_lines")

    # ---- ids from elsewhere (swift-bert), after all timings -------------------
    swift_mismatch = None
    if args.compare_ids is not None:
        swift_lines = len(sw_lens)
        swift_mismatch, swift_first = _compare_ragged(hf_lens, hf_flat, sw_lens, sw_flat)
        swift_first_ids = None
        if swift_first is not None and swift_first < swift_lines:
            off = int(sw_lens[:swift_first].sum())
            swift_first_ids = sw_flat[off : off + int(sw_lens[swift_first])]
        del sw_lens, sw_flat

    # ---- report --------------------------------------------------------------
    rows_out = [("hf", results["hf"])]
    if "hf_fast" in results:
        rows_out.append(("hf_fast", results["hf_fast"]))
    rows_out += [(f"nanotoken[{k}]", v) for k, v in variants.items()]
    print()
    print(f"{'name':<18} {'seconds':>9} {'MB/s':>9} {'Mtok/s':>8} {'cpu/wall':>8} {'spawned':>7}  ids-mismatch")
    for name, e in rows_out:
        mm = e.get("ids_mismatch_lines", "-" if name != "hf" else "ref")
        print(
            f"{name:<18} {e['seconds']:9.4f} {e['mb_per_s']:9.2f} {e['tokens_per_s'] / 1e6:8.3f} "
            f"{e['cpu_per_wall']:8.2f} {e['threads_spawned'] if e['threads_spawned'] is not None else '?':>7}  {mm}"
        )
    print(
        f"nanotoken = nanotoken[{best_name}]: {results['hf']['seconds'] / results['nanotoken']['seconds']:.1f}x HF "
        f"encode_batch; ids mismatching HF on {mismatch} of {nlines} lines"
    )
    if swift_mismatch is not None:
        where = "" if swift_first is None else f" (first: line {swift_first}, 0-based)"
        print(
            f"{args.compare_ids}: {swift_lines} lines; ids mismatching HF on "
            f"{swift_mismatch} of {nlines} lines{where}"
        )
        if swift_first is not None and swift_first < nlines:
            i = swift_first
            off = int(hf_lens[:i].sum())
            print(f"  line {i}: {lines[i][:200]!r}")
            print(f"  hf:   {hf_flat[off : off + int(hf_lens[i])][:64].tolist()}")
            if swift_first_ids is not None:
                print(f"  file: {swift_first_ids[:64].tolist()}")

    if args.json:
        out = {
            "threads": threads,
            "bytes": nbytes,
            "lines": nlines,
            "hf": results["hf"],
            "nanotoken": results["nanotoken"],
            "nanotoken_ids_mismatch_lines": mismatch,
            "nanotoken_variants": variants,
            "env": {k: os.environ.get(k) for k in _wanted_env(threads)},
            "versions": {"tokenizers": tokenizers.__version__, "nanotoken": _version("nanotoken")},
        }
        if "hf_fast" in results:
            out["hf_fast"] = results["hf_fast"]
        if swift_mismatch is not None:
            out["swift_ids_file"] = args.compare_ids
            out["swift_ids_lines"] = swift_lines
            out["swift_ids_mismatch_lines"] = swift_mismatch
            out["swift_ids_first_mismatch_line"] = swift_first
        print(json.dumps(out))
    return 0 if mismatch == 0 and not swift_mismatch else 1


if __name__ == "__main__":
    sys.exit(main())
