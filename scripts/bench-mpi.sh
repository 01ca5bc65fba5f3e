#!/usr/bin/env bash
# The data-parallel benchmark: `bert pretrain` training tokens/s of 2 MPI ranks x 1 thread against
# 1 process x 2 threads on this machine, same data, model, global batch and steps, in the same run;
# and how long each step waits for its gradient sums after the backward, with the sums bucketed
# (started layer by layer during the backward) and as one sum after the backward.
#
#   bash scripts/bench-mpi.sh
#
#   1. Installs Open MPI (Debian's libopenmpi-dev, openmpi-bin) when missing; builds bert with
#      the MPI trait (swift build -c release --traits MPI, as scripts/test.sh does).
#   2. Prepares shards once from .cache/corpus/en.txt with all-MiniLM-L6-v2's vocabulary (30522).
#   3. For BENCH_ROUNDS rounds (default 2), in turn: 1 process x 2 threads; mpirun -np 2 (1 thread
#      each), bucketed; mpirun -np 2, after-backward. Each trains BENCH_STEPS steps (default 12) of
#      --batch-size 32 --seq-len 128 on BENCH_PRESET (default medium: 8 layers, H=512, 30M
#      parameters with the 30522 vocabulary); the best tokens/s of each is kept.
#   4. Prints the ratios and the sums' wait per step; writes .cache/bench/mpi.json.
#
# Environment: BENCH_PRESET, BENCH_STEPS, BENCH_ROUNDS, BENCH_BATCH (default 32).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need_cmd swift "install Swift 6 from swift.org"
PRESET="${BENCH_PRESET:-medium}"
STEPS="${BENCH_STEPS:-12}"
ROUNDS="${BENCH_ROUNDS:-2}"
BATCH="${BENCH_BATCH:-32}"
OUTDIR="$CACHE/bench"
RUNS="$OUTDIR/mpi-runs"
DATA="$OUTDIR/mpi-data"
BUILD=(swift build -c release --traits MPI --product bert)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # mpirun refuses root otherwise

log "step 1/4: Open MPI, ${BUILD[*]}"
need_apt libopenblas-dev pkg-config libopenmpi-dev openmpi-bin
"${BUILD[@]}" >&2 || die "swift build failed"
BIN="$("${BUILD[@]}" --show-bin-path)/bert"

log "step 2/4: shards of .cache/corpus/en.txt (all-MiniLM-L6-v2's vocabulary)"
[ -f "$CACHE/corpus/en.txt" ] || bash scripts/prepare-test-data.sh
VOCAB="$CACHE/models/all-MiniLM-L6-v2/vocab.txt"
[ -f "$VOCAB" ] || bash scripts/fetch-model.sh
if [ ! -f "$DATA/manifest.json" ]; then
    rm -rf "$DATA"
    "$BIN" prepare-data --corpus "$CACHE/corpus/en.txt" --vocab "$VOCAB" --out "$DATA" --seq-len 128 >&2
fi

rm -rf "$RUNS"
mkdir -p "$RUNS"
ARGS=(pretrain --data "$DATA" --preset "$PRESET" --steps "$STEPS" --batch-size "$BATCH" --seq-len 128
      --log-every "$STEPS" --eval-every 0 --checkpoint-every 0 --warmup 2)
log "step 3/4: $ROUNDS rounds of $STEPS steps, $PRESET, batch $BATCH x 128"
for round in $(seq 1 "$ROUNDS"); do
    log "round $round: 1 process x 2 threads"
    "$BIN" "${ARGS[@]}" --out "$RUNS/one-$round" --threads 2 >"$RUNS/one-$round.out" 2>"$RUNS/one-$round.err"
    for sums in bucketed after-backward; do
        log "round $round: mpirun -np 2, 1 thread each, $sums sums"
        mpirun --oversubscribe -np 2 "$BIN" "${ARGS[@]}" --out "$RUNS/two-$sums-$round" --gradient-sums "$sums" \
            >"$RUNS/two-$sums-$round.out" 2>"$RUNS/two-$sums-$round.err"
    done
    rm -rf "$RUNS"/one-"$round" "$RUNS"/two-*-"$round"
done

log "step 4/4: summary (also in $OUTDIR/mpi.json)"
RUNS="$RUNS" OUT="$OUTDIR/mpi.json" PRESET="$PRESET" BATCH="$BATCH" STEPS="$STEPS" \
GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)" "$PYTHON" - <<'PY'
import glob, json, os, re
runs = os.environ["RUNS"]
def parse(stem):
    out = open(f"{stem}.out").read(); err = open(f"{stem}.err").read()
    rate = float(re.findall(r"([0-9.]+) tokens/s", out)[-1])
    params = int(re.search(r"hidden \d+, (\d+) parameters", err).group(1))
    wait = re.search(r"([0-9.]+) ms a step waited for after the backward, ([0-9.]+)% of the step \(([0-9.]+) ms", err)
    return rate, params, (float(wait.group(1)), float(wait.group(2)), float(wait.group(3))) if wait else None
best = {}
for path in glob.glob(f"{runs}/*.out"):
    stem = path[:-4]
    kind = re.sub(r"-\d+$", "", os.path.basename(stem))
    rate, params, wait = parse(stem)
    if kind not in best or rate > best[kind]["tokens_per_s"]:
        best[kind] = {"tokens_per_s": rate, "parameters": params, "wait_ms": wait and wait[0],
                      "wait_share": wait and wait[1], "skew_ms": wait and wait[2]}
one = best["one"]["tokens_per_s"]
print(f"{os.environ['PRESET']}, {best['one']['parameters']} parameters, batch {os.environ['BATCH']} x 128, "
      f"{os.environ['STEPS']} steps (best of the rounds):")
print(f"  1 process x 2 threads     {one:9.0f} tokens/s")
for sums in ("bucketed", "after-backward"):
    b = best[f"two-{sums}"]
    print(f"  2 ranks x 1 thread, {sums:15s} {b['tokens_per_s']:9.0f} tokens/s  {b['tokens_per_s'] / one:5.2f}x  "
          f"waits {b['wait_ms']:.1f} ms a step after its backward ({b['wait_share']:.1f}% of the step; "
          f"{b['skew_ms']:.1f} ms of it for the other rank's backward)")
gradient_mb = 4 * best["one"]["parameters"] / 1e6
after = best["two-after-backward"]["wait_ms"] - best["two-after-backward"]["skew_ms"]
print(f"  one sum of the {gradient_mb:.0f} MB gradient between 2 local ranks: {after:.1f} ms "
      f"({gradient_mb / max(after, 1e-9):.2f} GB/s of gradient)")
json.dump({"commit": os.environ["GIT_COMMIT"], "preset": os.environ["PRESET"], "batch": int(os.environ["BATCH"]),
           "steps": int(os.environ["STEPS"]), "results": best}, open(os.environ["OUT"], "w"), indent=2)
PY
