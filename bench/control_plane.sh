#!/usr/bin/env bash
# The control-plane benchmarks of issues 8 and 10: `berth server` in one process, simulated container instances
# (`berth agent --simulate N`) in a second one, and the load generator (bench/Berth.Benchmarks) in a third.
#   bench/control_plane.sh scale [INSTANCES] [TASKS] [CLIENTS]   placement throughput (default 5000 100000 32)
#   bench/control_plane.sh flat [SIZES...]                       flat cost with 1,000 / 10,000 / 100,000 tasks in the store
#   bench/control_plane.sh fanout [INSTANCES] [STOPS]            StopTask -> owning agent, p50/p99 (default 5000 500)
#   bench/control_plane.sh services [INSTANCES] [SERVICES] [PER_SERVICE] [CLIENTS]
#                                                                 issue 10: CreateService x SERVICES (each desiredCount PER_SERVICE)
#                                                                 -> sum of runningCount reached (default 5000 1000 100 32)
#   bench/control_plane.sh sigv4 [TASKS] [ROUNDS] [SECONDS]      issue 12: DescribeTasks with --auth none beside --auth sigv4, two servers
#                                                                 on copies of one seeded store, alternating rounds (default 10000 5 5)
# Every server binds 127.0.0.1; each run uses a fresh data directory under /tmp and removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"; shift || true
port=${BENCH_PORT:-4760}
berth=(dotnet src/Berth.Cli/bin/Release/net10.0/berth.dll)
bench=(dotnet bench/Berth.Benchmarks/bin/Release/net10.0/Berth.Benchmarks.dll)
endpoint="http://127.0.0.1:$port"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

ecs() { # ecs OPERATION JSON
    curl -sf -X POST "$endpoint/" -H 'Content-Type: application/x-amz-json-1.1' \
        -H "X-Amz-Target: AmazonEC2ContainerServiceV20141113.$1" -d "$2" >/dev/null \
        || { echo "bench: $1 failed against $endpoint" >&2; exit 1; }
}

start_server() { # start_server DATA [extra berth args]
    local data=$1; shift
    "${berth[@]}" server --listen "127.0.0.1:$port" --agent-listen "127.0.0.1:$((port + 1))" --data "$data" --log-level Warning "$@" >"$data.server.log" 2>&1 &
    server_pid=$!; pids+=("$server_pid")
    for _ in $(seq 1 300); do curl -sf "$endpoint/_berth/health" >/dev/null && return 0; sleep 0.2; done
    echo "bench: berth server did not start; see $data.server.log" >&2; exit 1
}

start_sim() { # start_sim N CLUSTER DATA [MEMORY_MIB]
    "${berth[@]}" agent --server "$endpoint" --simulate "$1" --cluster "$2" --data "$3/sim" --log-level Warning \
        --cpu 4096 --memory "${4:-8192}" >"$3.sim.log" 2>&1 &
    sim_pid=$!; pids+=("$sim_pid")
}

cpu_seconds() { # cpu_seconds PID: user + system CPU seconds so far
    awk '{ sub(/.*\) /, ""); printf "%.1f", ($12 + $13) / 100 }' "/proc/$1/stat"
}

stop_all() { cleanup; pids=(); }

[ -f src/Berth.Cli/bin/Release/net10.0/berth.dll ] && [ -f bench/Berth.Benchmarks/bin/Release/net10.0/Berth.Benchmarks.dll ] \
    || dotnet build -c Release Berth.slnx -nologo -v quiet -clp:ErrorsOnly

case "$mode" in
scale)
    instances=${1:-5000}; tasks=${2:-100000}; clients=${3:-32}
    data=$(mktemp -d /tmp/berth-bench-scale.XXXXXX)
    start_server "$data"
    ecs CreateCluster '{"clusterName":"bench"}'
    ecs RegisterTaskDefinition '{"family":"bench-sim","containerDefinitions":[{"name":"main","image":"berth-test/busybox:latest","memory":16,"essential":true}]}'
    start_sim "$instances" bench "$data"
    "${bench[@]}" scale --endpoint "$endpoint" --pid "$server_pid" --instances "$instances" --tasks "$tasks" --clients "$clients"
    echo "| simulated fleet's CPU time (whole process life, registration included) | $(cpu_seconds "$sim_pid") s |"
    echo "| store size (state.db + wal) | $(du -csm "$data"/state.db* | tail -1 | cut -f1) MiB |"
    stop_all; rm -rf "$data" "$data".*.log
    ;;
