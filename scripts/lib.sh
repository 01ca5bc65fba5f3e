# shellcheck shell=bash
# Small helpers shared by the swift-bert scripts. Source it, don't run it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Provides:
#   REPO_ROOT      absolute path of the repository root
#   CACHE          $REPO_ROOT/.cache (models, corpus, fixtures; git-ignored)
#   PYTHON         python interpreter to use (default: python3)
#   log MSG...     print "[swift-bert] MSG" to stderr
#   die MSG...     log MSG and exit 1
#   need_cmd CMD   fail with a clear message if CMD is not on PATH
#   apt_update_once        run `apt-get update` at most once per process
#   need_apt PKG...        install missing Debian packages (root only)
#   apt_download DIR PKG... `apt-get download` PKG... into DIR
#   need_pip SPEC...       pip-install SPECs ("name" or "name==version") that
#                          are missing or at another version
#   sha256_of FILE...      print the sha256 of the concatenation of FILEs
#
# Everything is idempotent and says what it does.

if [ -n "${_SWIFT_BERT_LIB_SH:-}" ]; then
    return 0
fi
_SWIFT_BERT_LIB_SH=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CACHE:-$REPO_ROOT/.cache}"
# Python for the reference tools: a virtual environment in .cache/venv (it sees the system's
# packages, so nothing is installed twice), created on first use; PYTHON=... overrides it.
PYTHON="${PYTHON:-$CACHE/venv/bin/python}"
export REPO_ROOT CACHE PYTHON

log() {
    printf '[swift-bert] %s\n' "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

need_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH${2:+ ($2)}"
}

_is_root() {
    [ "$(id -u)" -eq 0 ]
}

_APT_UPDATED=0
apt_update_once() {
    if [ "$_APT_UPDATED" -eq 1 ]; then
        return 0
    fi
    _is_root || die "apt-get update needs root; run 'sudo apt-get update' first"
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    _APT_UPDATED=1
}

# True when the Debian package is installed.
_apt_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

need_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        _apt_installed "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if ! _is_root; then
        die "missing Debian packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})"
    fi
    need_cmd apt-get "a Debian-based system is expected"
    apt_update_once
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# apt_download DIR PKG...: fetch the .deb files of PKG... into DIR (without
# installing them). Runs `apt-get update` first when the package lists are
# empty or stale and we are root.
apt_download() {
    local dir="$1"
    shift
    need_cmd apt-get "a Debian-based system is expected"
    mkdir -p "$dir"
    # The _apt sandbox user must be able to write there, or apt warns.
    chmod 755 "$dir" 2>/dev/null || true
    log "apt-get download $* (into $dir)"
    if (cd "$dir" && apt-get download -qq "$@" >&2 2>/dev/null); then
        return 0
    fi
    if [ "$_APT_UPDATED" -eq 0 ] && _is_root; then
        apt_update_once
        if (cd "$dir" && apt-get download -qq "$@" >&2); then
            return 0
        fi
    fi
    if ! _is_root; then
        die "apt-get download $* failed; the package lists may be missing (run 'sudo apt-get update')"
    fi
    die "apt-get download $* failed"
}

# need_pip SPEC...: SPEC is "dist" or "dist==version". A SPEC is installed
# when the distribution is absent or its version differs from the pin.
# Creates .cache/venv when PYTHON points there and it does not exist yet (installing Debian's
# python3, python3-venv and python3-pip first when they are missing and we are root).
ensure_python() {
    [ -x "$PYTHON" ] && return 0
    [ "$PYTHON" = "$CACHE/venv/bin/python" ] || die "PYTHON=$PYTHON is not an executable"
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        need_apt python3 python3-venv python3-pip
    fi
    log "creating a Python virtual environment in $CACHE/venv"
    mkdir -p "$CACHE"
    python3 -m venv --system-site-packages "$CACHE/venv" >&2 || die "python3 -m venv failed"
}

need_pip() {
    ensure_python
    local missing=() spec name want have
    for spec in "$@"; do
        name="${spec%%==*}"
        want=""
        [ "$name" != "$spec" ] && want="${spec#*==}"
        have="$("$PYTHON" - "$name" 2>/dev/null <<'EOF'
import sys
from importlib import metadata
try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass
EOF
)"
        if [ -z "$have" ] || { [ -n "$want" ] && [ "$have" != "$want" ]; }; then
            missing+=("$spec")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    log "pip install ${missing[*]}"
    "$PYTHON" -m pip install --quiet "${missing[@]}" >&2 || die "pip install ${missing[*]} failed"
}

sha256_of() {
    cat "$@" | sha256sum | cut -d' ' -f1
}
