#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# [server] workers: echo and broadcast throughput of one process (workers = 1, no [cluster], the
# product as the package runs it) beside two workers (workers = 2, which needs [cluster]: a
# redis-server started here), for the README's "Every core" table.
#
# Usage: tests/perf/workers_bench.sh [BUILD_DIR]    (default: build-rel, a Release build)
# Needs redis-server, taskset-free (nothing is pinned: with two workers on a 2-CPU machine every
# CPU serves a worker, and the load generator takes its share from both; its CPU use is shown).
#
# Environment (defaults in brackets): RUNS [3]  DURATION [5]  WARMUP [1]  ECHO_CONNECTIONS [100]
#   DEPTH [8]  SUBSCRIBERS [1000]  WINDOW [32]  SIZE [32]  REDIS_SERVER [/usr/bin/redis-server]
# Output: a line per run on stderr; the medians as a Markdown table on stdout. Bounded: 4 rows of
# RUNS runs of DURATION + WARMUP + setup; each cut off by `timeout`.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
ECHO_CONNECTIONS=${ECHO_CONNECTIONS:-100}
DEPTH=${DEPTH:-8}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
WINDOW=${WINDOW:-32}
SIZE=${SIZE:-32}
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
wsrelay=$build/src/wsrelay
bench=$build/src/bench/wsrelay-bench
for b in "$wsrelay" "$bench" "$REDIS_SERVER"; do
    [[ -x $b ]] || { echo "workers_bench.sh: $b not found (build first; apt install redis-server)" >&2; exit 2; }
done
py=/usr/bin/python3

work=$(mktemp -d /tmp/wsrelay-workers-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

redis_port=$(free_port)
"$REDIS_SERVER" --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
wait_port "$redis_port" "$redis_pid" || { echo "workers_bench.sh: redis-server did not start" >&2; exit 1; }

run_row() {  # $1 workers, $2 scenario; prints one JSON line per run into $work/<workers>.<scenario>.<run>.json
    local workers=$1 scenario=$2 run port pid cpu_args args
    for run in $(seq "$RUNS"); do
        port=$(free_port)
        {
            bench_config "$port" "workers = $workers"
            [[ $workers != 1 ]] && printf '[cluster]\nredis = "redis://127.0.0.1:%s"\n' "$redis_port"
        } >"$work/w$workers.toml"
        "$wsrelay" --config "$work/w$workers.toml" >>"$work/w$workers.log" 2>&1 &
        pid=$!
        pids+=("$pid")
        wait_port "$port" "$pid" || { echo "workers_bench.sh: wsrelay did not start:" >&2; cat "$work/w$workers.log" >&2; exit 1; }
        cpu_args=()
        if [[ $workers = 1 ]]; then
            cpu_args=(--cpu-pid "w1=$pid")
        else
            local i=1 k
            sleep 0.5  # the workers' links to Redis
            for k in $(pgrep -P "$pid"); do cpu_args+=(--cpu-pid "w$i=$k"); i=$((i + 1)); done
            cpu_args+=(--cpu-pid "redis=$redis_pid")
        fi
        if [[ $scenario = echo ]]; then
            args=(echo -c "$ECHO_CONNECTIONS" -d "$DEPTH")
        else
            args=(broadcast -c "$SUBSCRIBERS" -w "$WINDOW")
        fi
        timeout $((DURATION + WARMUP + 60)) "$bench" "${args[@]}" -s "$SIZE" -t "${DURATION}s" --warmup "${WARMUP}s" \
            -q --json "${cpu_args[@]}" "ws://127.0.0.1:$port/bench" >"$work/$workers.$scenario.$run.json" 2>/dev/null
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        $py - "$work/$workers.$scenario.$run.json" "$workers" "$scenario" "$run" >&2 <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
cpus = ", ".join("%s %.0f%%" % (k, 100 * v["cpu_util"]) for k, v in sorted(r["cpu_pids"].items()))
print("  workers=%s %s run %s: %.0f msg/s, generator %.0f%%, %s" % (
    sys.argv[2], sys.argv[3], sys.argv[4], r["msgs_per_s"], 100 * r["bench_cpu_util"], cpus))
EOF
    done
}

echo "workers bench: $(nproc) CPUs, nothing pinned; $RUNS runs of ${DURATION}s after ${WARMUP}s" >&2
for w in 1 2; do
    run_row "$w" echo
    run_row "$w" broadcast
done

$py - "$work" "$RUNS" "$ECHO_CONNECTIONS" "$DEPTH" "$SUBSCRIBERS" "$WINDOW" "$SIZE" <<'EOF'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
conns, depth, subs, window, size = sys.argv[3:8]

def med(values):
    return statistics.median(values)

print("| %s B messages | workers | msg/s (deliveries/s) | wsrelay CPU (sum of workers) | wsrelay CPU per message | redis-server CPU | generator CPU |" % size)
print("|---|---:|---:|---:|---:|---:|---:|")
for scenario, label in (("echo", "echo, %s connections, %s in flight each" % (conns, depth)),
                        ("broadcast", "broadcast, 1 publisher, %s subscribers, window %s" % (subs, window))):
    for w in ("1", "2"):
        rs = [json.load(open("%s/%s.%s.%d.json" % (work, w, scenario, i))) for i in range(1, runs + 1)]
        ours = [{k: v for k, v in r["cpu_pids"].items() if k != "redis"} for r in rs]
        rate = med([r["msgs_per_s"] for r in rs])
        server = med([sum(v["cpu_util"] for v in o.values()) for o in ours])
        per = med([sum(v["cpu_s"] for v in o.values()) * 1e6 / max(1, r["messages"]) for o, r in zip(ours, rs)])
        redis = med([r["cpu_pids"]["redis"]["cpu_util"] if "redis" in r["cpu_pids"] else 0 for r in rs])
        gen = med([r["bench_cpu_util"] for r in rs])
        print("| %s | %s | %.2f M | %.0f %% | %.3f µs | %s | %.0f %% |" % (
            label, w, rate / 1e6, 100 * server, per, "%.0f %%" % (100 * redis) if w != "1" else "—", 100 * gen))
EOF
