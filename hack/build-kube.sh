#!/usr/bin/env bash
# A real Kubernetes control plane for the tests and `make demo`, built from Go modules:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet  (k8s.io/kubernetes)
#   metrics-server                                                    (sigs.k8s.io/metrics-server)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   pause                         (the pod sandbox's process, a Go program of ours, built static)
#   containerd, containerd-shim-runc-v2, ctr, the CNI plugins loopback, ptp and host-local (Debian sid's packages)
#   runc                          (Debian's runc of the system's release: sid's wants a newer glibc)
# into ${OOMF_CACHE:-~/.cache/oomforensics}/kube/bin.
#
# How: k8s.io/kubernetes is not meant to be a dependency (its go.mod points every k8s.io/<staging>
# module at ./staging/...), so a small module of ours in kube/mod/kubernetes requires it and
# pins each staging module to the matching published v0.N.P with `replace` lines taken from
# Kubernetes' own go.mod. metrics-server and etcd get a module of their own each (their
# dependency sets differ from Kubernetes'). The module and build caches live under kube/ too.
#
# Idempotent: each component has a stamp (its versions and this recipe); a re-run with every
# stamp current is one line. A cold build compiles ~4,000 packages: 15-30 minutes on 2 cores.
# OOMF_KUBE_JOBS (default 2) is the number of parallel compiles.
set -euo pipefail

CACHE="${OOMF_CACHE:-$HOME/.cache/oomforensics}"
KUBE="$CACHE/kube"
BIN="$KUBE/bin"
MOD="$KUBE/mod"
LOG_DIR="$KUBE/logs"

KUBE_VERSION="${OOMF_KUBE_VERSION:-1.36.3}"
METRICS_SERVER_VERSION="0.8.0"
ETCD_VERSION="3.6.8" # the client version Kubernetes $KUBE_VERSION requires
# Bump when the way the binaries are built changes: it invalidates the stamps.
RECIPE="1"
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
# The node's container runtime, by exact version (another archive may offer other builds).
CONTAINERD_DEB="${OOMF_CONTAINERD_VERSION:-2.1.9+ds1-5}"
CNI_DEB="${OOMF_CNI_VERSION:-1.9.1+ds1-1}"
RUNC_DEB="${OOMF_RUNC_VERSION:-1.1.5+ds1-1+deb12u1}"
SUITE="${OOMF_K8S_SUITE:-sid}"
MIRROR="${OOMF_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"
NODE_BINARIES=(containerd containerd-shim-runc-v2 ctr runc loopback ptp host-local)

for arg in "$@"; do
    case "$arg" in
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "build-kube: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

log() { printf 'build-kube: %s\n' "$*"; }
die() {
    printf 'build-kube: error: %s\n' "$*" >&2
    exit 1
}

stamp_of() { printf 'recipe %s kubernetes %s metrics-server %s etcd %s containerd %s cni %s runc %s' \
    "$RECIPE" "$KUBE_VERSION" "$METRICS_SERVER_VERSION" "$ETCD_VERSION" "$CONTAINERD_DEB" "$CNI_DEB" "$RUNC_DEB"; }
current() { # current NAME...: every binary is there and its stamp matches
    local name
    for name in "$@"; do
        [[ -x "$BIN/$name" && -f "$BIN/.$name.stamp" ]] || return 1
        [[ "$(cat "$BIN/.$name.stamp")" == "$(stamp_of)" ]] || return 1
    done
}
ALL=("${KUBE_COMMANDS[@]}" metrics-server etcd pause "${NODE_BINARIES[@]}")
summary="kubernetes v$KUBE_VERSION, metrics-server v$METRICS_SERVER_VERSION, etcd v$ETCD_VERSION"
summary+=", containerd $CONTAINERD_DEB, runc $RUNC_DEB"
if current "${ALL[@]}"; then
    log "up to date ($summary in $BIN)"
    exit 0
fi

