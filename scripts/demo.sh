#!/usr/bin/env bash
# The main job, end to end, on a fresh machine with Swift: fetches a real BERT tokenizer
# (all-MiniLM-L6-v2) and real English and Chinese prose, builds `bert`, tokenizes the prose,
# learns a WordPiece vocabulary from the English text and tokenizes with it, then loads the real
# model and computes sentence embeddings, exactly as sentence-transformers does, then pretrains a
# small BERT from scratch (masked LM + next sentence) and asks it to fill in masked words, then
# fine-tunes the real model on Rotten Tomatoes review sentences (2,000 of them: about a minute and a
# half) and predicts and evaluates with the result (about 80% accuracy on 500 held-out reviews).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
need_cmd swift "install Swift 6 from swift.org"
need_apt libopenblas-dev pkg-config

log "step 1/8: the all-MiniLM-L6-v2 tokenizer and the prose corpus"
bash scripts/fetch-model.sh
bash scripts/fetch-corpus.sh
MODEL="$CACHE/models/all-MiniLM-L6-v2"
OUT="$CACHE/demo"
mkdir -p "$OUT"

log "step 2/8: building bert (release)"
swift build -c release --product bert >&2
BERT="$(swift build -c release --show-bin-path)/bert"

# A few real lines: English documentation prose and Chinese text.
awk 'length($0) > 70 && /^[A-Z][a-z]+ [a-z]+ [a-z]+/' "$CACHE/corpus/en.txt" | sed -n '1p;500p;1000p;1500p;2000p' > "$OUT/sample.txt"
grep -v '^[[:space:]]*$' "$CACHE/corpus/zh.txt" | sed -n '10,12p' >> "$OUT/sample.txt"

log "step 3/8: bert tokenize --model $MODEL --format tokens"
"$BERT" tokenize --model "$MODEL" --format tokens "$OUT/sample.txt"
log "the same lines as ids"
"$BERT" tokenize --model "$MODEL" "$OUT/sample.txt"
log "one line as JSON (ids, tokens, type ids, offsets in Unicode scalars of the line)"
head -1 "$OUT/sample.txt" | "$BERT" tokenize --model "$MODEL" --format json
log "a sentence pair (A<TAB>B), truncated to 16 tokens: ids | type ids"
printf 'The quick brown fox jumps over the lazy dog.\tWhere did the fox jump?\n' \
    | "$BERT" tokenize --model "$MODEL" --pair --max-length 16

log "step 4/8: learning a 16,000-piece WordPiece vocabulary from $CACHE/corpus/en.txt"
"$BERT" vocab --size 16000 --out "$OUT/vocab.txt" "$CACHE/corpus/en.txt"
log "the English sample with the learned vocabulary"
grep -v '[^ -~]' "$OUT/sample.txt" | "$BERT" tokenize --vocab "$OUT/vocab.txt" --format tokens
log "step 5/8: the model: bert params and bert inspect"
"$BERT" params --model "$MODEL"
"$BERT" inspect --model "$MODEL" > "$OUT/inspect.txt"
awk '/^model.safetensors/ { shown = 1 } shown && n++ < 8' "$OUT/inspect.txt"
log "(the full listing is in $OUT/inspect.txt)"

log "step 6/8: sentence embeddings (mean pooling + normalisation from the folder) and their cosine similarities"
cat > "$OUT/sentences.txt" <<'TXT'
A man is playing a guitar on stage.
Someone performs music with a guitar.
The stock market fell sharply today.
Shares dropped as investors sold.
TXT
"$BERT" embed --model "$MODEL" "$OUT/sentences.txt" > "$OUT/embeddings.jsonl"
log "wrote $(wc -l < "$OUT/embeddings.jsonl") embeddings of $(head -1 "$OUT/embeddings.jsonl" | tr ',' '\n' | wc -l) numbers to $OUT/embeddings.jsonl"
python3 - "$OUT/sentences.txt" "$OUT/embeddings.jsonl" <<'PY'
import json, sys
texts = [l.rstrip("\n") for l in open(sys.argv[1])]
vecs = [json.loads(l) for l in open(sys.argv[2])]
print("cosine similarity (embeddings are unit length):")
for i, a in enumerate(texts):
    row = " ".join(f"{sum(x * y for x, y in zip(vecs[i], v)):6.3f}" for v in vecs)
    print(f"  {row}   {a}")
PY
log "step 7/8: pretraining a small BERT (2 layers, hidden 128) from scratch on $CACHE/corpus/en.txt, about a minute"
rm -rf "$OUT/pretrained"
"$BERT" pretrain --corpus "$CACHE/corpus/en.txt" --split-sentences --preset tiny --learn-vocab 8000 \
    --out "$OUT/pretrained" --steps 400 --batch-size 32 --seq-len 64 --lr 1e-3 --warmup 40 \
    --checkpoint-every 200 --eval-every 100 --log-every 50
log "fill-mask with the result (a minute of pretraining: expect frequent words)"
"$BERT" fill-mask --model "$OUT/pretrained" --top-k 5 \
    "the function returns a [MASK] of the values." "this module provides [MASK] for working with files."
log "step 8/8: fine-tuning all-MiniLM-L6-v2 for sentiment on 2,000 Rotten Tomatoes reviews (2 epochs, about a minute and a half), then predict and evaluate"
bash scripts/fetch-finetune-data.sh
RT="$CACHE/data/rotten-tomatoes"
python3 - "$RT" "$OUT" <<'PY'
import csv, sys
rt, out = sys.argv[1:3]
for name, n in (("train", 2000), ("validation", 300), ("test", 500)):
    rows = list(csv.reader(open(f"{rt}/{name}.csv", newline="", encoding="utf-8")))
    with open(f"{out}/rt-{name}.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows[: n + 1])
PY
rm -rf "$OUT/sentiment"
# 250 steps of 16 at a peak rate of 1e-4: one epoch of 63 steps at 5e-5 leaves the new classifier
# predicting the majority class ("fresh") for nearly every review.
"$BERT" finetune --task classify --model "$MODEL" --train "$OUT/rt-train.csv" --validation "$OUT/rt-validation.csv" \
    --out "$OUT/sentiment" --epochs 2 --lr 1e-4 --batch-size 16 --max-length 64 --log-every 50
log "bert predict: three new reviews"
printf '%s\n' "A gorgeous, moving film with a superb cast." "Two hours of my life I will never get back." \
    "The plot is thin, but the jokes land." | "$BERT" predict --model "$OUT/sentiment"
log "bert evaluate on 500 held-out reviews"
"$BERT" evaluate --model "$OUT/sentiment" --data "$OUT/rt-test.csv" | tee "$OUT/sentiment-test.json"
python3 - "$OUT/sentiment-test.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"accuracy {100 * m['accuracy']:.1f}% on {m['examples']} held-out reviews after 2,000 training reviews; "
      "the full run (all 10,246 training reviews, 2 epochs) reaches 83.5% on the 1,281 test reviews")
PY
log "done: outputs in $OUT (the pretrained model: $OUT/pretrained, its loss curve: training_curve.svg; the sentiment model: $OUT/sentiment)"
