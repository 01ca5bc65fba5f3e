#!/usr/bin/env bash
# The low-precision benchmark: our encoder in fp32, bf16 and int8 beside PyTorch (fp32) and ONNX
# Runtime (fp32 and dynamic int8 on its fused graph), same shapes, same threads, same run; and
# the cosine of each low-precision side's sentence embeddings to its own fp32 ones.
#
#   bash scripts/bench-precision.sh
#
#   1. Fetches all-MiniLM-L6-v2 and the Rotten Tomatoes reviews (the 1,281 test reviews are the
#      sentences of the cosine check). Uses two venvs: .cache/bench-venv (torch + transformers, as
#      bench-serve.sh makes it; onnx 1.16 is added there without its dependencies, since
#      Infinity's pins keep numpy 1.x in it) for PyTorch and the ONNX export, and .cache/ort-venv
#      (onnxruntime, onnx, numpy, sympy, tokenizers) for ONNX Runtime.
#   2. Builds EncoderBench and bert with the plain `swift build -c release` (the kernels are chosen
#      at run time: this is the build users get).
#   3. Exports MiniLM and a random BERT-base to ONNX (scripts/export_onnx.py), fuses them with
#      ORT's BERT optimizer and quantizes them with quantize_dynamic (QInt8, per channel):
#      scripts/bench_encoder_ort.py prepare.
#   4. Embeds the reviews with `bert embed --precision fp32|bf16|int8` and with ORT fp32/int8, and
#      prints min and mean cosine of each low-precision side to its fp32.
#      A sentiment classifier fine-tuned from MiniLM on the reviews' train split (one epoch) labels
#      the test reviews in each precision: accuracy, and agreement with its fp32 labels.
#   5. For BENCH_ROUNDS rounds (default 2): MiniLM at 1x16, 1x128, 8x128, 32x128 and BERT-base at
#      8x128, ours in each precision, ORT fp32 and int8, PyTorch; the best time of each side.
#   6. Prints the table, the issue's goals, and writes .cache/bench/precision.json.
#
# Environment: BENCH_THREADS (default: nproc), BENCH_SECONDS per shape and side (default 3),
# BENCH_ROUNDS (default 2).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need_cmd swift "install Swift 6 from swift.org"
THREADS="${BENCH_THREADS:-$(nproc)}"
SECONDS_PER="${BENCH_SECONDS:-3}"
ROUNDS="${BENCH_ROUNDS:-2}"
MODEL="$CACHE/models/all-MiniLM-L6-v2"
OUTDIR="$CACHE/bench"
RUNS="$OUTDIR/precision-runs"
ONNX="$OUTDIR/onnx"
TORCH_VENV="$CACHE/bench-venv"
ORT_VENV="$CACHE/ort-venv"

log "step 1/6: model, reviews, venvs"
need_apt libopenblas-dev pkg-config
bash scripts/fetch-model.sh
[ -f "$CACHE/data/rotten-tomatoes/test.csv" ] || bash scripts/fetch-finetune-data.sh
if [ ! -x "$TORCH_VENV/bin/python" ] || ! "$TORCH_VENV/bin/python" -c "import torch, transformers" 2>/dev/null; then
    log "installing torch and transformers into $TORCH_VENV (the CUDA build of torch, about 5 GB)"
    python3 -m venv "$TORCH_VENV"
    "$TORCH_VENV/bin/pip" install -q torch transformers >&2 || die "pip install torch transformers failed"
fi
"$TORCH_VENV/bin/python" -c "import onnx" 2>/dev/null \
    || { "$TORCH_VENV/bin/pip" install -q --no-deps "onnx==1.16.2" && "$TORCH_VENV/bin/pip" install -q protobuf; } >&2 \
    || die "pip install onnx failed"
if ! "$ORT_VENV/bin/python" -c "import onnxruntime, onnx, sympy, tokenizers" 2>/dev/null; then
    python3 -m venv "$ORT_VENV"
    "$ORT_VENV/bin/pip" install -q onnxruntime onnx numpy sympy "tokenizers==0.23.3" >&2 \
        || die "pip install onnxruntime failed"
fi

log "step 2/6: swift build -c release (EncoderBench, bert)"
swift build -c release --product EncoderBench >&2 || die "swift build failed"
swift build -c release --product bert >&2 || die "swift build failed"
BIN="$(swift build -c release --show-bin-path)"

log "step 3/6: ONNX export, fusion, dynamic int8"
mkdir -p "$ONNX"
for model in minilm base; do
    if [ ! -f "$ONNX/$model/int8.onnx" ]; then
        if [ "$model" = minilm ]; then src=(--model "$MODEL"); heads=12; hidden=384; else src=(--config-preset base); heads=12; hidden=768; fi
        "$TORCH_VENV/bin/python" scripts/export_onnx.py "${src[@]}" --out "$ONNX/$model-export.onnx" 2>/dev/null
        "$ORT_VENV/bin/python" scripts/bench_encoder_ort.py prepare --onnx "$ONNX/$model-export.onnx" \
            --heads "$heads" --hidden "$hidden" --work "$ONNX/$model" 2>"$ONNX/$model-prepare.log" \
            || die "ORT prepare failed (see $ONNX/$model-prepare.log)"
    fi
