#!/usr/bin/env bash
# Debian's kubectl, by exact version, into ${OOMF_CACHE:-~/.cache/oomforensics}/k8s/bin/kubectl.
#
# It uses the private apt configuration of hack/lib/private-apt.sh (own sources list with
# Debian sid only, own lists and package state under k8s/apt), shared with hack/build-kube.sh:
# another archive configured on the system may offer a higher-numbered package named kubectl,
# so the version is pinned and only the private sources are consulted. Nothing is installed.
#
# Idempotent: a stamp next to the binary records the version; a current one is a single line.
# kubectl is optional (only the tests that drive kubectl need it): when it cannot be had, this
# says why and exits 0; those tests then fail with a message pointing here.
set -euo pipefail

CACHE="${OOMF_CACHE:-$HOME/.cache/oomforensics}"
K8S="$CACHE/k8s"
APT_DIR="$K8S/apt"
BIN="$K8S/bin"
WORK="$K8S/kubectl"
SUITE="${OOMF_K8S_SUITE:-sid}"
MIRROR="${OOMF_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"
VERSION="${OOMF_KUBECTL_VERSION:-1.36.4+ds-1}"
STAMP="$BIN/kubectl.stamp"

log() { printf 'get-kubectl: %s\n' "$*"; }
unavailable() {
    log "kubectl $VERSION NOT installed: $*"
    log "tests that drive kubectl will fail until this script succeeds; the rest do not need it"
    exit 0
}

if [[ -x "$BIN/kubectl" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; then
    log "up to date (kubectl $VERSION at $BIN/kubectl)"
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb flock; do
    command -v "$tool" >/dev/null || unavailable "'$tool' not found (not a Debian-based system)"
done
[[ -r "$KEYRING" ]] || unavailable "$KEYRING not found (install debian-archive-keyring)"

mkdir -p "$BIN" "$WORK"
# shellcheck source=lib/private-apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/private-apt.sh"
private_apt "$APT_DIR" "$MIRROR" "$SUITE" "$KEYRING" # holds the private lists' lock (fd 8)
have_version() { apt-cache "${APT_OPTS[@]}" show "kubectl=$VERSION" >/dev/null 2>&1; }
if ! have_version; then
    log "updating the private package lists ($SUITE main)"
    apt-get "${APT_OPTS[@]}" -q update >"$WORK/apt-update.log" 2>&1 ||
        unavailable "apt-get update of the private $SUITE sources failed: $(tail -n 1 "$WORK/apt-update.log")"
    if ! have_version; then
        offered="$(apt-cache "${APT_OPTS[@]}" madison kubectl 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' | paste -sd, -)"
        unavailable "$SUITE has no kubectl=$VERSION (it offers: ${offered:-none}); set OOMF_KUBECTL_VERSION"
    fi
fi

log "downloading kubectl=$VERSION"
rm -f "$WORK"/kubectl_*.deb
(cd "$WORK" && apt-get "${APT_OPTS[@]}" -q download "kubectl=$VERSION") >"$WORK/download.log" 2>&1 ||
    unavailable "apt-get download kubectl=$VERSION failed: $(tail -n 1 "$WORK/download.log")"
flock -u 8

debs=("$WORK"/kubectl_*.deb)
[[ -f "${debs[0]}" ]] || unavailable "apt-get download produced no kubectl .deb"
rm -rf "$WORK/root"
dpkg-deb -x "${debs[0]}" "$WORK/root" || unavailable "cannot unpack ${debs[0]}"
[[ -x "$WORK/root/usr/bin/kubectl" ]] || unavailable "the package has no /usr/bin/kubectl"
if ! client="$("$WORK/root/usr/bin/kubectl" version --client 2>&1)"; then
    unavailable "the unpacked kubectl does not run here: $(tail -n 1 <<<"$client")"
fi
cp -f "$WORK/root/usr/bin/kubectl" "$BIN/kubectl.tmp"
mv -f "$BIN/kubectl.tmp" "$BIN/kubectl"
rm -rf "$WORK/root"
echo "$VERSION" >"$STAMP"
log "installed kubectl $VERSION at $BIN/kubectl ($(head -n 1 <<<"$client"))"
