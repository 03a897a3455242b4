#!/usr/bin/env bash
# Build every Go test fixture under tests/fixtures/go/*/ into
# ${OOMF_CACHE:-$HOME/.cache/oomforensics}/bin/<name>.
#
# Offline and self-contained: standard library only (GOPROXY=off), and the Go
# build cache and GOPATH live under the same cache dir so nothing is written
# elsewhere. A stamp (sha256 of the sources + `go version`) next to each binary
# makes re-runs skip unchanged programs.
#
# A fixture may carry a build.env of KEY=VALUE lines (comments allowed) exported for its
# build only, e.g. GOEXPERIMENT=goroutineleakprofile (Go 1.26's goroutine leak profile is
# served only by binaries built with that experiment). It is part of the stamp.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${OOMF_CACHE:-$HOME/.cache/oomforensics}"
bin_dir="$cache_dir/bin"

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
    echo "error: 'go' not found; run 'make setup' (installs Debian's golang-go)" >&2
    exit 1
fi

export GOPROXY=off GOFLAGS= GO111MODULE=on GOTOOLCHAIN=local GOWORK=off
export GOCACHE="$cache_dir/go-build" GOPATH="$cache_dir/gopath"
mkdir -p "$bin_dir"
go_version="$(go version)"

shopt -s nullglob
for dir in "$repo_root"/tests/fixtures/go/*/; do
    dir="${dir%/}"
    name="$(basename "$dir")"
    [[ -f "$dir/go.mod" ]] || continue
    out="$bin_dir/$name"
    stamp="$(
        cd "$dir"
        {
            echo "$go_version"
            find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name 'build.env' \) -print0 |
                LC_ALL=C sort -z | xargs -0 sha256sum
        } | sha256sum | cut -d' ' -f1
    )"
    if [[ -x "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$stamp" ]]; then
        echo "up to date: $name"
        continue
    fi
    (
        cd "$dir"
        if [[ -f build.env ]]; then
            while IFS= read -r line; do
                [[ -z "$line" || "$line" == \#* ]] && continue
                export "${line?}"
            done <build.env
        fi
        go build -trimpath -o "$out.tmp" .
    )
    mv -f "$out.tmp" "$out"
    echo "$stamp" >"$out.stamp"
    echo "built $name"
done
