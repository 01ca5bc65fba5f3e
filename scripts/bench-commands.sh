#!/usr/bin/env bash
# The head commands against `bert embed`: tokens/s of `bert predict`, `bert evaluate` and
# `bert fill-mask` beside `bert embed` on the same encoder and the same texts, in the same run.
#
#   bash scripts/bench-commands.sh
#
#   1. Fetches all-MiniLM-L6-v2 and the English corpus; builds `bert` tuned for this CPU in
#      .build-bench (-target-cpu native -DBERT_FMA, as the README's fast build).
#   2. Makes one BertForPreTraining folder with MiniLM's architecture and vocabulary (`bert
#      pretrain`, one step), and a classifier on that same encoder (`bert finetune --epochs 0`).
#   3. Takes BENCH_LINES lines (default 3000) of held-out English, one word of each replaced by
#      [MASK], and runs each command on them, in turn, for BENCH_ROUNDS rounds (default 3), keeping
#      each command's best wall time (the shared machine's speed drifts; rounds spread it).
#   4. Prints tokens/s per command and its ratio to embed's (whole processes: loading, tokenizing,
#      output included).
#
# Environment: BENCH_THREADS (default: nproc), BENCH_LINES, BENCH_ROUNDS.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

need_cmd swift "install Swift 6 from swift.org"
THREADS="${BENCH_THREADS:-$(nproc)}"
LINES="${BENCH_LINES:-3000}"
ROUNDS="${BENCH_ROUNDS:-3}"
MODEL="$CACHE/models/all-MiniLM-L6-v2"
WORK="$CACHE/bench/commands"
BUILD=(swift build -c release --scratch-path .build-bench --product bert
       -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DBERT_FMA)

log "step 1/4: model, corpus, ${BUILD[*]}"
need_apt libopenblas-dev pkg-config
bash scripts/fetch-model.sh
bash scripts/fetch-corpus.sh
"${BUILD[@]}" >&2 || die "swift build failed"
BERT="$("${BUILD[@]}" --show-bin-path)/bert"

log "step 2/4: texts and model folders in $WORK"
rm -rf "$WORK"
mkdir -p "$WORK"
# Lines of 8 to 60 words from the end of the corpus; the middle word of each becomes [MASK].
tail -n 20000 "$CACHE/corpus/en.txt" >"$WORK/tail.txt"
awk -v n="$LINES" 'NF >= 8 && NF <= 60 && k < n { $(int(NF / 2) + 1) = "[MASK]"; print; k++ }' "$WORK/tail.txt" \
    >"$WORK/texts.txt"
awk 'BEGIN { print "text,label" } { gsub(/"/, "\"\""); printf "\"%s\",%s\n", $0, NR % 2 }' "$WORK/texts.txt" >"$WORK/labeled.csv"
head -n 200 "$CACHE/corpus/en.txt" >"$WORK/corpus.txt"
"$BERT" pretrain --corpus "$WORK/corpus.txt" --config "$MODEL/config.json" --vocab "$MODEL/vocab.txt" \
    --steps 1 --batch-size 4 --seq-len 128 --warmup 0 --out "$WORK/pretrained" --threads "$THREADS" >/dev/null 2>&1 \
    || die "bert pretrain failed"
"$BERT" finetune --task classify --epochs 0 --model "$WORK/pretrained" --train "$WORK/labeled.csv" \
    --validation "$WORK/labeled.csv" --out "$WORK/classifier" --max-length 128 --threads "$THREADS" >/dev/null 2>&1 \
    || die "bert finetune failed"
TOKENS="$("$BERT" tokenize --model "$WORK/pretrained" --max-length 128 "$WORK/texts.txt" | wc -w)"
log "$(wc -l <"$WORK/texts.txt") texts, $TOKENS tokens (with [CLS] and [SEP])"

declare -A BEST
run_case() {
    local name="$1"
    shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>"$WORK/$name.err" || die "$name failed: $(tail -3 "$WORK/$name.err")"
    t1=$(date +%s.%N)
    local t
    t=$(echo "$t1 - $t0" | bc -l)
    if [ -z "${BEST[$name]:-}" ] || [ "$(echo "$t < ${BEST[$name]}" | bc -l)" = 1 ]; then BEST[$name]="$t"; fi
}

log "step 3/4: $ROUNDS rounds on $THREADS threads"
need_apt bc
for round in $(seq 1 "$ROUNDS"); do
    run_case embed "$BERT" embed --model "$WORK/pretrained" --max-length 128 --threads "$THREADS" "$WORK/texts.txt"
    run_case predict "$BERT" predict --model "$WORK/classifier" --max-length 128 --threads "$THREADS" "$WORK/texts.txt"
    run_case evaluate "$BERT" evaluate --model "$WORK/classifier" --max-length 128 --threads "$THREADS" \
        --data "$WORK/labeled.csv"
    run_case fill-mask "$BERT" fill-mask --model "$WORK/pretrained" --threads "$THREADS" --file "$WORK/texts.txt"
    log "round $round: embed ${BEST[embed]}s, predict ${BEST[predict]}s, evaluate ${BEST[evaluate]}s, fill-mask ${BEST[fill-mask]}s (best so far)"
done

log "step 4/4: results"
printf '%-10s %10s %12s %14s\n' command "best s" "tokens/s" "ratio to embed"
for name in embed predict evaluate fill-mask; do
    printf '%-10s %10.2f %12.0f %14.2f\n' "$name" "${BEST[$name]}" "$(echo "$TOKENS / ${BEST[$name]}" | bc -l)" \
        "$(echo "${BEST[embed]} / ${BEST[$name]}" | bc -l)"
done
