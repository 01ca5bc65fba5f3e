#!/usr/bin/env bash
# Prepare everything the tokenizer conformance tests need:
#
#   .cache/models/all-MiniLM-L6-v2/   model + tokenizer files   (fetch-model.sh)
#   .cache/corpus/{en,zh}.txt         English and Chinese text  (fetch-corpus.sh)
#   .cache/fixtures/tokenizer/        HF `tokenizers` references (make_tokenizer_reference.py)
#   .cache/fixtures/hf-home/hub/      a Hugging Face cache holding the model, filled by
#                                     huggingface_hub itself (make_hub_cache.py)
#
# The references are regenerated only when the stamp file
# .cache/fixtures/tokenizer/.stamp does not match: it records the sha256 of
# the two generator scripts, the tokenizers version, and the sha256 of
# tokenizer.json and of the corpus. Pass --force to regenerate anyway.
#
# Environment: FIXTURES overrides the output folder, PYTHON the interpreter.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOKENIZERS_VERSION="0.23.3"
ADV_SEED=1234
ADV_COUNT=4000
FIXTURES="${FIXTURES:-$CACHE/fixtures/tokenizer}"
MODEL_DIR="$CACHE/models/all-MiniLM-L6-v2"
CORPUS_DIR="$CACHE/corpus"
SCRIPTS="$REPO_ROOT/scripts"

FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $arg (use --force or --help)" ;;
    esac
done

START=$SECONDS
ensure_python

log "step 1/5: model"
bash "$SCRIPTS/fetch-model.sh"

log "step 2/5: corpus"
bash "$SCRIPTS/fetch-corpus.sh"

log "step 3/5: python packages"
need_pip "tokenizers==$TOKENIZERS_VERSION"
HAVE_VERSION="$("$PYTHON" -c 'import tokenizers; print(tokenizers.__version__)')"
[ "$HAVE_VERSION" = "$TOKENIZERS_VERSION" ] \
    || die "tokenizers $HAVE_VERSION is importable, $TOKENIZERS_VERSION is needed"

log "step 4/5: tokenizer references"
STAMP="$(
    {
        echo "tokenizers=$HAVE_VERSION adv_seed=$ADV_SEED adv_count=$ADV_COUNT"
        sha256sum "$SCRIPTS/make_tokenizer_reference.py" "$SCRIPTS/gen_adversarial.py" \
                  "$MODEL_DIR/tokenizer.json" "$CORPUS_DIR/en.txt" "$CORPUS_DIR/zh.txt" | cut -d' ' -f1
    } | sha256sum | cut -d' ' -f1
)"
if [ "$FORCE" -eq 0 ] && [ -f "$FIXTURES/manifest.json" ] && [ -f "$FIXTURES/.stamp" ] \
    && [ "$(cat "$FIXTURES/.stamp")" = "$STAMP" ]; then
    log "references up to date: $FIXTURES (stamp $STAMP)"
else
    PARTIAL="$FIXTURES.partial"
    rm -rf "$PARTIAL"
    mkdir -p "$PARTIAL"
    T0=$SECONDS
    log "generating $ADV_COUNT adversarial strings (seed $ADV_SEED)"
    "$PYTHON" "$SCRIPTS/gen_adversarial.py" --out "$PARTIAL/adversarial.source.jsonl" \
        --seed "$ADV_SEED" --count "$ADV_COUNT"
    log "encoding with tokenizers $HAVE_VERSION (about a minute)"
    "$PYTHON" "$SCRIPTS/make_tokenizer_reference.py" --tokenizer "$MODEL_DIR" --corpus "$CORPUS_DIR" \
        --adversarial "$PARTIAL/adversarial.source.jsonl" --out "$PARTIAL"
    rm -f "$PARTIAL/adversarial.source.jsonl"
    echo "$STAMP" >"$PARTIAL/.stamp"
    rm -rf "$FIXTURES"
    mv "$PARTIAL" "$FIXTURES"
    log "references written to $FIXTURES in $((SECONDS - T0))s"
fi

log "step 5/5: a Hugging Face cache filled by huggingface_hub $("$PYTHON" -c 'import huggingface_hub; print(huggingface_hub.__version__)')"
HUB_CACHE="$CACHE/fixtures/hf-home/hub"
HUB_STAMP="$(sha256sum "$SCRIPTS/make_hub_cache.py" "$SCRIPTS/fake_hub.py" "$MODEL_DIR/model.safetensors" | sha256sum | cut -d' ' -f1)"
if [ -f "$HUB_CACHE/.stamp" ] && [ "$(cat "$HUB_CACHE/.stamp")" = "$HUB_STAMP" ]; then
    log "hub cache up to date: $HUB_CACHE"
else
    mkdir -p "$(dirname "$HUB_CACHE")"
    "$PYTHON" "$SCRIPTS/make_hub_cache.py" --model "$MODEL_DIR" --repo-id sentence-transformers/all-MiniLM-L6-v2 \
        --cache "$HUB_CACHE"
    echo "$HUB_STAMP" >"$HUB_CACHE/.stamp"
fi

log "sizes: model $(du -sh "$MODEL_DIR" | cut -f1), corpus $(du -sh "$CORPUS_DIR" | cut -f1), fixtures $(du -sh "$FIXTURES" | cut -f1)"
log "test data ready in $((SECONDS - START))s"