flat)
    sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 100000)
    for n in "${sizes[@]}"; do
        data=$(mktemp -d /tmp/berth-bench-flat.XXXXXX)
        "${bench[@]}" seed --data "$data" --tasks "$n" >/dev/null
        start_server "$data"
        # Room for every task RunTask can place in the run: a full cluster would answer with failures, which are cheaper.
        start_sim 50 bench-api "$data" 4000000
        echo "### $n stopped tasks in the store"
        "${bench[@]}" flat --endpoint "$endpoint" --pid "$server_pid" --seconds "${FLAT_SECONDS:-10}"
        stop_all; rm -rf "$data" "$data".*.log
    done
    ;;
services)
    instances=${1:-5000}; services=${2:-1000}; per=${3:-100}; clients=${4:-32}
    data=$(mktemp -d /tmp/berth-bench-services.XXXXXX)
    start_server "$data"
    ecs CreateCluster '{"clusterName":"bench"}'
    ecs RegisterTaskDefinition '{"family":"bench-svc","containerDefinitions":[{"name":"main","image":"berth-test/busybox:latest","memory":16,"essential":true}]}'
    start_sim "$instances" bench "$data"
    "${bench[@]}" services --endpoint "$endpoint" --pid "$server_pid" --instances "$instances" --services "$services" --per-service "$per" --clients "$clients"
    echo "| simulated fleet's CPU time (whole process life, registration included) | $(cpu_seconds "$sim_pid") s |"
    echo "| store size (state.db + wal) | $(du -csm "$data"/state.db* | tail -1 | cut -f1) MiB |"
    stop_all; rm -rf "$data" "$data".*.log
    ;;
fanout)
    instances=${1:-5000}; stops=${2:-500}
    data=$(mktemp -d /tmp/berth-bench-fanout.XXXXXX)
    start_server "$data"
    ecs CreateCluster '{"clusterName":"fanout"}'
    ecs RegisterTaskDefinition '{"family":"bench-fan","containerDefinitions":[{"name":"main","image":"berth-test/busybox:latest","memory":16,"essential":true}]}'
    "${bench[@]}" fanout --endpoint "$endpoint" --agent-endpoint "http://127.0.0.1:$((port + 1))" --pid "$server_pid" --instances "$instances" --stops "$stops"
    stop_all; rm -rf "$data" "$data".*.log
    ;;
sigv4)
    tasks=${1:-10000}; rounds=${2:-5}; seconds=${3:-5}
    data=$(mktemp -d /tmp/berth-bench-sigv4.XXXXXX)
    "${bench[@]}" seed --data "$data/none" --tasks "$tasks" >/dev/null
    cp -r "$data/none" "$data/sigv4"
    created=$("${berth[@]}" credentials create --name bench --data "$data/sigv4")
    key=$(awk '/AccessKeyId/ {print $2}' <<<"$created"); secret=$(awk '/SecretAccessKey/ {print $2}' <<<"$created")
    start_server "$data/none" --auth none
    none_endpoint=$endpoint
    port=$((port + 2)); endpoint="http://127.0.0.1:$port"
    start_server "$data/sigv4" --auth sigv4
    echo "### DescribeTasks, $tasks stopped tasks in each store"
    "${bench[@]}" sigv4 --endpoint-none "$none_endpoint" --endpoint-sigv4 "$endpoint" --key "$key" --secret "$secret" \
        --seconds "$seconds" --rounds "$rounds" --concurrency "${SIGV4_CLIENTS:-8}"
    stop_all; rm -rf "$data" "$data".*.log "$data"/*.log
    ;;
*)
    sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
