#!/usr/bin/env bash
# The tokenizer benchmark: swift-bert's WordPiece tokenizer against HuggingFace
# `tokenizers` and `nanotoken`, on the English and Chinese corpora, at 1 thread
# and at $(nproc) threads, plus an exact check of our ids against HF's.
#
#   bash scripts/bench-tokenizer.sh
#
# Steps:
#   1. Fetch the model (scripts/fetch-model.sh) and the corpus
#      (scripts/fetch-corpus.sh) if missing; pip-install tokenizers==0.23.3,
#      nanotoken==0.1.0 (and numpy) if missing or at another version, into
#      $PYTHON (by default lib.sh's .cache/venv).
#   2. Build the TokenizerBench executable, tuned for this CPU (the tuning flag
#      lives here, never in Package.swift):
#        swift build -c release --scratch-path .build-bench --product TokenizerBench \
#            -Xswiftc -target-cpu -Xswiftc native
#   3. In each of $BENCH_ROUNDS rounds (3), for each of .cache/corpus/{en,zh}.txt and
#      each thread count in 1, $(nproc), ours and then the peers:
#        TokenizerBench --threads N --repeat 10 --json --dump-ids IDS
#          "ids"  = ids only with [CLS]/[SEP] (fast path; compare with nanotoken)
#          "full" = full encodings: offsets, type ids, word ids (compare with
#                   HF encode_batch)
#        scripts/bench_tokenizer_peers.py --threads N --repeat 5 --json --compare-ids IDS
#          times HF encode_batch and nanotoken, and checks IDS against HF's ids
#          line by line ("swift_ids_mismatch_lines").
#      Every figure is the best of the repeats over all rounds: the machine may be
#      shared, and its speed drifts by tens of percent within minutes, so each side
#      is measured in every round rather than in one block each.
#      Then, in bulk: each text repeated to at least $BENCH_BULK_MB MB (100), one
#      thread, the library's ids and the whole `bert tokenize` process on that file
#      (on the 2-4 MB corpus files the process's start-up is most of its time).
#   4. Print a summary table and write everything to .cache/bench/tokenizer.json
#      (per-run outputs and id dumps stay in .cache/bench/runs/).
#
# Exit status: 0, or 1 when our ids differ from HF's on any line of any run
# (or anything else fails). nanotoken disagreeing with HF is reported, not fatal.
#
# Optional environment (for quick checks; the defaults are the benchmark):
#   BENCH_ROUNDS        rounds                          (default 3)
#   BENCH_OURS_REPEAT   TokenizerBench --repeat per round (default 10)
#   BENCH_PEERS_REPEAT  bench_tokenizer_peers --repeat per round (default 3)
#   BENCH_TEXTS         corpus names, space-separated (default "en zh")
#   BENCH_THREADS       thread counts, space-separated (default "1 $(nproc)")
#   BENCH_BULK_MB       size of the bulk texts in MB    (default 100)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need_cmd swift "install Swift 6 from swift.org"
need_cmd nproc
ensure_python  # .cache/venv unless PYTHON is set (lib.sh); the fetch scripts inherit PYTHON

NPROC="$(nproc)"
ROUNDS="${BENCH_ROUNDS:-3}"
OURS_REPEAT="${BENCH_OURS_REPEAT:-10}"
PEERS_REPEAT="${BENCH_PEERS_REPEAT:-3}"
read -r -a TEXTS <<<"${BENCH_TEXTS:-en zh}"
if [ -n "${BENCH_THREADS:-}" ]; then
    read -r -a THREADS <<<"$BENCH_THREADS"
elif [ "$NPROC" -gt 1 ]; then
    THREADS=(1 "$NPROC")
else
    THREADS=(1)
fi
MODEL="$CACHE/models/all-MiniLM-L6-v2"
CORPUS="$CACHE/corpus"
OUTDIR="$CACHE/bench"
RUNS="$OUTDIR/runs"
RESULT="$OUTDIR/tokenizer.json"
SCRATCH=".build-bench"
BUILD=(swift build -c release --scratch-path "$SCRATCH" --product TokenizerBench
       -Xswiftc -target-cpu -Xswiftc native)
