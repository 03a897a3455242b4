# shellcheck shell=bash
# A private apt configuration for downloading Debian packages without installing anything:
# its own sources list (one suite of one mirror), package lists and state under APT_DIR, so
# another archive configured on the system cannot offer a higher-numbered package of the same
# name. Sourced by hack/get-kubectl.sh and hack/build-kube.sh, which share APT_DIR and its lock.
#
#   private_apt APT_DIR MIRROR SUITE KEYRING   sets APT_OPTS (for apt-get / apt-cache) and
#                                              holds APT_DIR/.lock on fd 8 until `flock -u 8`

private_apt() {
    local dir="$1" mirror="$2" suite="$3" keyring="$4"
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d" \
        "$dir/preferences.d" "$dir/state"
    [[ -f "$dir/status" ]] || : >"$dir/status"
    echo "deb [signed-by=$keyring] $mirror $suite main" >"$dir/sources.list"
    APT_OPTS=(
        -o "Dir::Etc::sourcelist=$dir/sources.list"
        -o "Dir::Etc::sourceparts=$dir/sources.list.d"
        -o "Dir::Etc::preferences=$dir/preferences"
        -o "Dir::Etc::preferencesparts=$dir/preferences.d"
        -o "Dir::State=$dir/state"
        -o "Dir::State::status=$dir/status"
        -o "Dir::State::Lists=$dir/lists"
        -o "Dir::Cache=$dir/cache"
        -o "APT::Get::List-Cleanup=true"
        -o "Acquire::Languages=none"
        -o "APT::Sandbox::User=$(id -un)"
    )
    exec 8>"$dir/.lock"
    flock 8
}
