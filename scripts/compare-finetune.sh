#!/usr/bin/env bash
# Fine-tunes all-MiniLM-L6-v2 on one task with `bert finetune` and with transformers
# (scripts/finetune_peer.py) from the same start, side by side, and compares them.
#
#   bash scripts/compare-finetune.sh TASK [--seed N] [--no-dropout] [--epochs N]
#
# --summary-only recomputes summary.json from an earlier run's files.
#
# TASK: sentiment (Rotten Tomatoes), pairs (VitaminC), ner (WNUT tweets), choice (social_iqa),
# qa (disfl_qa). Settings are the README's. The same start means: `bert finetune --epochs 0`
# writes the encoder with its newly initialised head, transformers starts from that folder, and
# both visit the examples in the same order (finetune_peer.py reproduces bert's shuffle), so only
# the dropout masks differ. --no-dropout sets both dropout probabilities to 0 in a copy of the
# model's config: then both runs are deterministic and should agree step by step.
#
# Both sides run at once with one thread each. Results go to .cache/runs/compare/TASK-sSEED[-nodrop]/:
# ours/ (the best model), init/, ours.log, ours-test.json, peer.json, peer.log, peer.steps and
# summary.json (validation per epoch, test, and the largest difference between the two sides'
# running training losses at the steps bert logs).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

task="${1:-}"
shift || true
seed=42 nodrop=0 epochs="" summary_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --seed) seed="$2"; shift 2 ;;
        --no-dropout) nodrop=1; shift ;;
        --epochs) epochs="$2"; shift 2 ;;
        --summary-only) summary_only=1; shift ;;
        *) die "unknown argument $1" ;;
    esac
done

D="$CACHE/data"
case "$task" in
    sentiment) kind=classify; files=("$D/rotten-tomatoes/"{train,validation,test}.csv); settings=(2 5e-5 32 64) ;;
    pairs) kind=classify; files=("$D/vitaminc/"{train,validation,test}.csv); settings=(1 5e-5 32 128) ;;
    ner) kind=tag; files=("$D/wnut/"{train,validation,test}.txt); settings=(3 5e-5 16 128) ;;
    choice) kind=choice; files=("$D/social-iqa/"{train,validation,test}.jsonl); settings=(3 5e-5 16 64) ;;
    qa) kind=qa; files=("$D/disfl-qa/"{train,validation,test}.json); settings=(1 5e-5 16 384) ;;
    *) die "usage: compare-finetune.sh sentiment|pairs|ner|choice|qa [--seed N] [--no-dropout] [--epochs N]" ;;
esac
[ -n "$epochs" ] && settings[0]="$epochs"
for f in "${files[@]}"; do
    [ -f "$f" ] || die "$f is missing: run scripts/fetch-finetune-data.sh and scripts/fetch-bigbench-data.sh"
done
MODEL="$CACHE/models/all-MiniLM-L6-v2"
[ -f "$MODEL/model.safetensors" ] || bash "$REPO_ROOT/scripts/fetch-model.sh"
ensure_python
need_pip torch transformers seqeval

