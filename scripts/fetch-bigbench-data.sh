#!/usr/bin/env bash
# Question answering, multiple choice and sentence-pair data from the BIG-bench tasks in PyPI's
# bigbench==1.0.0 source distribution (358 MB; downloaded, never installed):
#
#   .cache/data/disfl-qa/{train,validation,test}.json     SQuAD 2.0 format
#   .cache/data/social-iqa/{train,validation,test}.jsonl  {"context", "endings", "label"}
#   .cache/data/vitaminc/{train,validation,test}.csv      text (evidence), text_pair (claim), label
#
# disfl_qa: questions with disfluencies over SQuAD 2.0 contexts; the target "unknown" becomes an
# unanswerable question, other targets are located in the context (first occurrence; questions
# whose answer is not found verbatim are dropped and counted). Split 80/10/10 by context, so no
# context is in two splits. social_iqa: the input is the context, target_scores the three endings
# (the one scored 1 is the label; 4 questions that repeat an ending are dropped); split 80/10/10. vitaminc_fact_verification: "evidence\nClaim: c",
# labels True/False/Neither; a seeded sample of 6,000/1,000/1,000 (the whole set is 54,668).
# Fixed seeds: the same files on every machine. Idempotent.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEST="$CACHE/data"
if [ -s "$DEST/disfl-qa/test.json" ] && [ -s "$DEST/social-iqa/test.jsonl" ] && [ -s "$DEST/vitaminc/test.csv" ]; then
    log "BIG-bench data already present in $DEST"
    exit 0
fi
ensure_python
TMP="$(mktemp -d "${TMPDIR:-/tmp}/swift-bert-bigbench.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
log "downloading bigbench==1.0.0 (source distribution, 358 MB) from PyPI"
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: -d "$TMP" "bigbench==1.0.0" >&2 \
    || die "pip download bigbench==1.0.0 failed"
tar -xzf "$TMP"/bigbench-1.0.0.tar.gz -C "$TMP" \
    bigbench-1.0.0/bigbench/benchmark_tasks/disfl_qa/task.json \
    bigbench-1.0.0/bigbench/benchmark_tasks/social_iqa/task.json \
    bigbench-1.0.0/bigbench/benchmark_tasks/vitaminc_fact_verification/task.json
"$PYTHON" - "$TMP/bigbench-1.0.0/bigbench/benchmark_tasks" "$DEST" <<'PY'
import csv, json, os, random, sys
tasks, dest = sys.argv[1:3]
def load(name):
    with open(os.path.join(tasks, name, "task.json"), encoding="utf-8") as f:
        return json.load(f)["examples"]
def write(path, text):
    with open(path + ".partial", "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(path + ".partial", path)
def log(msg):
    print(f"[swift-bert] {msg}", file=sys.stderr)

# disfl_qa -> SQuAD 2.0, split by context.
os.makedirs(os.path.join(dest, "disfl-qa"), exist_ok=True)
by_context, dropped = {}, 0
for i, e in enumerate(load("disfl_qa")):
    question, context = e["input"].split("\ncontext:", 1)
    question, context = question.strip(), context.strip()
    target = e["target"] if isinstance(e["target"], str) else e["target"][0]
    qa = {"id": f"disfl-{i}", "question": question}
    if target.strip().lower() == "unknown":
        qa.update(answers=[], is_impossible=True)
    else:
        start = context.find(target)
        if start < 0:
            dropped += 1
            continue
        # answer_start counts Unicode code points, as SQuAD (Python str indices).
        qa.update(answers=[{"text": target, "answer_start": start}], is_impossible=False)
    by_context.setdefault(context, []).append(qa)
contexts = sorted(by_context)
random.Random(20261201).shuffle(contexts)
n = len(contexts)
for name, part in (("train", contexts[: int(0.8 * n)]), ("validation", contexts[int(0.8 * n): int(0.9 * n)]), ("test", contexts[int(0.9 * n):])):
    data = {"version": "v2.0", "data": [{"title": "disfl_qa", "paragraphs": [{"context": c, "qas": by_context[c]} for c in part]}]}
    write(os.path.join(dest, "disfl-qa", name + ".json"), json.dumps(data, ensure_ascii=False))
    questions = sum(len(by_context[c]) for c in part)
    impossible = sum(q["is_impossible"] for c in part for q in by_context[c])
    log(f"disfl-qa/{name}.json: {questions} questions ({impossible} unanswerable) on {len(part)} contexts")
log(f"disfl-qa: {dropped} questions dropped (answer not found verbatim in the context)")

# social_iqa -> multiple choice JSON Lines.
os.makedirs(os.path.join(dest, "social-iqa"), exist_ok=True)
rows = []
for e in load("social_iqa"):
    endings = list(e["target_scores"])
    labels = [i for i, k in enumerate(endings) if e["target_scores"][k] == 1]
    # Three distinct endings (a few questions repeat an ending, which the JSON object merges).
    if len(labels) == 1 and len(endings) == 3:
        rows.append({"context": e["input"].strip(), "endings": endings, "label": labels[0]})
random.Random(20261201).shuffle(rows)
n = len(rows)
for name, part in (("train", rows[: int(0.8 * n)]), ("validation", rows[int(0.8 * n): int(0.9 * n)]), ("test", rows[int(0.9 * n):])):
    write(os.path.join(dest, "social-iqa", name + ".jsonl"), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part))
    log(f"social-iqa/{name}.jsonl: {len(part)} questions")

# vitaminc -> sentence pairs.
os.makedirs(os.path.join(dest, "vitaminc"), exist_ok=True)
rows = []
for e in load("vitaminc_fact_verification"):
    evidence, claim = e["input"].split("\nClaim:", 1)
    label = [k for k, v in e["target_scores"].items() if v == 1]
    if len(label) == 1:
        rows.append((evidence.strip(), claim.strip(), label[0]))
random.Random(20261201).shuffle(rows)
for name, part in (("train", rows[:6000]), ("validation", rows[6000:7000]), ("test", rows[7000:8000])):
    path = os.path.join(dest, "vitaminc", name + ".csv")
    with open(path + ".partial", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "text_pair", "label"])
        w.writerows(part)
    os.replace(path + ".partial", path)
    log(f"vitaminc/{name}.csv: {len(part)} pairs")
PY
log "BIG-bench data ready in $DEST"
