#!/usr/bin/env bash
# A real Kubernetes API server for custom resources, for the integration tests:
# k8s.io/apiextensions-apiserver built from Debian sid's Go source packages with sid's own Go
# toolchain, plus sid's etcd. Results:
#   ${OOMF_CACHE:-~/.cache/oomforensics}/k8s/bin/apiextensions-apiserver
#   ${OOMF_CACHE:-~/.cache/oomforensics}/k8s/bin/etcd
#
# How: a private apt configuration (own sources list, lists and cache under k8s/apt; the
# system's apt state is neither read for sources nor written) resolves the package set, the
# .debs are downloaded once into k8s/debs (apt checks them against the signed Release file),
# unpacked with `dpkg -x` into k8s/root, and the server is built in GOPATH mode against that
# tree (removed after the build unless OOMF_K8S_KEEP_TREE=1). Nothing is installed on the
# system, nothing needs root.
#
# Idempotent: when the build stamp matches this recipe and both binaries are there, the run is
# one line ("up to date"). `--refresh` (or OOMF_K8S_REFRESH=1) re-resolves the set against the
# current archive and rebuilds only if it changed; downloaded .debs, the unpacked tree and the
# Go build cache are kept, so a rebuild downloads and compiles only what changed.
# sid moves: when the package set stops resolving or building, this fails with the reason.
set -euo pipefail

CACHE="${OOMF_CACHE:-$HOME/.cache/oomforensics}"
K8S="$CACHE/k8s"
APT_DIR="$K8S/apt"
DEBS="$K8S/debs"
TREE="$K8S/root"
BIN="$K8S/bin"
LOG_DIR="$K8S/logs"
STAMP="$K8S/build.stamp"

SUITE="${OOMF_K8S_SUITE:-sid}"
MIRROR="${OOMF_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"
GO_VERSION="1.27"
# The roots of the package set: the server's sources (which depend on all the Go libraries it
# needs), the compiler, etcd. Of their recursive dependencies only golang* and etcd-server are
# kept: the rest (libc and friends) is not needed to unpack sources and run static binaries.
ROOTS=(golang-k8s-apiextensions-apiserver-dev "golang-$GO_VERSION-go" etcd-server)
# Bump when the way the binaries are built changes: it invalidates the stamp.
RECIPE="2 $SUITE ${ROOTS[*]}"

REFRESH="${OOMF_K8S_REFRESH:-0}"
for arg in "$@"; do
    case "$arg" in
        --refresh) REFRESH=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "build-apiserver: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

log() { printf 'build-apiserver: %s\n' "$*"; }
die() {
    printf 'build-apiserver: error: %s\n' "$*" >&2
    exit 1
}

stamp_current() {
    [[ -x "$BIN/apiextensions-apiserver" && -x "$BIN/etcd" && -f "$STAMP" ]] &&
        [[ "$(head -n 1 "$STAMP")" == "recipe: $RECIPE" ]]
}

stamp_versions() { sed -n 's/^versions: //p' "$STAMP"; }

if [[ "$REFRESH" != 1 ]] && stamp_current; then
    log "up to date ($(stamp_versions))"
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb flock sha256sum; do
    command -v "$tool" >/dev/null || die "'$tool' not found: this script needs a Debian-based system"
done
[[ -r "$KEYRING" ]] || die "$KEYRING not found: install debian-archive-keyring"

mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$DEBS" "$BIN" "$LOG_DIR"
# One build at a time per cache (make setup and a developer may start it together).
exec 9>"$K8S/.lock"
if ! flock -n 9; then
    log "another build holds $K8S/.lock; waiting for it"
    flock 9
fi
if [[ "$REFRESH" != 1 ]] && stamp_current; then
    log "up to date ($(stamp_versions))"
    exit 0
fi
started=$SECONDS