OUT="$CACHE/runs/compare/$task-s$seed$([ "$nodrop" = 1 ] && echo -nodrop || true)"
if [ "$summary_only" = 0 ]; then
    rm -rf "$OUT"
    mkdir -p "$OUT"
    if [ "$nodrop" = 1 ]; then
        # A copy of the model folder whose config turns dropout off.
        mkdir -p "$OUT/base"
        for f in "$MODEL"/*; do ln -s "$(realpath "$f")" "$OUT/base/"; done
        rm "$OUT/base/config.json"
        "$PYTHON" -c "import json,sys; c=json.load(open(sys.argv[1])); c['hidden_dropout_prob']=0.0; c['attention_probs_dropout_prob']=0.0; json.dump(c, open(sys.argv[2], 'w'), indent=1)" \
            "$MODEL/config.json" "$OUT/base/config.json"
        MODEL="$OUT/base"
    fi

    if [ -z "${BERT:-}" ]; then
        log "building bert (release)"
        (cd "$REPO_ROOT" && swift build -c release --product bert -Xswiftc -target-cpu -Xswiftc native >&2)
        BERT="$(cd "$REPO_ROOT" && swift build -c release --show-bin-path -Xswiftc -target-cpu -Xswiftc native)/bert"
    fi
    hyper=(--lr "${settings[1]}" --batch-size "${settings[2]}" --max-length "${settings[3]}" --seed "$seed")
    common=(--epochs "${settings[0]}" "${hyper[@]}")

    log "$task: writing the shared start (bert finetune --epochs 0)"
    "$BERT" finetune --task "$kind" --model "$MODEL" --train "${files[0]}" --validation "${files[1]}" --out "$OUT/init" \
        --epochs 0 "${hyper[@]}" >/dev/null 2>"$OUT/init.log" || { cat "$OUT/init.log" >&2; die "bert finetune --epochs 0 failed"; }

    log "$task: training both sides at once, one thread each (logs: $OUT/ours.log, $OUT/peer.log)"
    "$BERT" finetune --task "$kind" --model "$MODEL" --train "${files[0]}" --validation "${files[1]}" --out "$OUT/ours" \
        "${common[@]}" --threads 1 >"$OUT/ours.log" 2>&1 &
    ours=$!
    "$PYTHON" "$REPO_ROOT/scripts/finetune_peer.py" --task "$kind" --model "$MODEL" --init "$OUT/init" \
        --train "${files[0]}" --validation "${files[1]}" --test "${files[2]}" "${common[@]}" --threads 1 \
        --steps-log "$OUT/peer.steps" --out "$OUT/peer.json" >"$OUT/peer.log" 2>&1 &
    peer=$!
    wait "$ours" || { tail -5 "$OUT/ours.log" >&2; die "bert finetune failed"; }
    "$BERT" evaluate --model "$OUT/ours" --data "${files[2]}" >"$OUT/ours-test.json"
    wait "$peer" || { tail -5 "$OUT/peer.log" >&2; die "finetune_peer.py failed"; }
fi

"$PYTHON" - "$OUT" "$kind" <<'EOF'
import json, re, sys
out, kind = sys.argv[1], sys.argv[2]
key = {"classify": "accuracy", "tag": "f1", "choice": "accuracy", "qa": "f1"}[kind]
scale = 1 if kind == "qa" else 100  # QA metrics are already percentages on both sides
ours_history = json.load(open(f"{out}/ours/eval_history.json"))
peer = json.load(open(f"{out}/peer.json"))
steps = [float(x) for x in open(f"{out}/peer.steps")]
per_epoch = len(steps) // len(peer["history"])
worst = 0.0
for m in re.finditer(r"epoch (\d+)\s+step (\d+)/\d+\s+loss ([0-9.]+)", open(f"{out}/ours.log").read()):
    epoch, step, loss = int(m[1]), int(m[2]), float(m[3])
    first = (epoch - 1) * per_epoch
    if step <= len(steps):
        theirs = sum(steps[first:step]) / (step - first)
        worst = max(worst, abs(loss - theirs) / theirs)
summary = {
    "metric": key,
    "validation_per_epoch": {"ours": [round(scale * h["validation"][key], 2) for h in ours_history],
                             "transformers": [round(scale * h["validation"][key], 2) for h in peer["history"]]},
    "train_loss_per_epoch": {"ours": [round(h["train_loss"], 4) for h in ours_history],
                             "transformers": [round(h["train_loss"], 4) for h in peer["history"]]},
    "largest_relative_difference_of_logged_running_losses": round(worst, 5),
    "test": {"ours": round(scale * json.load(open(f"{out}/ours-test.json"))[key], 2),
             "transformers": round(scale * peer["test"][key], 2)},
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(summary, indent=1))
EOF
