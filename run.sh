#!/usr/bin/env bash
# Runs Berth on this machine: installs and starts Docker when needed, builds, and runs `berth up`
# in the foreground (Ctrl+C stops it). Extra arguments go to `berth up`, e.g. ./run.sh --listen 0.0.0.0:4566
# (off loopback that needs a credential first: `berth credentials create --name admin --data .berth`).
set -euo pipefail
cd "$(dirname "$0")"
. eng/scripts/prereqs.sh

berth_ensure_docker
berth_log "building Berth (Release)"
dotnet build -c Release src/Berth.Cli -nologo -v quiet -clp:ErrorsOnly >/dev/null
# `berth` on PATH for the README's other commands (credentials, server, agent, logs, join-token).
berth_install_launcher
exec dotnet src/Berth.Cli/bin/Release/net10.0/berth.dll up "$@"
