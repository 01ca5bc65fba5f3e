#!/usr/bin/env bash
# Build the test corpus from Debian packages (no other network access needed):
#
#   .cache/corpus/en.txt  ~4 MB of English prose: the reStructuredText sources
#                         of the Python 3.11 documentation (python3.11-doc,
#                         html/_sources/**/*.rst.txt, sorted by path), whole
#                         lines, cut at the last line that fits in 4,000,000 bytes.
#   .cache/corpus/zh.txt  ~2 MB of Chinese: the fortunes-zh collection
#                         (modern prose, Debian documentation excerpts, Tang and
#                         Song poetry, the Shijing; simplified and traditional),
#                         ANSI colour escapes removed, '%' separator lines dropped.
#   .cache/corpus/SOURCES the Debian package versions used.
#
# Both are UTF-8, '\n'-separated lines, ending with '\n'. Idempotent: does
# nothing when both files exist.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEST="$CACHE/corpus"
EN="$DEST/en.txt"
ZH="$DEST/zh.txt"

if [ -s "$EN" ] && [ -s "$ZH" ]; then
    log "corpus already present: $EN ($(stat -c %s "$EN") bytes), $ZH ($(stat -c %s "$ZH") bytes)"
    exit 0
fi

ensure_python
need_cmd dpkg-deb "Debian's dpkg is required"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/swift-bert-corpus.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

apt_download "$TMP/debs" python3.11-doc fortunes-zh
for deb in "$TMP"/debs/*.deb; do
    log "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$TMP/root"
done

mkdir -p "$DEST"
"$PYTHON" - "$TMP/root" "$EN.partial" "$ZH.partial" <<'EOF'
import glob, os, re, sys

root, en_out, zh_out = sys.argv[1:4]
EN_LIMIT = 4_000_000

# English: python3.11-doc reStructuredText sources, sorted by path.
src = os.path.join(root, "usr/share/doc/python3.11/html/_sources")
files = sorted(glob.glob(os.path.join(src, "**", "*.rst.txt"), recursive=True))
if not files:
    sys.exit(f"no *.rst.txt under {src}")
size = 0
nfiles = 0
with open(en_out, "w", encoding="utf-8", newline="\n") as out:
    for path in files:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        if not text.endswith("\n"):
            text += "\n"
        full = True
        for line in text.split("\n")[:-1]:
            n = len(line.encode("utf-8")) + 1
            if size + n > EN_LIMIT:
                full = False
                break
            out.write(line + "\n")
            size += n
        nfiles += 1
        if not full:
            break
print(f"[swift-bert] en.txt: {size} bytes from {nfiles} files", file=sys.stderr)

# Chinese: fortunes-zh.
fdir = os.path.join(root, "usr/share/games/fortunes")
names = sorted(n for n in os.listdir(fdir)
               if not n.endswith(".dat") and not os.path.islink(os.path.join(fdir, n)))
if not names:
    sys.exit(f"no fortune files in {fdir}")
ansi = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
size = 0
with open(zh_out, "w", encoding="utf-8", newline="\n") as out:
    for name in names:
        with open(os.path.join(fdir, name), encoding="utf-8", newline="") as f:
            text = ansi.sub("", f.read())
        if not text.endswith("\n"):
            text += "\n"
        for line in text.split("\n")[:-1]:
            if line == "%":
                continue
            out.write(line + "\n")
            size += len(line.encode("utf-8")) + 1
if size < 1_200_000:
    sys.exit(f"zh.txt too small: {size} bytes")
print(f"[swift-bert] zh.txt: {size} bytes from {', '.join(names)}", file=sys.stderr)
EOF

{
    for deb in "$TMP"/debs/*.deb; do
        dpkg-deb -f "$deb" Package Version | paste -sd' '
    done
} >"$DEST/SOURCES"
mv "$EN.partial" "$EN"
mv "$ZH.partial" "$ZH"
log "corpus ready: $EN ($(stat -c %s "$EN") bytes), $ZH ($(stat -c %s "$ZH") bytes)"
