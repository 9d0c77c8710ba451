#!/usr/bin/env bash
# Installing what a script needs, one way for tests/run and the benchmarks
# (sourced by tests/run and bench/lib.sh): only what is missing, from
# Debian with apt-get, and a loud failure, never a skip, when something is
# still missing afterwards. Only the missing packages: a tool from elsewhere
# (e.g. a Node.js from NodeSource) is never replaced by Debian's.
#
# The caller declares, before calling install_missing:
#   PKG_OF    command (or an executable's path) -> the Debian package that
#             provides it;
#   PKG_TEST  (optional) Debian package -> a shell command that succeeds once
#             it is installed, for what is not a command (a Python module, a
#             file).

# missing_packages: the packages of PKG_OF and PKG_TEST whose command or test
# fails, one a line, each once.
missing_packages() {
    local t p
    {
        for t in "${!PKG_OF[@]}"; do
            command -v "$t" >/dev/null || echo "${PKG_OF[$t]}"
        done
        if declare -p PKG_TEST >/dev/null 2>&1; then
            for p in "${!PKG_TEST[@]}"; do
                bash -c "${PKG_TEST[$p]}" >/dev/null 2>&1 || echo "$p"
            done
        fi
    } | sort -u
}

# install_missing ME [APT-GET INSTALL OPTION...]: installs the missing
# packages with apt-get (needs root: otherwise fails, ME naming the caller in
# the message, with the packages it lacks), then fails if any of them is still
# missing.
install_missing() {
    local me=$1 missing
    shift
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]})) || return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "$me: missing packages ${missing[*]} (run as root to install)" >&2
        return 1
    fi
    echo "== installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" "${missing[@]}" >/dev/null
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]})); then
        echo "$me: still missing after installing them: ${missing[*]}" >&2
        return 1
    fi
}
