# Shared set-up for run.sh and test.sh (sourced, not run): installs what is missing from Debian's
# packages and starts dockerd when it is not running. Safe to run again and again.

berth_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

berth_apt_updated=0
berth_apt_install() {
    # berth_apt_install PACKAGE... : installs the named Debian packages, running apt-get update once.
    if [ "$berth_apt_updated" = 0 ]; then
        berth_log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        berth_apt_updated=1
    fi
    berth_log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

berth_need_cmd() {
    # berth_need_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || berth_apt_install "$2"
}

berth_ensure_docker() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        berth_apt_install docker.io
    fi
    command -v docker >/dev/null 2>&1 || berth_apt_install docker.io
    if ! docker info >/dev/null 2>&1; then
        berth_log "starting dockerd (log: /var/log/berth-dockerd.log)"
        nohup dockerd >/var/log/berth-dockerd.log 2>&1 &
        for _ in $(seq 1 60); do
            docker info >/dev/null 2>&1 && break
            sleep 0.5
        done
    fi
    if ! docker info >/dev/null 2>&1; then
        echo "berth: the Docker engine did not start; see /var/log/berth-dockerd.log" >&2
        return 1
    fi
}

berth_install_launcher() {
    # Puts a `berth` command on PATH (/usr/local/bin/berth) that runs the build in this checkout, so the
    # README's `berth ...` commands work as written. Replaces only a launcher it wrote itself.
    local dll target dotnet
    dll="$(pwd)/src/Berth.Cli/bin/Release/net10.0/berth.dll"
    target=/usr/local/bin/berth
    dotnet="$(command -v dotnet)"
    if [ -e "$target" ] && ! grep -q 'berth launcher' "$target" 2>/dev/null; then
        berth_log "$target exists and is not Berth's launcher; leaving it (run: dotnet $dll)"
        return 0
    fi
    if ! { [ -w /usr/local/bin ] || [ -w "$target" ]; }; then
        berth_log "cannot write $target; use: alias berth='dotnet $dll'"
        return 0
    fi
    printf '#!/bin/sh\n# berth launcher written by %s/run.sh\nexec "%s" "%s" "$@"\n' "$(pwd)" "$dotnet" "$dll" > "$target.tmp"
    chmod 755 "$target.tmp"
    mv -f "$target.tmp" "$target"
}