# The `bert` executable of the same build, to time `bert tokenize` as a whole process beside the library.
BUILD_CLI=(swift build -c release --scratch-path "$SCRATCH" --product bert
           -Xswiftc -target-cpu -Xswiftc native)

# ---- 1. inputs and peers ------------------------------------------------------
log "step 1/4: model, corpus and peer packages"
bash "$REPO_ROOT/scripts/fetch-model.sh"
bash "$REPO_ROOT/scripts/fetch-corpus.sh"
log "checking pip packages: tokenizers==0.23.3 nanotoken==0.1.0 numpy"
need_pip tokenizers==0.23.3 nanotoken==0.1.0 numpy
for t in "${TEXTS[@]}"; do
    [ -s "$CORPUS/$t.txt" ] || die "no corpus text $CORPUS/$t.txt"
done

# ---- 2. build -------------------------------------------------------------------
log "step 2/4: ${BUILD[*]}"
"${BUILD[@]}" >&2 || die "swift build failed"
BIN="$("${BUILD[@]}" --show-bin-path)/TokenizerBench"
"${BUILD_CLI[@]}" >&2 || die "swift build of bert failed"
CLI="$("${BUILD_CLI[@]}" --show-bin-path)/bert"
[ -x "$BIN" ] || die "no executable at $BIN"
log "built $BIN"

