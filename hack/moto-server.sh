#!/usr/bin/env bash
# The S3 test server: moto[server] in its own virtual environment at
# ${OOMF_CACHE:-~/.cache/oomforensics}/moto-venv. Prints one line.
#
# Its own env because botocore (under moto) needs python-dateutil<3 and kubernetes needs >=3:
# the two cannot share the project's .venv. Idempotent: when the venv is there and moto's
# server imports, nothing is installed. Tests start `moto_server` through tests/support/moto.py.
set -euo pipefail

CACHE="${OOMF_CACHE:-$HOME/.cache/oomforensics}"
VENV="$CACHE/moto-venv"
PYTHON="${PYTHON:-python3}"
# moto 5 serves S3 (and records requests, which the tests replay) with `moto_server`.
MOTO_SPEC="${OOMF_MOTO_SPEC:-moto[server]>=5,<6}"
LOG="$CACHE/moto-venv.log"

moto_version() { "$VENV/bin/python" -c 'import moto.server, moto; print(moto.__version__)' 2>/dev/null; }

if [[ -x "$VENV/bin/moto_server" ]] && version="$(moto_version)"; then
    echo "moto-server: up to date (moto $version in $VENV)"
    exit 0
fi

command -v "$PYTHON" >/dev/null || { echo "moto-server: error: $PYTHON not found" >&2; exit 1; }
mkdir -p "$CACHE"
if ! {
    { [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"; } &&
        PIP_CACHE_DIR="$CACHE/pip" PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$VENV/bin/python" -m pip install --quiet "$MOTO_SPEC"
} >"$LOG" 2>&1; then
    echo "moto-server: error: installing $MOTO_SPEC into $VENV failed; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
fi
version="$(moto_version)" || {
    echo "moto-server: error: moto installed in $VENV but moto.server does not import" >&2
    exit 1
}
echo "moto-server: installed moto $version in $VENV"