command -v go >/dev/null || die "go not found: install Go 1.26 or newer (hack/setup.sh does)"
command -v flock >/dev/null || die "'flock' not found (util-linux)"
mkdir -p "$BIN" "$MOD" "$LOG_DIR"
exec 9>"$KUBE/.lock"
if ! flock -n 9; then
    log "another build holds $KUBE/.lock; waiting for it"
    flock 9
fi
if current "${ALL[@]}"; then
    log "up to date ($summary in $BIN)"
    exit 0
fi
started=$SECONDS

export GOMODCACHE="$KUBE/gomod" GOCACHE="$KUBE/go-build" GOWORK=off CGO_ENABLED=0 \
    GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
JOBS="${OOMF_KUBE_JOBS:-2}"
NICE=(nice -n 10)

# run_logged LOG WHAT CMD...: runs CMD with its output in LOG, a progress line every 30 s,
# and the last lines of LOG on failure.
run_logged() {
    local log_file="$1" what="$2" pid t0=$SECONDS
    shift 2
    "$@" >"$log_file" 2>&1 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null || true' EXIT
    while kill -0 "$pid" 2>/dev/null; do
        for _ in {1..30}; do
            sleep 1 # progress report interval; `wait` below collects the result
            kill -0 "$pid" 2>/dev/null || break
        done
        kill -0 "$pid" 2>/dev/null &&
            log "  $what: $(grep -c '' "$log_file") lines of output, $((SECONDS - t0))s"
    done
    if ! wait "$pid"; then
        trap - EXIT
        echo "---- last lines of $log_file ----" >&2
        grep -v '^[a-zA-Z0-9_./~-]*$' "$log_file" | tail -n 30 >&2 || tail -n 30 "$log_file" >&2
        die "$what failed (see above; full log: $log_file)"
    fi
    trap - EXIT
    log "  $what: done in $((SECONDS - t0))s"
}