# ---- 3. runs ----------------------------------------------------------------------
rm -rf "$RUNS"
mkdir -p "$RUNS"
log "step 3/4: $ROUNDS rounds of texts ${TEXTS[*]}, threads ${THREADS[*]} (cpus: $NPROC); ours best of $OURS_REPEAT, peers best of $PEERS_REPEAT per round"
for round in $(seq 1 "$ROUNDS"); do
for t in "${TEXTS[@]}"; do
    text="$CORPUS/$t.txt"
    for n in "${THREADS[@]}"; do
        tag="$t-t$n.r$round"
        ids="$RUNS/$tag.ids"
        cat /proc/loadavg >"$RUNS/$tag.loadavg" 2>/dev/null || true

        log "[$tag] swift-bert: TokenizerBench --model $MODEL --text $text --threads $n --repeat $OURS_REPEAT --json --dump-ids $ids"
        if "$BIN" --model "$MODEL" --text "$text" --threads "$n" --repeat "$OURS_REPEAT" \
            --json --dump-ids "$ids" --cli "$CLI" | tee "$RUNS/$tag.swift.out"; then
            rc=0
        else
            rc=${PIPESTATUS[0]}
        fi
        [ "$rc" -eq 0 ] || die "[$tag] TokenizerBench failed (exit $rc)"
        tail -n 1 "$RUNS/$tag.swift.out" >"$RUNS/$tag.swift.json"
        [ -s "$ids" ] || die "[$tag] TokenizerBench wrote no ids dump at $ids"

        log "[$tag] peers: bench_tokenizer_peers.py --tokenizer $MODEL --text $text --threads $n --repeat $PEERS_REPEAT --json --compare-ids $ids"
        if "$PYTHON" "$REPO_ROOT/scripts/bench_tokenizer_peers.py" --tokenizer "$MODEL" --text "$text" \
            --threads "$n" --repeat "$PEERS_REPEAT" --json --compare-ids "$ids" | tee "$RUNS/$tag.peers.out"; then
            rc=0
        else
            rc=${PIPESTATUS[0]}
        fi
        # Exit 1 = some ids differ from HF's (ours or nanotoken's); the JSON says
        # which and the summary decides. Anything else is a failure of the script.
        [ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || die "[$tag] bench_tokenizer_peers.py failed (exit $rc)"
        tail -n 1 "$RUNS/$tag.peers.out" >"$RUNS/$tag.peers.json"
    done
done
done

# ---- 3b. bert tokenize in bulk ------------------------------------------------------
# On the corpus files the process's start-up (loading the tokenizer, ~0.1 s) is most of its time;
# a user who tokenizes a corpus gives it far more. Each text repeated to at least $BULK_MB MB,
# one thread, the library's encodeIdsBatch and the whole process on the same file, in every round.
BULK_MB="${BENCH_BULK_MB:-100}"
for t in "${TEXTS[@]}"; do
    bulk="$OUTDIR/bulk-$t.txt"
    want=$((BULK_MB * 1000000))
    if [ ! -s "$bulk" ] || [ "$(stat -c %s "$bulk")" -lt "$want" ]; then
        log "writing $bulk ($CORPUS/$t.txt repeated to at least $BULK_MB MB)"
        : >"$bulk.partial"
        while [ "$(stat -c %s "$bulk.partial")" -lt "$want" ]; do cat "$CORPUS/$t.txt" >>"$bulk.partial"; done
        mv "$bulk.partial" "$bulk"
    fi
    for round in $(seq 1 "$ROUNDS"); do
        tag="bulk-$t-t1.r$round"
        log "[$tag] TokenizerBench --text $bulk --threads 1 --repeat 2 --only ids --cli $CLI --cli-ids-only"
        "$BIN" --model "$MODEL" --text "$bulk" --threads 1 --repeat 2 --only ids --json --cli "$CLI" \
            --cli-ids-only | tee "$RUNS/$tag.out" || die "[$tag] TokenizerBench failed"
        tail -n 1 "$RUNS/$tag.out" >"$RUNS/$tag.json"
    done
done

# ---- 4. summary -------------------------------------------------------------------
log "step 4/4: summary (also written to $RESULT)"
export RUNS RESULT NPROC ROUNDS OURS_REPEAT PEERS_REPEAT MODEL CORPUS
export BUILD_CMD="${BUILD[*]}"
export BENCH_TEXTS_LIST="${TEXTS[*]}" BENCH_THREADS_LIST="${THREADS[*]}"
export SWIFT_VERSION="$(swift --version 2>/dev/null | head -n 1)"
export GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
export GIT_DIRTY="$(git status --porcelain -- Sources Package.swift 2>/dev/null | wc -l)"
"$PYTHON" - <<'EOF'
import datetime, json, os, sys

env = os.environ
runs_dir = env["RUNS"]


def load_json(path):
    with open(path) as f:
        line = f.read().strip()
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        sys.exit(f"[swift-bert] ERROR: {path}: last output line is not JSON: {line[:200]!r}")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


runs = []
for t in env["BENCH_TEXTS_LIST"].split():
    for n in env["BENCH_THREADS_LIST"].split():
        tag = f"{t}-t{n}"
        rounds = range(1, int(env["ROUNDS"]) + 1)
        ours_rounds = [load_json(os.path.join(runs_dir, f"{tag}.r{k}.swift.json")) for k in rounds]
        peers_rounds = [load_json(os.path.join(runs_dir, f"{tag}.r{k}.peers.json")) for k in rounds]
        # The best of every round for each figure; a mismatch in any round counts.
        ours = dict(ours_rounds[0])
        for key in ("ids", "full"):
            ours[key] = max((r[key] for r in ours_rounds), key=lambda e: e["mb_per_s"])
        # bert tokenize: each of its figures the best of the rounds.
        cli = {k: min(r["cli"][k] for r in ours_rounds) for k in ("seconds", "json_seconds", "startup_s")}
        cli["mb_per_s"] = ours["bytes"] / cli["seconds"] / 1e6
        cli["json_mb_per_s"] = ours["bytes"] / cli["json_seconds"] / 1e6
        ours["cli"] = cli
        peers = dict(peers_rounds[0])
        for key in ("hf", "nanotoken"):
            peers[key] = max((r[key] for r in peers_rounds), key=lambda e: e["mb_per_s"])
        for key in ("swift_ids_mismatch_lines", "nanotoken_ids_mismatch_lines"):
            if all(key in r for r in peers_rounds):
                peers[key] = max(r[key] for r in peers_rounds)
        ours["rounds_ids_mb_per_s"] = [r["ids"]["mb_per_s"] for r in ours_rounds]
        peers["rounds_nanotoken_mb_per_s"] = [r["nanotoken"]["mb_per_s"] for r in peers_rounds]
        load = []
        for k in rounds:
            try:
                with open(os.path.join(runs_dir, f"{tag}.r{k}.loadavg")) as f:
                    load.append(f.read().split()[:3])
            except OSError:
                load.append(None)
        if "swift_ids_mismatch_lines" not in peers:
            sys.exit(f"[swift-bert] ERROR: {tag}: peers JSON has no swift_ids_mismatch_lines")
        if ours["bytes"] != peers["bytes"] or ours["lines"] != peers["lines"]:
            print(f"[swift-bert] WARNING: {tag}: ours read {ours['bytes']} bytes / {ours['lines']} lines, "
                  f"peers {peers['bytes']} / {peers['lines']}", file=sys.stderr)
        runs.append({
            "text": t,
            "text_file": os.path.join(env["CORPUS"], f"{t}.txt"),
            "threads": int(n),
            "loadavg_before": load,
            "ours": ours,
            "peers": peers,
            "ratio_ours_ids_vs_nanotoken": ours["ids"]["mb_per_s"] / peers["nanotoken"]["mb_per_s"],
            "ratio_ours_full_vs_hf": ours["full"]["mb_per_s"] / peers["hf"]["mb_per_s"],
            "swift_ids_mismatch_lines": peers["swift_ids_mismatch_lines"],
            "nanotoken_ids_mismatch_lines": peers.get("nanotoken_ids_mismatch_lines"),
            "ids_identical_to_hf": peers["swift_ids_mismatch_lines"] == 0,
        })

versions = runs[0]["peers"].get("versions", {}) if runs else {}
record = {
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "git_commit": env["GIT_COMMIT"],
    "git_uncommitted_source_files": int(env["GIT_DIRTY"] or 0),
    "swift_version": env["SWIFT_VERSION"],
    "build": env["BUILD_CMD"],
    "cpu": cpu_model(),
    "nproc": int(env["NPROC"]),
    "model": env["MODEL"],
    "rounds": int(env["ROUNDS"]),
    "repeat": {"ours": int(env["OURS_REPEAT"]), "peers": int(env["PEERS_REPEAT"])},
    "peer_versions": versions,
    "note": "figures are the best of the repeats of all rounds; mb_per_s = input UTF-8 bytes / seconds / 1e6; "
            "ours.ids = ids with [CLS]/[SEP] only, ours.full = full encodings (offsets, type ids, word ids); "
            "hf = tokenizers encode_batch; nanotoken = its faster batch API",
    "runs": runs,
    "all_ids_identical_to_hf": all(r["ids_identical_to_hf"] for r in runs),
}
os.makedirs(os.path.dirname(env["RESULT"]), exist_ok=True)
tmp = env["RESULT"] + ".partial"
with open(tmp, "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
os.replace(tmp, env["RESULT"])

hdr = ["text", "threads", "ours ids MB/s", "ours ids Mtok/s", "ours full MB/s", "HF MB/s",
       "nanotoken MB/s", "ids/nanotoken", "full/HF", "bert tokenize MB/s", "tokenize/ids", "json MB/s",
       "ids identical to HF"]
rows = []
for r in runs:
    o, p = r["ours"], r["peers"]
    mm = r["swift_ids_mismatch_lines"]
    rows.append([
        r["text"], str(r["threads"]),
        f"{o['ids']['mb_per_s']:.1f}", f"{o['ids']['tokens_per_s'] / 1e6:.2f}",
        f"{o['full']['mb_per_s']:.1f}", f"{p['hf']['mb_per_s']:.1f}", f"{p['nanotoken']['mb_per_s']:.1f}",
        f"{r['ratio_ours_ids_vs_nanotoken']:.2f}x", f"{r['ratio_ours_full_vs_hf']:.2f}x",
        f"{o['cli']['mb_per_s']:.1f}", f"{o['ids']['seconds'] / o['cli']['seconds']:.2f}x",
        f"{o['cli']['json_mb_per_s']:.1f}",
        "yes" if mm == 0 else f"no ({mm} lines differ)",
    ])
w = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(hdr)]
def fmt(cells):
    return "  ".join(c.ljust(w[i]) if i in (0, len(w) - 1) else c.rjust(w[i]) for i, c in enumerate(cells)).rstrip()
print()
print(f"Tokenizer benchmark: {record['cpu'] or 'unknown CPU'}, {record['nproc']} cpus; "
      f"tokenizers {versions.get('tokenizers')}, nanotoken {versions.get('nanotoken')}; "
      f"best of {record['rounds']} rounds x {record['repeat']['ours']} (ours) / x {record['repeat']['peers']} (peers)")
print(fmt(hdr))
print(fmt(["-" * x for x in w]))
for row in rows:
    print(fmt(row))
print("ids = ids only with [CLS]/[SEP] (vs nanotoken); full = offsets, type ids, word ids (vs HF encode_batch)")
print("bert tokenize = the whole process (load, read, tokenize, print to /dev/null); tokenize/ids = the library's ids "
      "time over the process's; json = bert tokenize --format json")
for r in runs:
    c = r["ours"]["cli"]
    steady = r["ours"]["ids"]["seconds"] / max(c["seconds"] - c["startup_s"], 1e-9)
    print(f"note: {r['text']} threads={r['threads']}: bert tokenize starts in {c['startup_s']:.3f} s (loading the "
          f"tokenizer); past it, {steady:.2f}x the library's ids speed")
bulk = []
for t in env["BENCH_TEXTS_LIST"].split():
    rounds = [load_json(os.path.join(runs_dir, f"bulk-{t}-t1.r{k}.json")) for k in range(1, int(env["ROUNDS"]) + 1)]
    lib = min(r["ids"]["seconds"] for r in rounds)
    proc = min(r["cli"]["seconds"] for r in rounds)
    bulk.append({"text": t, "bytes": rounds[0]["bytes"], "library_ids_seconds": lib, "process_seconds": proc,
                 "ratio_process_vs_library": lib / proc})
    print(f"bulk: {t} x {rounds[0]['bytes'] / 1e6:.0f} MB, 1 thread: bert tokenize {proc:.3f} s "
          f"({rounds[0]['bytes'] / proc / 1e6:.1f} MB/s), the library's ids {lib:.3f} s: the process at "
          f"{lib / proc:.2f}x the library")
record["bulk"] = bulk
with open(tmp, "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
os.replace(tmp, env["RESULT"])
for r in runs:
    nm = r["nanotoken_ids_mismatch_lines"]
    if nm:
        print(f"note: {r['text']} threads={r['threads']}: nanotoken's ids differ from HF's on {nm} lines")
# A 1-thread run whose process got clearly less than a whole CPU was competing with other work.
busy = []
for r in runs:
    if r["threads"] != 1:
        continue
    cpw = min(r["peers"]["hf"].get("cpu_per_wall") or 1.0, r["peers"]["nanotoken"].get("cpu_per_wall") or 1.0)
    if cpw < 0.9:
        load = next((l for l in r["loadavg_before"] if l), None)
        busy.append(f"{r['text']} (cpu/wall {cpw:.2f}, load {' '.join(load or ['?'])})")
if busy:
    print(f"note: the machine was busy: 1-thread peer runs got less than one CPU: {', '.join(busy)}; "
          "all timings are disturbed, rerun on an idle machine")
print(f"results: {env['RESULT']}")
if not record["all_ids_identical_to_hf"]:
    bad = ", ".join(f"{r['text']} threads={r['threads']}" for r in runs if not r["ids_identical_to_hf"])
    print(f"[swift-bert] FAIL: our ids differ from HF's ({bad}); see {runs_dir}/*.peers.out", file=sys.stderr)
    sys.exit(1)
EOF