# --- private apt configuration ------------------------------------------------------------
echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$APT_DIR/sources.list"
# Own sources, pins and package state: the system's sources (other archives may carry
# higher-numbered packages of the same names) and its installed packages play no part.
mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/preferences.d" "$APT_DIR/state"
: >"$APT_DIR/status"
APT_OPTS=(
    -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
    -o "Dir::Etc::sourceparts=$APT_DIR/sources.list.d"
    -o "Dir::Etc::preferences=$APT_DIR/preferences"
    -o "Dir::Etc::preferencesparts=$APT_DIR/preferences.d"
    -o "Dir::State=$APT_DIR/state"
    -o "Dir::State::status=$APT_DIR/status"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR/cache"
    -o "APT::Get::List-Cleanup=true"
    -o "Acquire::Languages=none"
)
# apt drops to the _apt user for downloads, which cannot write into root's home: download as
# the calling user instead (no privileges are needed for any of this).
APT_OPTS+=(-o "APT::Sandbox::User=$(id -un)")

# hack/get-kubectl.sh shares these lists: hold their lock while apt runs.
exec 8>"$APT_DIR/.lock"
flock 8
log "updating the private package lists ($SUITE main)"
if ! apt-get "${APT_OPTS[@]}" -q update >"$LOG_DIR/apt-update.log" 2>&1; then
    tail -n 20 "$LOG_DIR/apt-update.log" >&2
    die "apt-get update of the private $SUITE sources failed (log: $LOG_DIR/apt-update.log)"
fi
if grep -qE '^(W|E):' "$LOG_DIR/apt-update.log"; then
    grep -E '^(W|E):' "$LOG_DIR/apt-update.log" >&2
    die "apt-get update of the private $SUITE sources reported problems"
fi

# --- the package set ----------------------------------------------------------------------
log "resolving the package set from ${ROOTS[*]}"
if ! apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests \
    --no-conflicts --no-breaks --no-replaces --no-enhances --no-pre-depends "${ROOTS[@]}" \
    >"$LOG_DIR/depends.txt" 2>"$LOG_DIR/depends.err"; then
    cat "$LOG_DIR/depends.err" >&2
    die "apt-cache cannot resolve ${ROOTS[*]} in $SUITE"
fi
if [[ -s "$LOG_DIR/depends.err" ]]; then
    cat "$LOG_DIR/depends.err" >&2
    die "apt-cache reported problems resolving ${ROOTS[*]} in $SUITE"
fi
mapfile -t PACKAGES < <(grep -E '^(golang[^ ]*|etcd-server)$' "$LOG_DIR/depends.txt" | LC_ALL=C sort -u)
for root in "${ROOTS[@]}"; do
    printf '%s\n' "${PACKAGES[@]}" | grep -qxF "$root" || die "$root is not in $SUITE any more"
done
# Exact files for the candidate versions (name_version_arch.deb, size, SHA256).
if ! apt-get "${APT_OPTS[@]}" download --print-uris "${PACKAGES[@]}" \
    >"$LOG_DIR/uris.txt" 2>"$LOG_DIR/uris.err"; then
    cat "$LOG_DIR/uris.err" >&2
    die "apt-get cannot select candidates for the package set in $SUITE"
fi
mapfile -t FILES < <(awk '{print $2}' "$LOG_DIR/uris.txt" | LC_ALL=C sort)
[[ "${#FILES[@]}" == "${#PACKAGES[@]}" ]] ||
    die "expected ${#PACKAGES[@]} .deb files for the package set, apt offers ${#FILES[@]}"
total_bytes="$(awk '{s += $3} END {print s}' "$LOG_DIR/uris.txt")"
set_key="$(printf '%s\n' "${FILES[@]}" | sha256sum | cut -d' ' -f1)"