done

rm -rf "$RUNS"
mkdir -p "$RUNS"
log "step 4/6: embeddings of the reviews, each side against its own fp32"
"$PYTHON" - "$CACHE/data/rotten-tomatoes/test.csv" "$RUNS/reviews.txt" <<'PY'
import csv, sys
rows = [r["text"].replace("\n", " ") for r in csv.DictReader(open(sys.argv[1], encoding="utf-8"))]
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(rows) + "\n")
PY
for p in fp32 bf16 int8; do
    "$BIN/bert" embed --model "$MODEL" --precision "$p" --digits 9 --threads "$THREADS" "$RUNS/reviews.txt" \
        >"$RUNS/ours-embed-$p.jsonl"
done
"$ORT_VENV/bin/python" scripts/bench_encoder_ort.py embed --work "$ONNX/minilm" --tokenizer "$MODEL" \
    --texts "$RUNS/reviews.txt" --threads "$THREADS" >"$RUNS/ort-embed.json"

# A real classifier: MiniLM fine-tuned on the reviews' train split (one epoch, kept in
# .cache/bench/rt-classifier), its labels for the test reviews in each precision.
CLASSIFIER="$OUTDIR/rt-classifier"
if [ ! -f "$CLASSIFIER/model.safetensors" ]; then
    log "fine-tuning the sentiment classifier (one epoch of the train split)"
    "$BIN/bert" finetune --task classify --model "$MODEL" --train "$CACHE/data/rotten-tomatoes/train.csv" \
        --validation "$CACHE/data/rotten-tomatoes/validation.csv" --out "$CLASSIFIER" --epochs 1 --batch-size 32 \
        --max-length 64 --threads "$THREADS" --log-every 50 >&2
fi
for p in fp32 bf16 int8; do
    "$BIN/bert" predict --model "$CLASSIFIER" --precision "$p" --threads "$THREADS" "$RUNS/reviews.txt" \
        >"$RUNS/ours-predict-$p.jsonl"
done

CASES=("minilm 1x16" "minilm 1x128" "minilm 8x128" "minilm 32x128" "base 8x128")
log "step 5/6: ${#CASES[@]} cases x $ROUNDS rounds, $THREADS threads, ${SECONDS_PER}s per case and side"
for round in $(seq 1 "$ROUNDS"); do
    for case in "${CASES[@]}"; do
        read -r model shape <<<"$case"
        if [ "$model" = minilm ]; then ours=(--model "$MODEL"); peer=(--model "$MODEL"); else ours=(--preset base); peer=(--config-preset base); fi
        log "round $round: $model $shape"
        for p in fp32 bf16 int8; do
            "$BIN/EncoderBench" "${ours[@]}" --threads "$THREADS" --shapes "$shape" --seconds "$SECONDS_PER" \
                --precision "$p" --json >"$RUNS/ours-$p-$model-$shape-$round.json"
        done
        "$ORT_VENV/bin/python" scripts/bench_encoder_ort.py time --work "$ONNX/$model" --threads "$THREADS" \
            --shapes "$shape" --seconds "$SECONDS_PER" 2>/dev/null >"$RUNS/ort-$model-$shape-$round.json"
        "$TORCH_VENV/bin/python" scripts/bench_encoder_peer.py "${peer[@]}" --threads "$THREADS" --shapes "$shape" \
            --seconds "$SECONDS_PER" --json 2>/dev/null >"$RUNS/torch-$model-$shape-$round.json"
    done
done

log "step 6/6: summary (also in $OUTDIR/precision.json)"
RUNS="$RUNS" OUT="$OUTDIR/precision.json" TEST_CSV="$CACHE/data/rotten-tomatoes/test.csv" THREADS="$THREADS" GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
"$PYTHON" - <<'PY'
import glob, json, math, os, re
runs = os.environ["RUNS"]
best = {}
def keep(key, seconds):
    if key not in best or seconds < best[key]:
        best[key] = seconds
for path in glob.glob(f"{runs}/*-*x*-*.json"):
    name = os.path.basename(path)
    data = json.load(open(path))
    m = re.match(r"(ours-(fp32|bf16|int8)|ort|torch)-(minilm|base)-(\d+x\d+)-\d+\.json", name)
    side, precision, model, shape = m.group(1), m.group(2), m.group(3), m.group(4)
    for r in data["results"]:
        label = side if side.startswith("ours") else f"{side}-{r.get('variant', 'fp32')}"
        keep((label, model, shape), r["best_s"])
