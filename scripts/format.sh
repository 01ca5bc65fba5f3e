#!/usr/bin/env bash
# Formats the Swift sources with swift-format (shipped with the toolchain) and the repository's
# .swift-format (4 spaces, lines of at most 120 characters, layout only: no rule rewrites code).
#
#   bash scripts/format.sh           rewrite the files in place
#   bash scripts/format.sh --check   change nothing; fail, listing what differs (the test command runs this)
#
# Sources/BertTokenizer/HFUnicodeData.swift is left as scripts/probe_hf_unicode.py writes it (the
# test command compares the two byte for byte).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
need_cmd swift "install Swift 6 from swift.org"
mapfile -t FILES < <(find Package.swift Sources Tests Examples/Package.swift Examples/Sources -name '*.swift' ! -name HFUnicodeData.swift | sort)
if [ "${1:-}" = "--check" ]; then
    if ! swift format lint --strict --parallel "${FILES[@]}" >&2; then
        die "the sources are not formatted; run: bash scripts/format.sh"
    fi
    log "formatting: ${#FILES[@]} files as .swift-format says"
else
    swift format format --in-place --parallel "${FILES[@]}"
    log "formatted ${#FILES[@]} files"
fi
