# SPDX-License-Identifier: Apache-2.0
# Sourced by the perf scripts (run_suite.sh, cluster_bench.sh, workers_bench.sh):
#   source "$(dirname "$0")/lib.sh" "$@"
# Sets here, root, build (the script's first argument, default build-rel, made absolute) and the
# run settings every script shares: RUNS [3], DURATION [5] (seconds measured), WARMUP [1].

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build-rel}
[[ $build = /* ]] || build=$PWD/$build
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
script_name=$(basename "$0")
# Whole seconds: the scripts compute their timeouts from these with shell arithmetic.
if ! [[ $RUNS =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]]; then
    echo "$script_name: RUNS and DURATION must be whole numbers of at least 1, WARMUP a whole number (seconds)" >&2
    exit 2
fi

free_port() {  # a loopback TCP port nobody listens on now
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {  # $1: port, $2: the pid that should listen on it; up to 10 s for it to accept connections
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# The configuration every perf script gives wsrelay: quiet logs, no rate or per-IP limit, room for a
# million connections, send queues that never overflow in these runs, one listener on 127.0.0.1:$1.
# The listener comes last, so a caller may print more of its keys (tls = true), then its own tables.
bench_config() {  # $1: port, $2: more [server] lines (optional); prints the configuration
    printf '[server]\nlog_level = "warning"\n%s' "${2:+$2$'\n'}"
    printf '[limits]\nmax_connections = 1000000\nmax_connections_per_ip = 0\nmessage_rate = 0\nsend_queue_bytes = 67108864\n'
    printf '[[listen]]\naddress = "127.0.0.1:%s"\n' "$1"
}

raise_fd_limit() {  # $1: descriptors needed by each of the server and the generator
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $1 ]]; then
        ulimit -n "$1" 2>/dev/null || { echo "$script_name: ulimit -n is $(ulimit -n), need $1" >&2; exit 2; }
    fi
}