def cosines(a, b):
    out = []
    for x, y in zip(a, b):
        dot = sum(p * q for p, q in zip(x, y))
        out.append(dot / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y)))
    return out
def lines(path):
    return [json.loads(l) for l in open(path)]
ours = {p: lines(f"{runs}/ours-embed-{p}.jsonl") for p in ("fp32", "bf16", "int8")}
ort = json.load(open(f"{runs}/ort-embed.json"))
cos = {
    "ours bf16": cosines(ours["bf16"], ours["fp32"]), "ours int8": cosines(ours["int8"], ours["fp32"]),
    "ort int8": cosines(ort["int8"], ort["fp32"]), "ours fp32 vs ort fp32": cosines(ours["fp32"], ort["fp32"]),
}
print(f"cosine to fp32 over {len(ours['fp32'])} Rotten Tomatoes reviews:")
for k, v in cos.items():
    print(f"  {k:24} min {min(v):.5f} mean {sum(v) / len(v):.5f}")
import csv
truth = [r["label"] for r in csv.DictReader(open(os.environ["TEST_CSV"], encoding="utf-8"))]
labels = {p: [json.loads(l)["label"] for l in open(f"{runs}/ours-predict-{p}.jsonl")] for p in ("fp32", "bf16", "int8")}
accuracy = {p: sum(a == b for a, b in zip(v, truth)) / len(truth) for p, v in labels.items()}
agreement = {p: sum(a == b for a, b in zip(labels[p], labels["fp32"])) / len(truth) for p in ("bf16", "int8")}
print(f"classifier on {len(truth)} test reviews: accuracy " + ", ".join(f"{p} {100 * a:.2f}%" for p, a in accuracy.items())
      + "; labels equal to fp32's: " + ", ".join(f"{p} {100 * a:.2f}%" for p, a in agreement.items()))
cols = ["ours-fp32", "ours-bf16", "ours-int8", "ort-fp32", "ort-int8", "torch-fp32"]
print(f"threads {os.environ['THREADS']}; ms, best of the rounds")
print(f"{'model':7} {'shape':>7} " + " ".join(f"{c:>10}" for c in cols) + "  int8/ort-int8  bf16/fp32  int8/torch")
rows = []
for model, shape in [("minilm", "1x16"), ("minilm", "1x128"), ("minilm", "8x128"), ("minilm", "32x128"), ("base", "8x128")]:
    t = {c: best.get((c, model, shape)) for c in cols}
    if any(v is None for v in t.values()):
        continue
    row = {"model": model, "shape": shape, **{c: t[c] for c in cols},
           "int8_vs_ort_int8": t["ort-int8"] / t["ours-int8"], "bf16_vs_fp32": t["ours-fp32"] / t["ours-bf16"],
           "int8_vs_torch": t["torch-fp32"] / t["ours-int8"]}
    rows.append(row)
    print(f"{model:7} {shape:>7} " + " ".join(f"{t[c] * 1e3:10.2f}" for c in cols)
          + f"  {row['int8_vs_ort_int8']:12.2f}x {row['bf16_vs_fp32']:9.2f}x {row['int8_vs_torch']:10.2f}x")
r = {(x["model"], x["shape"]): x for x in rows}
goals = {
    "int8 >= 1.5x ORT int8 at 8x128": r[("minilm", "8x128")]["int8_vs_ort_int8"] >= 1.5,
    "int8 >= 1.5x ORT int8 at 1x128": r[("minilm", "1x128")]["int8_vs_ort_int8"] >= 1.5,
    "int8 min cosine >= 0.995": min(cos["ours int8"]) >= 0.995,
    "bf16 >= 1.7x our fp32 (MiniLM 8x128)": r[("minilm", "8x128")]["bf16_vs_fp32"] >= 1.7,
    "bf16 min cosine >= 0.9995": min(cos["ours bf16"]) >= 0.9995,
    "1x16 int8 >= 4x PyTorch fp32": r[("minilm", "1x16")]["int8_vs_torch"] >= 4,
    "classifier labels agree with fp32 on >= 99% (bf16, int8)": min(agreement.values()) >= 0.99,
    "classifier accuracy within 0.5 points of fp32": all(abs(accuracy[p] - accuracy["fp32"]) <= 0.005 for p in ("bf16", "int8")),
}
for goal, met in goals.items():
    print(f"  goal {goal}: {'met' if met else 'NOT met'}")
with open(os.environ["OUT"], "w") as f:
    json.dump({"threads": int(os.environ["THREADS"]), "commit": os.environ["GIT_COMMIT"], "rows": rows,
               "cosines": {k: {"min": min(v), "mean": sum(v) / len(v)} for k, v in cos.items()},
               "classifier": {"accuracy": accuracy, "agreement_with_fp32": agreement}, "goals": goals},
              f, indent=1)
PY
