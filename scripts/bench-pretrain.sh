#!/usr/bin/env bash
# The pretraining benchmark: training tokens/s of one full BertForPreTraining step (forward and
# backward with dropout, clipping, AdamW, schedule), swift-bert against PyTorch + transformers
# measured in the same run with the same config, batch and threads.
#
#   bash scripts/bench-pretrain.sh
#
#   1. pip-installs torch and transformers into $PYTHON (lib.sh's .cache/venv) when missing.
#   2. Builds PretrainBench tuned for this CPU (the flags live here, never in Package.swift).
#   3. Cases: the mini preset (4 layers, H=256, vocab 30522) at 32x128, the batch of the README's
#      real run, and BERT-base at 8x128. PretrainBench, then scripts/bench_pretrain_peer.py, case
#      by case, for BENCH_ROUNDS rounds (default 2); the best step time of each side is kept.
#   4. Prints ours / PyTorch per case; writes .cache/bench/pretrain.json.
#
# Environment: BENCH_THREADS (default: nproc), BENCH_SECONDS per case and side (default 10),
# BENCH_ROUNDS (default 2), BENCH_CASES (default "mini 32x128,base 8x128").
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need_cmd swift "install Swift 6 from swift.org"
THREADS="${BENCH_THREADS:-$(nproc)}"
SECONDS_PER="${BENCH_SECONDS:-10}"
ROUNDS="${BENCH_ROUNDS:-2}"
IFS=',' read -r -a CASES <<<"${BENCH_CASES:-mini 32x128,base 8x128}"
OUTDIR="$CACHE/bench"
RUNS="$OUTDIR/pretrain-runs"
BUILD=(swift build -c release --scratch-path .build-bench --product PretrainBench
       -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DBERT_FMA)

log "step 1/4: OpenBLAS, torch + transformers"
need_apt libopenblas-dev pkg-config
need_pip torch transformers

log "step 2/4: ${BUILD[*]}"
"${BUILD[@]}" >&2 || die "swift build failed"
BIN="$("${BUILD[@]}" --show-bin-path)/PretrainBench"

rm -rf "$RUNS"
mkdir -p "$RUNS"
log "step 3/4: ${#CASES[@]} cases x $ROUNDS rounds, $THREADS threads, ${SECONDS_PER}s per case and side"
for round in $(seq 1 "$ROUNDS"); do
    for case in "${CASES[@]}"; do
        read -r preset shape <<<"$case"
        log "round $round: $preset $shape"
        "$BIN" --preset "$preset" --threads "$THREADS" --shapes "$shape" --seconds "$SECONDS_PER" --json \
            >"$RUNS/ours-$preset-$shape-$round.json"
        "$PYTHON" scripts/bench_pretrain_peer.py --preset "$preset" --threads "$THREADS" --shapes "$shape" \
            --seconds "$SECONDS_PER" --json 2>/dev/null >"$RUNS/peer-$preset-$shape-$round.json"
    done
done

log "step 4/4: summary (also in $OUTDIR/pretrain.json)"
RUNS="$RUNS" OUT="$OUTDIR/pretrain.json" THREADS="$THREADS" GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
"$PYTHON" - <<'PY'
import glob, json, os
runs = os.environ["RUNS"]
best = {}
peer_name = None
for path in sorted(glob.glob(f"{runs}/*.json")):
    side, preset = os.path.basename(path).split("-")[:2]
    data = json.load(open(path))
    if side == "peer":
        peer_name = data["peer"]
    for r in data["results"]:
        key = (preset, r["shape"], side)
        if key not in best or r["best_s"] < best[key]["best_s"]:
            best[key] = r
rows = []
print(f"threads: {os.environ['THREADS']}; peer: {peer_name} (BertForPreTraining, torch.optim.AdamW)")
print(f"{'preset':8} {'shape':>7} {'ours ms':>9} {'torch ms':>9} {'ours tok/s':>11} {'torch tok/s':>12} {'ratio':>6}")
for (preset, shape, side), r in sorted(best.items()):
    if side != "ours":
        continue
    p = best.get((preset, shape, "peer"))
    ratio = p["best_s"] / r["best_s"] if p else float("nan")
    rows.append({"preset": preset, "shape": shape, "ours_s": r["best_s"], "torch_s": p["best_s"] if p else None, "ratio": ratio})
    print(f"{preset:8} {shape:>7} {r['best_s']*1e3:9.1f} {p['best_s']*1e3 if p else float('nan'):9.1f} "
          f"{r['tokens_per_s']:11.0f} {p['tokens_per_s'] if p else float('nan'):12.0f} {ratio:5.2f}x")
with open(os.environ["OUT"], "w") as f:
    json.dump({"threads": int(os.environ["THREADS"]), "commit": os.environ["GIT_COMMIT"], "rows": rows}, f, indent=1)
PY
