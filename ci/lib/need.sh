# Sourced, not run. `need LABEL WHAT:PACKAGE…` installs the Debian packages
# whose WHAT is missing — a command on PATH, or an absolute path that must
# exist (a file the package ships) — when we are root; otherwise it names
# them and fails. One place for what every script used to repeat, with apt's
# lock waited for (helpers and CI steps may run apt at the same time).
need() {
    local label=$1 what pkg missing=()
    shift
    for spec in "$@"; do
        what=${spec%%:*} pkg=${spec#*:}
        if [[ $what == /* ]]; then
            [ -e "$what" ] && continue
        else
            command -v "$what" >/dev/null 2>&1 && continue
        fi
        missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "$label: installing ${missing[*]}"
        apt-get -o DPkg::Lock::Timeout=900 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "$label: missing ${missing[*]} (apt-get install them, or run as root)" >&2
        return 2
    fi
}
