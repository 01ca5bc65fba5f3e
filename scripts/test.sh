#!/usr/bin/env bash
# The whole test suite, from a fresh machine with Swift: installs what is missing (Debian
# packages when root, Python reference tools in .cache/venv), prepares the real test data and
# Hugging Face references (scripts/prepare-test-data.sh), checks that the embedded Unicode tables
# still match `tokenizers`, then runs `swift test` in release mode with the data required.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
START=$SECONDS

need_cmd swift "install Swift 6 from swift.org"
log "swift: $(swift --version 2>&1 | head -1)"

log "build dependencies: OpenBLAS (matrix products) and pkg-config (finds it)"
need_apt libopenblas-dev pkg-config

# Data-parallel training (bert pretrain/finetune under mpirun) is the package's opt-in MPI trait:
# the first test run builds with it (and runs the 2-rank tests under mpirun), the tuned run and
# Examples/ without it (a package that depends on ours needs no MPI).
MPI_TRAIT=()
if [ "$(uname -s)" = Linux ] && [ "${BERT_TEST_MPI:-1}" != 0 ]; then
    log "MPI (data-parallel training): Open MPI's library, headers and mpirun"
    need_apt libopenmpi-dev openmpi-bin
    MPI_TRAIT=(--traits MPI)
fi

log "test data: model, corpus, reference encodings"
bash scripts/prepare-test-data.sh

log "checking Sources/BertTokenizer/HFUnicodeData.swift against tokenizers' behaviour"
"$PYTHON" scripts/probe_hf_unicode.py > "$CACHE/HFUnicodeData.swift"
if ! cmp -s "$CACHE/HFUnicodeData.swift" Sources/BertTokenizer/HFUnicodeData.swift; then
    die "the embedded Unicode tables differ from the installed tokenizers' behaviour; regenerate with: python3 scripts/probe_hf_unicode.py > Sources/BertTokenizer/HFUnicodeData.swift"
fi

log "formatting (scripts/format.sh --check: .swift-format, lines of at most 120 characters)"
bash scripts/format.sh --check

log "swift test (release build${MPI_TRAIT:+ with the MPI trait}; the first build takes a minute or two)"
BERT_REQUIRE_FIXTURES=1 swift test -c release --disable-xctest ${MPI_TRAIT[@]+"${MPI_TRAIT[@]}"} "$@"

log "documentation: the DocC catalogs (warnings as errors), and a doc comment on every public declaration"
swift package generate-documentation --target BertTokenizer --target BertCompute --target Bert --target BertHub \
    --warnings-as-errors >/dev/null
"$PYTHON" scripts/check_docs.py

# A package that depends on this one by path and uses only the public API; its programs check
# their own results. By hub id, from the Hugging Face cache prepare-test-data.sh filled.
log "Examples/: building the consumer package and running its programs"
swift build -c release --package-path Examples
EXAMPLES_BIN="$(swift build -c release --package-path Examples --show-bin-path)"
HF_HOME="$CACHE/fixtures/hf-home" HF_HUB_OFFLINE=1 "$EXAMPLES_BIN/EmbedSentences" sentence-transformers/all-MiniLM-L6-v2
HF_HOME="$CACHE/fixtures/hf-home" HF_HUB_OFFLINE=1 "$EXAMPLES_BIN/FineTuneClassifier" sentence-transformers/all-MiniLM-L6-v2

# The benchmarks and the README's fast build use -target-cpu native -DBERT_FMA, which switch on our
# own FMA kernels (packed products, fused attention, fused exp/erf); run the suite there too, so
# that those paths are checked against the same references. Skipped on CPUs without FMA, or with
# BERT_TEST_TUNED=0.
if [ "${BERT_TEST_TUNED:-1}" != 0 ] && grep -qw fma /proc/cpuinfo 2>/dev/null; then
    log "swift test again, built tuned for this CPU (-target-cpu native -DBERT_FMA, in .build-tuned)"
    BERT_REQUIRE_FIXTURES=1 swift test -c release --disable-xctest --scratch-path .build-tuned \
        -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DBERT_FMA "$@"
fi
log "all tests passed in $((SECONDS - START))s"
