#!/usr/bin/env bash
# Debian's chromium at /usr/bin/chromium: the report tests open the HTML report in it (headless,
# driven over the DevTools protocol) and check that it renders without console errors.
#
# Idempotent: when /usr/bin/chromium runs, this is a single line. Installing needs root (or
# sudo) and apt-get. Chromium is optional for everything but those tests: when it cannot be
# installed, this says why and exits 0; the report browser tests then fail pointing here.
set -euo pipefail

CACHE="${OOMF_CACHE:-$HOME/.cache/oomforensics}"
CHROMIUM="${OOMF_CHROMIUM:-/usr/bin/chromium}"
LOG="$CACHE/chromium-install.log"

log() { printf 'get-chromium: %s\n' "$*"; }
unavailable() {
    log "chromium NOT installed: $*"
    log "the report browser tests (tests/integration/test_report_in_browser.py) will fail until this succeeds"
    exit 0
}

if [[ -x "$CHROMIUM" ]] && version="$("$CHROMIUM" --version 2>/dev/null)"; then
    log "present ($version at $CHROMIUM)"
    exit 0
fi

command -v apt-get >/dev/null || unavailable "no apt-get (not a Debian-based system); install chromium so that $CHROMIUM exists"
sudo=""
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || unavailable "installing chromium needs root; run as root or install the chromium package"
    sudo="sudo"
fi
mkdir -p "$CACHE"
log "installing Debian's chromium (apt-get install -y chromium; log in $LOG)"
install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >>"$LOG" 2>&1; }
: >"$LOG"
if ! install; then
    log "install failed; refreshing the package lists and retrying"
    $sudo apt-get update -q >>"$LOG" 2>&1 || unavailable "apt-get update failed: $(tail -n 1 "$LOG")"
    install || unavailable "apt-get install chromium failed: $(tail -n 1 "$LOG")"
fi
[[ -x "$CHROMIUM" ]] || unavailable "the chromium package is installed but $CHROMIUM is missing"
version="$("$CHROMIUM" --version 2>/dev/null)" || unavailable "$CHROMIUM --version fails: the package is broken"
log "installed $version at $CHROMIUM"
