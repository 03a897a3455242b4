#!/usr/bin/env bash
# One-command set-up: .venv with the package and dev tools, a Go toolchain, the Go fixtures.
# Idempotent: every step is skipped when its stamp says it is current. Caches live under
# ${OOMF_CACHE:-~/.cache/oomforensics}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${OOMF_CACHE:-$HOME/.cache/oomforensics}"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

python_env() {
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11 or newer"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Python 3.11+ is required ($("$PYTHON" --version 2>&1) found)"
    local stamp="$VENV/.oomf-stamp" want
    # The C kernels are built at install time: a change to them (or to setup.py) reinstalls.
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/operator/oomforensics/pprof/_kernels.c" \
        | sha256sum | cut -d' ' -f1) $("$PYTHON" --version 2>&1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/oomforensics" ]]; then
        log "python environment up to date (.venv)"
        return
    fi
    log "creating .venv and installing oomforensics with its dev tools"
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    export PIP_CACHE_DIR="$CACHE/pip" PIP_DISABLE_PIP_VERSION_CHECK=1
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"
    # The decoder's C kernels are optional for users; the tests want them (they compare them
    # with numpy), so a missing compiler is said here rather than found by a failing test.
    if ! "$VENV/bin/python" -c 'import oomforensics.pprof._kernels' 2>/dev/null; then
        die "the C kernels (operator/oomforensics/pprof/_kernels.c) were not built: install a C compiler (Debian: gcc) and run make setup again"
    fi
    echo "$want" > "$stamp"
}

go_toolchain() {
    if command -v go >/dev/null; then
        log "go toolchain present ($(go version | cut -d' ' -f3))"
        return
    fi
    log "go not found: installing Debian's golang-go"
    command -v apt-get >/dev/null || die "no go toolchain and no apt-get; install Go 1.19+ and re-run"
    local sudo=""
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null || die "installing golang-go needs root; run as root or install Go"
        sudo="sudo"
    fi
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go >/dev/null; then
        $sudo apt-get update -q >/dev/null || die "apt-get update failed"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go >/dev/null \
            || die "apt-get install golang-go failed"
    fi
    command -v go >/dev/null || die "golang-go installed but go is not on PATH"
}

python_env
go_toolchain
"$ROOT/hack/build-go-fixtures.sh"
# `setup.sh local` (make demo-local): the package and the Go fixtures are all the watch-mode
# demo uses; the S3 server, the cluster and Chromium are for the tests and `make demo`.
if [[ "${1:-}" == "local" ]]; then
    log "ready (local demo)"
    exit 0
fi
"$ROOT/hack/moto-server.sh"
"$ROOT/hack/get-kubectl.sh"
"$ROOT/hack/build-kube.sh"  # the real test cluster: 15-30 min cold, then instant
"$ROOT/hack/get-chromium.sh"
log "ready"