version_of() { # version_of PACKAGE: the candidate's version, from its file name
    local f
    for f in "${FILES[@]}"; do
        if [[ "$f" == "$1"_* ]]; then
            f="${f#"$1"_}"
            f="${f%_*}"
            printf '%s' "${f//%3a/:}"
            return
        fi
    done
}
server_deb_version="$(version_of golang-k8s-apiextensions-apiserver-dev)"
etcd_deb_version="$(version_of etcd-server)"
versions="apiextensions-apiserver $server_deb_version, etcd $etcd_deb_version, go $(version_of "golang-$GO_VERSION-go")"

if [[ "$REFRESH" == 1 ]] && stamp_current && grep -qxF "set: $set_key" "$STAMP"; then
    log "up to date ($versions; the $SUITE package set is unchanged)"
    exit 0
fi
log "${#FILES[@]} packages, $((total_bytes / 1000000)) MB: $versions"

# --- download what is not cached yet -------------------------------------------------------
mapfile -t WANT < <(
    while read -r _url file size _sum; do
        [[ -f "$DEBS/$file" && "$(stat -c %s "$DEBS/$file")" == "$size" ]] && continue
        printf '%s\n' "${file%%_*}=$(echo "$file" | cut -d_ -f2 | sed 's/%3a/:/g')"
    done <"$LOG_DIR/uris.txt"
)
if ((${#WANT[@]})); then
    log "downloading ${#WANT[@]} of ${#FILES[@]} packages into $DEBS"
    batch=25
    for ((i = 0; i < ${#WANT[@]}; i += batch)); do
        chunk=("${WANT[@]:i:batch}")
        if ! (cd "$DEBS" && apt-get "${APT_OPTS[@]}" -q download "${chunk[@]}") \
            >>"$LOG_DIR/download.log" 2>&1; then
            tail -n 20 "$LOG_DIR/download.log" >&2
            die "downloading packages failed (log: $LOG_DIR/download.log)"
        fi
        have="$(du -sm "$DEBS" | cut -f1)"
        log "  downloaded $((i + ${#chunk[@]}))/${#WANT[@]} packages (${have} MB cached, $((SECONDS - started))s)"
    done
else
    log "all ${#FILES[@]} packages already downloaded"
fi
flock -u 8
for file in "${FILES[@]}"; do
    [[ -f "$DEBS/$file" ]] || die "apt-get download did not produce $file"
done
# Files of packages that left the set (older versions after a refresh).
keep="$(printf '%s\n' "${FILES[@]}")"
for path in "$DEBS"/*.deb; do
    grep -qxF "$(basename "$path")" <<<"$keep" || rm -f "$path"
done

# --- unpack --------------------------------------------------------------------------------
if [[ ! -f "$TREE/.set" || "$(cat "$TREE/.set")" != "$set_key" ]]; then
    log "unpacking ${#FILES[@]} packages into $TREE"
    rm -rf "$TREE.tmp"
    mkdir -p "$TREE.tmp"
    n=0
    for file in "${FILES[@]}"; do
        dpkg-deb -x "$DEBS/$file" "$TREE.tmp" || die "cannot unpack $DEBS/$file"
        n=$((n + 1))
        ((n % 80 == 0)) && log "  unpacked $n/${#FILES[@]}"
    done
    echo "$set_key" >"$TREE.tmp/.set"
    rm -rf "$TREE"
    mv "$TREE.tmp" "$TREE"
fi

GOROOT="$TREE/usr/lib/go-$GO_VERSION"
[[ -x "$GOROOT/bin/go" ]] || die "golang-$GO_VERSION-go did not provide $GOROOT/bin/go"
[[ -d "$GOROOT/src/runtime" ]] || die "the Go $GO_VERSION standard library sources are missing under $GOROOT/src"
GOCODE="$TREE/usr/share/gocode/src"
[[ -d "$GOCODE/k8s.io/apiextensions-apiserver" ]] ||
    die "golang-k8s-apiextensions-apiserver-dev no longer ships $GOCODE/k8s.io/apiextensions-apiserver"
[[ -x "$TREE/usr/bin/etcd" ]] || die "etcd-server no longer ships /usr/bin/etcd"

# --- build ---------------------------------------------------------------------------------
# GOPATH mode: the Debian -dev packages are a GOPATH tree, not modules.
mkdir -p "$K8S/gopath"
ln -sfn "$GOCODE" "$K8S/gopath/src"
export GOROOT GOPATH="$K8S/gopath" GOCACHE="$K8S/go-build" GO111MODULE=off GOFLAGS= \
    GOPROXY=off GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOENV=off
# The server reports its version at /version. The staging module is versioned 0.N.P for
# Kubernetes 1.N.P, so the Debian version 0.N.P-R becomes gitVersion v1.N.P.
upstream="${server_deb_version#*:}"
upstream="${upstream%-*}"
upstream="${upstream%%[+~]*}"
if [[ "$upstream" =~ ^0\.([0-9]+)\.([0-9]+)$ ]]; then
    minor="${BASH_REMATCH[1]}"
    git_version="v1.$minor.${BASH_REMATCH[2]}"
else
    minor="0"
    git_version="v0.0.0-debian-$upstream"
fi
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$git_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
ldflags+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"

build_log="$LOG_DIR/go-build.log"
log "building k8s.io/apiextensions-apiserver $git_version with go $("$GOROOT/bin/go" env GOVERSION) (several minutes on a cold cache)"
build_started=$SECONDS
"$GOROOT/bin/go" build -v -trimpath -ldflags "$ldflags" \
    -o "$BIN/apiextensions-apiserver.tmp" k8s.io/apiextensions-apiserver >"$build_log" 2>&1 &
build_pid=$!
trap 'kill "$build_pid" 2>/dev/null || true' EXIT
while kill -0 "$build_pid" 2>/dev/null; do
    for _ in {1..30}; do
        sleep 1 # progress report interval; `wait` below collects the result
        kill -0 "$build_pid" 2>/dev/null || break
    done
    kill -0 "$build_pid" 2>/dev/null &&
        log "  compiling: $(grep -c '' "$build_log") packages done, $((SECONDS - build_started))s"
done
if ! wait "$build_pid"; then
    trap - EXIT
    echo "---- last lines of $build_log ----" >&2
    grep -v '^[a-zA-Z0-9_./-]*$' "$build_log" | tail -n 30 >&2 || tail -n 30 "$build_log" >&2
    die "$SUITE's package set no longer builds k8s.io/apiextensions-apiserver (go build failed, see above)"
fi
trap - EXIT
mv -f "$BIN/apiextensions-apiserver.tmp" "$BIN/apiextensions-apiserver"
log "  compiled in $((SECONDS - build_started))s"

cp -f "$TREE/usr/bin/etcd" "$BIN/etcd.tmp"
mv -f "$BIN/etcd.tmp" "$BIN/etcd"
"$BIN/etcd" --version >/dev/null 2>&1 || die "the unpacked etcd does not run: $("$BIN/etcd" --version 2>&1 | tail -n 1)"
"$BIN/apiextensions-apiserver" --help >/dev/null 2>&1 ||
    die "the built apiextensions-apiserver does not run: $("$BIN/apiextensions-apiserver" --help 2>&1 | tail -n 1)"

{
    echo "recipe: $RECIPE"
    echo "set: $set_key"
    echo "versions: $versions, server $git_version"
    printf 'deb: %s\n' "${FILES[@]}"
} >"$STAMP.tmp"
mv -f "$STAMP.tmp" "$STAMP"
# The unpacked tree (2.5 GB) is rebuilt from the cached .debs in seconds when needed; the Go
# build cache stays, so a rebuild after a refresh compiles only what changed.
[[ "${OOMF_K8S_KEEP_TREE:-0}" == 1 ]] || rm -rf "$TREE" "$K8S/gopath"
log "done in $((SECONDS - started))s: $BIN/apiextensions-apiserver ($git_version), $BIN/etcd"
