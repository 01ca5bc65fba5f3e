#!/usr/bin/env bash
# A pretraining corpus of at least 50 MB of English prose from Debian packages:
#
#   .cache/corpus/pretrain-en.txt   one paragraph per line, a blank line between documents
#                                   (a document = one source file), for
#                                   `bert pretrain --split-sentences`.
#
# Sources: the Python 3.11 documentation (python3.11-doc, reST sources), the Linux kernel's
# Documentation (linux-source-6.1, .rst/.txt), Perl's documentation (perl-doc, POD), and the Debian
# Administrator's Handbook and Debian Reference, the PostgreSQL 15, Git, Django, SQLite and
# scikit-learn, SQLAlchemy, Sphinx, Erlang/OTP, Node.js, GNU Octave and Apache httpd documentation
# (HTML or Sphinx sources, text extracted), Vim's help files, the Bash and Zsh manuals (info), the
# Rust books, and the Jargon File. Paragraphs are blank-line
# separated blocks joined into one line; indented blocks (code), markup-only lines and short or
# mostly non-letter blocks are dropped. Idempotent.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEST="$CACHE/corpus"
OUT="$DEST/pretrain-en.txt"
if [ -s "$OUT" ]; then
    log "pretraining corpus already present: $OUT ($(stat -c %s "$OUT") bytes)"
    exit 0
fi
ensure_python
need_cmd dpkg-deb "Debian's dpkg is required"
need_apt xz-utils
TMP="$(mktemp -d "${TMPDIR:-/tmp}/swift-bert-pretrain.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

apt_download "$TMP/debs" python3.11-doc linux-source-6.1 perl-doc debian-handbook debian-reference-en \
    postgresql-doc-15 git-doc python-django-doc sqlite3-doc python-sklearn-doc jargon-text rust-doc \
    python-sqlalchemy-doc sphinx-doc erlang-doc nodejs-doc octave-doc apache2-doc vim-runtime bash-doc zsh-doc
for deb in "$TMP"/debs/*.deb; do
    log "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$TMP/root"
done
tarball="$(ls "$TMP"/root/usr/src/linux-source-6.1*.tar.xz | head -1)"
log "extracting Documentation/ from $(basename "$tarball")"
mkdir -p "$TMP/linux"
tar -xJf "$tarball" -C "$TMP/linux" --wildcards '*/Documentation/*'

mkdir -p "$DEST"
"$PYTHON" - "$TMP" "$OUT.partial" <<'PY'
import glob, gzip, html, os, re, sys
from html.parser import HTMLParser

tmp, out_path = sys.argv[1:3]
root = os.path.join(tmp, "root")

def paragraphs(text):
    for block in re.split(r"\n\s*\n", text):
        lines = block.split("\n")
        if any(l.startswith((" ", "\t")) for l in lines if l.strip()):
            continue  # code, tables, quoted blocks
        lines = [l for l in lines if l.strip() and not re.match(r"^\s*([=\-~^*#+.`:]{3,}|\.\. |=[a-z]+)", l)]
        p = " ".join(l.strip() for l in lines)
        if len(p) < 60:
            continue
        letters = sum(c.isalpha() for c in p)
        if letters < 0.6 * len(p):
            continue
        yield p

class Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0
    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "pre", "code"):
            self.skip += 1
        if tag in ("p", "div", "li", "h1", "h2", "h3", "br", "tr"):
            self.parts.append("\n\n")
    def handle_endtag(self, tag):
        if tag in ("script", "style", "pre", "code") and self.skip:
            self.skip -= 1
    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data.replace("\n", " "))

sources = []
sources += sorted(glob.glob(os.path.join(root, "usr/share/doc/python3.11/html/_sources/**/*.rst.txt"), recursive=True))
sources += sorted(glob.glob(os.path.join(tmp, "linux/*/Documentation/**/*.rst"), recursive=True))
sources += sorted(glob.glob(os.path.join(tmp, "linux/*/Documentation/**/*.txt"), recursive=True))
sources += sorted(p for p in glob.glob(os.path.join(root, "usr/share/perl/**/*.pod"), recursive=True))
sources += sorted(glob.glob(os.path.join(root, "usr/share/doc/python-django-doc/**/_sources/**/*.txt"), recursive=True))
sources += sorted(glob.glob(os.path.join(root, "usr/share/doc/python-sklearn-doc/**/_sources/**/*.txt"), recursive=True))
sources += sorted(glob.glob(os.path.join(root, "usr/share/jargon/**/*"), recursive=True))
sources += sorted(glob.glob(os.path.join(root, "usr/share/doc/sphinx-doc/**/_sources/**/*.txt"), recursive=True))
sources += sorted(glob.glob(os.path.join(root, "usr/share/vim/vim*/doc/*.txt")))
sources += sorted(glob.glob(os.path.join(root, "usr/share/info/bash.info*.gz")))
sources += sorted(glob.glob(os.path.join(root, "usr/share/info/zsh.info*.gz")))
htmls = sorted(glob.glob(os.path.join(root, "usr/share/doc/debian-handbook/html/en-US/*.html")))
htmls += sorted(glob.glob(os.path.join(root, "usr/share/debian-reference/*.en.html")))
# The Rust books (not the API pages).
for book in ("book", "reference", "nomicon", "rustc", "cargo", "rust-by-example", "edition-guide", "embedded-book", "rustdoc", "unstable-book"):
    htmls += sorted(glob.glob(os.path.join(root, "usr/share/doc/rust-doc/html", book, "**/*.html"), recursive=True))
htmls += sorted(glob.glob(os.path.join(root, "usr/share/doc/apache2-doc/manual/en/**/*.html"), recursive=True))
for d in ("postgresql-doc-15", "git-doc", "sqlite3-doc", "python-sqlalchemy-doc", "erlang-doc", "nodejs", "octave"):
    htmls += sorted(glob.glob(os.path.join(root, "usr/share/doc", d, "**/*.html"), recursive=True))
size = docs = 0
with open(out_path, "w", encoding="utf-8", newline="\n") as out:
    for path in sources + htmls:
        if "/zh_CN/" in path or "/zh_TW/" in path or "/translations/" in path:
            continue
        if not os.path.isfile(path):
            continue
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        if path.endswith(".html"):
            t = Text()
            t.feed(text)
            text = html.unescape("".join(t.parts))
            # Indentation in HTML is layout, not code: strip it before finding paragraphs.
            text = "\n".join(re.sub(r"\s+", " ", l).strip() for l in text.split("\n"))
        ps = list(paragraphs(text))
        if not ps:
            continue
        chunk = "\n".join(ps) + "\n\n"
        out.write(chunk)
        size += len(chunk.encode("utf-8"))
        docs += 1
print(f"[swift-bert] pretrain-en.txt: {size} bytes, {docs} documents", file=sys.stderr)
if size < 50_000_000:
    print(f"[swift-bert] WARNING: only {size} bytes (< 50 MB)", file=sys.stderr)
PY
mv "$OUT.partial" "$OUT"
log "wrote $OUT"
