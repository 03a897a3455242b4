#!/bin/sh
# The container image's install steps, run by the Dockerfile's build stage and, unchanged, by
# tests/deploy/test_dockerfile.py (no Docker engine is needed to test them).
#
#   hack/image-build.sh SOURCE_DIR VENV_DIR
#
# Builds the oomforensics wheel from SOURCE_DIR (pyproject.toml, README.md, operator/), creates
# a virtual environment at VENV_DIR with the interpreter in $PYTHON (default python3) and
# installs the wheel and its runtime dependencies into it, without pip itself: the runtime
# image copies VENV_DIR alone and needs no installer. Every file is compiled to bytecode here,
# so the read-only root filesystem of the running container is never written to.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR VENV_DIR" >&2
    exit 2
fi
src=$1
venv=$2
python=${PYTHON:-python3}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

"$python" -m venv "$venv"
"$venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$src"
"$venv/bin/python" -m pip install --quiet "$wheels"/oomforensics-*.whl
"$venv/bin/python" -m pip uninstall --quiet --yes pip
"$venv/bin/python" -m compileall -q "$venv" >/dev/null
"$venv/bin/oomforensics" --help >/dev/null