# module DIR REQUIRE_LINE [REPLACE_BLOCK]: writes our module's go.mod (kept when unchanged, so
# its go.sum stays valid).
module() {
    local dir="$1" require="$2" replace="${3:-}" want
    mkdir -p "$dir"
    want="$(printf 'module oomforensics.local/build\n\ngo %s\n\nrequire %s\n%s' \
        "$(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1.0/')" "$require" "$replace")"
    if [[ ! -f "$dir/go.mod.in" || "$(cat "$dir/go.mod.in")" != "$want" ]]; then
        printf '%s\n' "$want" >"$dir/go.mod.in"
        printf '%s\n' "$want" >"$dir/go.mod"
        rm -f "$dir/go.sum"
    fi
}

# version_ldflags VERSION: what `kube-apiserver --version` and /version report.
version_ldflags() {
    local v="$1" major minor pkg flags=""
    major="${v%%.*}"
    minor="${v#*.}"
    minor="${minor%%.*}"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=v$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    printf '%s' "$flags"
}

# build DIR LOG_NAME LDFLAGS PKG...: `go build` of the packages into $BIN.
build() {
    local dir="$1" name="$2" ldflags="$3"
    shift 3
    mkdir -p "$KUBE/out.tmp"
    rm -f "$KUBE/out.tmp"/*
    run_logged "$LOG_DIR/$name-build.log" "compiling $name" \
        "${NICE[@]}" go -C "$dir" build -p "$JOBS" -v -trimpath -ldflags "-s -w$ldflags" \
        -o "$KUBE/out.tmp/" "$@"
}

install_out() { # install_out NAME...: moves the built binaries into $BIN with their stamps
    local name
    for name in "$@"; do
        [[ -x "$KUBE/out.tmp/$name" ]] || die "the build did not produce $name"
        mv -f "$KUBE/out.tmp/$name" "$BIN/$name"
        stamp_of >"$BIN/.$name.stamp"
    done
}

# --- Kubernetes ----------------------------------------------------------------------------
if ! current "${KUBE_COMMANDS[@]}"; then
    dir="$MOD/kubernetes"
    log "kubernetes v$KUBE_VERSION: resolving k8s.io/kubernetes and its staging modules"
    gomod_json="$("${NICE[@]}" go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" 2>"$LOG_DIR/kubernetes-download.err")" ||
        die "cannot download k8s.io/kubernetes v$KUBE_VERSION: $(tail -n 3 "$LOG_DIR/kubernetes-download.err")"
    upstream_mod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$gomod_json")"
    [[ -f "$upstream_mod" ]] || die "go mod download gave no go.mod for k8s.io/kubernetes v$KUBE_VERSION"
    # Kubernetes 1.N.P's staging modules are published as v0.N.P.
    staging_version="v0.${KUBE_VERSION#*.}"
    replace="$(awk -v v="$staging_version" '
        $1 ~ /^k8s\.io\// && $2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }
    ' "$upstream_mod")"
    [[ -n "$replace" ]] || die "no staging replace lines found in k8s.io/kubernetes v$KUBE_VERSION's go.mod"
    log "  $(grep -c '' <<<"$replace") staging modules pinned to $staging_version"
    module "$dir" "k8s.io/kubernetes v$KUBE_VERSION" "$(printf 'replace (\n%s\n)\n' "$replace")"
    pkgs=()
    for cmd in "${KUBE_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
    if [[ ! -s "$dir/go.sum" ]]; then
        run_logged "$LOG_DIR/kubernetes-get.log" "downloading the modules kubernetes needs" \
            "${NICE[@]}" go -C "$dir" get "${pkgs[@]/%/@v$KUBE_VERSION}"
    fi
    log "kubernetes v$KUBE_VERSION: building ${KUBE_COMMANDS[*]} (a cold build takes 15-30 minutes)"
    build "$dir" kubernetes "$(version_ldflags "$KUBE_VERSION")" "${pkgs[@]}"
    install_out "${KUBE_COMMANDS[@]}"
fi

# --- metrics-server ------------------------------------------------------------------------
if ! current metrics-server; then
    dir="$MOD/metrics-server"
    log "metrics-server v$METRICS_SERVER_VERSION"
    module "$dir" "sigs.k8s.io/metrics-server v$METRICS_SERVER_VERSION"
    pkg=sigs.k8s.io/metrics-server/cmd/metrics-server
    if [[ ! -s "$dir/go.sum" ]]; then
        run_logged "$LOG_DIR/metrics-server-get.log" "downloading the modules metrics-server needs" \
            "${NICE[@]}" go -C "$dir" get "$pkg@v$METRICS_SERVER_VERSION"
    fi
    ms_ldflags=" -X sigs.k8s.io/metrics-server/pkg/version.gitVersion=v$METRICS_SERVER_VERSION"
    build "$dir" metrics-server "$ms_ldflags$(version_ldflags "$METRICS_SERVER_VERSION")" "$pkg"
    install_out metrics-server
fi

# --- etcd ----------------------------------------------------------------------------------
if ! current etcd; then
    dir="$MOD/etcd"
    log "etcd v$ETCD_VERSION"
    module "$dir" "go.etcd.io/etcd/server/v3 v$ETCD_VERSION"
    if [[ ! -s "$dir/go.sum" ]]; then
        run_logged "$LOG_DIR/etcd-get.log" "downloading the modules etcd needs" \
            "${NICE[@]}" go -C "$dir" get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    fi
    build "$dir" etcd "" go.etcd.io/etcd/server/v3
    # go names a binary built from .../server/v3 after "server".
    [[ -x "$KUBE/out.tmp/server" ]] && mv -f "$KUBE/out.tmp/server" "$KUBE/out.tmp/etcd"
    install_out etcd
fi
# --- pause ---------------------------------------------------------------------------------
if ! current pause; then
    dir="$MOD/pause"
    mkdir -p "$dir"
    cat >"$dir/main.go" <<'EOF'
// pause: a pod sandbox's process. It holds the pod's namespaces and exits 0 on SIGTERM/SIGINT.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
EOF
    printf 'module oomforensics.local/pause\n\ngo 1.22\n' >"$dir/go.mod"
    log "pause"
    build "$dir" pause "" .
    install_out pause
fi
rmdir "$KUBE/out.tmp" 2>/dev/null || true

# --- the node's container runtime ----------------------------------------------------------
if ! current "${NODE_BINARIES[@]}"; then
    for tool in apt-get apt-cache dpkg-deb; do
        command -v "$tool" >/dev/null || die "'$tool' not found: the node's runtime comes from Debian packages"
    done
    [[ -r "$KEYRING" ]] || die "$KEYRING not found: install debian-archive-keyring"
    # The private apt configuration shared with hack/get-kubectl.sh (sid only, own lists and
    # state), under its lock.
    mkdir -p "$KUBE/debs"
    # shellcheck source=lib/private-apt.sh
    source "$(dirname "${BASH_SOURCE[0]}")/lib/private-apt.sh"
    private_apt "$CACHE/k8s/apt" "$MIRROR" "$SUITE" "$KEYRING"
    want=("containerd=$CONTAINERD_DEB" "containernetworking-plugins=$CNI_DEB")
    if ! apt-cache "${APT_OPTS[@]}" show "${want[@]}" >/dev/null 2>&1; then
        log "updating the private package lists ($SUITE main)"
        apt-get "${APT_OPTS[@]}" -q update >"$LOG_DIR/apt-update.log" 2>&1 ||
            die "apt-get update of the private $SUITE sources failed (log: $LOG_DIR/apt-update.log)"
    fi
    log "downloading ${want[*]} ($SUITE) and runc=$RUNC_DEB (the system's release)"
    rm -f "$KUBE/debs"/*.deb
    (cd "$KUBE/debs" && apt-get "${APT_OPTS[@]}" -q download "${want[@]}") >"$LOG_DIR/node-download.log" 2>&1 ||
        die "apt-get download ${want[*]} failed: $(tail -n 2 "$LOG_DIR/node-download.log")"
    flock -u 8
    # sid's runc is linked against a newer glibc than a stable system has; the system's own
    # release's runc (1.1+) works with containerd 2.x's shim.
    (cd "$KUBE/debs" && apt-get -o "APT::Sandbox::User=$(id -un)" -q download "runc=$RUNC_DEB") \
        >>"$LOG_DIR/node-download.log" 2>&1 ||
        die "apt-get download runc=$RUNC_DEB failed (OOMF_RUNC_VERSION picks another): $(tail -n 2 "$LOG_DIR/node-download.log")"
    rm -rf "$KUBE/node-root" "$KUBE/out.tmp"
    for deb in "$KUBE/debs"/*.deb; do
        dpkg-deb -x "$deb" "$KUBE/node-root" || die "cannot unpack $deb"
    done
    mkdir -p "$KUBE/out.tmp"
    for path in usr/bin/containerd usr/bin/containerd-shim-runc-v2 usr/bin/ctr usr/sbin/runc usr/lib/cni/loopback \
        usr/lib/cni/ptp usr/lib/cni/host-local; do
        [[ -x "$KUBE/node-root/$path" ]] || die "the packages no longer ship /$path"
        cp -f "$KUBE/node-root/$path" "$KUBE/out.tmp/"
    done
    install_out "${NODE_BINARIES[@]}"
    rm -rf "$KUBE/node-root" "$KUBE/out.tmp"
    for name in containerd runc; do
        "$BIN/$name" --version >/dev/null 2>&1 ||
            die "$name does not run here: $("$BIN/$name" --version 2>&1 | tail -n 1)"
    done
fi

for name in kube-apiserver metrics-server etcd; do
    "$BIN/$name" --version >/dev/null 2>&1 ||
        die "the built $name does not run: $("$BIN/$name" --version 2>&1 | tail -n 1)"
done
log "done in $((SECONDS - started))s: $summary in $BIN"
