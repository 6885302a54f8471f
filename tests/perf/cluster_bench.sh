#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Rooms across instances ([cluster], Redis pub/sub) beside the local broadcast of the same size:
# one publisher on instance A, SUBSCRIBERS subscribers on instance B in the same room, every
# message going A -> redis-server -> B. Reports deliveries/s, latency, the CPU time of A, B and
# redis-server per delivery and per published message (wsrelay-bench --cpu-pid), and PUBLISH
# commands per message (Redis's own count, INFO commandstats, over the messages A published,
# from A's /metrics). Then how many PUBLISH/s one Redis core carries (redis-benchmark).
#
# Usage: tests/perf/cluster_bench.sh [BUILD_DIR]    (default: build-rel, a Release build)
#   cmake -S . -B build-rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DWSRELAY_TESTS=OFF
#   ninja -C build-rel && tests/perf/cluster_bench.sh build-rel
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools), curl, taskset.
#
# Rows, each RUNS times on fresh processes (B, and redis-server and A where the row has [cluster]):
#   off         local broadcast on one instance without [cluster] (run_suite.sh's broadcast row)
#   on          local broadcast on B, [cluster] on: every message also goes to Redis, which sends
#               it back to B alone (subscribed for its own members; it skips its own messages)
#   cross       the publisher on A, the subscribers on B
#   *_rate      the same three at RATE msg/s: latency at a load every setup carries
#   capacity    redis-benchmark PUBLISHes envelopes (what an instance publishes for a room in one
#               loop turn) on a channel that N subscribers (redis_sink.py) listen to, standing
#               for the instances with members in the room; Redis alone on its CPU, its CPU time
#               read from /proc. Each CAPACITY entry is "N,redis-benchmark options,PUBLISH
#               count[,messages per envelope (1)]": pipelined (-P 32: each read brings Redis many
#               commands, as from busy instances whose turns carry the PUBLISHes of many rooms in
#               one write) and not (-P 1 on 50 connections: a read and a reply per PUBLISH, as
#               from many quiet instances). Where the generator cannot saturate Redis, the
#               ceiling is 1 / (CPU per PUBLISH). Envelopes of many messages need subscribers
#               that read faster than this box's shared CPU lets them (Redis drops a subscriber
#               32 MB behind, client-output-buffer-limit pubsub): the last column then says NO.
# The window rows run as fast as flow control allows (WINDOW messages unacknowledged; with the
# publisher on A, acknowledged by the last of B's subscribers, see wsrelay-bench(1)), so their
# deliveries/s say which of B and the generator ran out of CPU first, and their latency is
# mostly queueing. Compare latency on the fixed-rate rows.
#
# CPUs (this is a 2-CPU box; override with B_CPU, A_CPU, REDIS_CPU, BENCH_CPU):
#   CPU 0  B, the instance that delivers to the subscribers (the cluster-off instance in `off`):
#          alone, as the server is in run_suite.sh, so its CPU per delivery compares with that row
#   CPU 1  wsrelay-bench, A and redis-server. A and Redis work per message, the generator per
#          delivery (1000x as much): they take a few percent of the generator's CPU, and in the
#          window rows the generator competes with them for it.
#   capacity: redis-server alone on CPU 0; redis-benchmark and the sinks on CPU 1.
# CPU per delivery and per message come from /proc/PID/task/*/schedstat (the scheduler's own
# account, in ns): they depend little on who shares a CPU, deliveries/s does.
#
# Environment (defaults in brackets):
#   RUNS [3]  DURATION [5] (seconds measured)  WARMUP [1]  WINDOW [32]  RATE [100]  SIZE [32]
#   SUBSCRIBERS [1000]
#   CAPACITY ["2,-c 32 -P 32,2000000;8,-c 32 -P 32,2000000;2,-c 50 -P 1,300000"]
#   ONLY ["": all; else a subset of off on cross off_rate on_rate cross_rate capacity]
#   REDIS_SERVER [/usr/bin/redis-server]  REDIS_BENCHMARK [redis-benchmark]  KEEP [unset: delete
#   the results directory]
# Output: per-run lines on stderr; the Markdown tables and the figures against the targets on
# stdout. Bounded: 18 runs of DURATION + WARMUP + setup and drain (6-7 s each) and the capacity
# runs (a few seconds each), about 2.5 minutes with the defaults; each run is cut off by
# `timeout` (DURATION + WARMUP + 60 s; 60 s for a capacity run).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
WINDOW=${WINDOW:-32}
RATE=${RATE:-100}
SIZE=${SIZE:-32}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
CAPACITY=${CAPACITY:-2,-c 32 -P 32,2000000;8,-c 32 -P 32,2000000;2,-c 50 -P 1,300000}
ONLY=${ONLY:-}
B_CPU=${B_CPU:-0}
A_CPU=${A_CPU:-1}
REDIS_CPU=${REDIS_CPU:-1}
BENCH_CPU=${BENCH_CPU:-1}
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
RUN_TIMEOUT=$((${DURATION%.*} + ${WARMUP%.*} + 60))  # setup and drain; whole seconds
ROOM=/cluster

wsrelay=$build/src/wsrelay
bench=$build/src/bench/wsrelay-bench
for b in "$wsrelay" "$bench"; do
    [[ -x $b ]] || { echo "cluster_bench.sh: $b not found; build first (see the header of this script)" >&2; exit 2; }
done
for c in taskset curl "$REDIS_SERVER" "$REDIS_BENCHMARK"; do
    command -v "$c" >/dev/null || { echo "cluster_bench.sh: $c is needed" >&2; exit 2; }
done
if [[ $(nproc) -lt 2 ]]; then echo "cluster_bench.sh: needs 2 CPUs" >&2; exit 2; fi
raise_fd_limit $((SUBSCRIBERS + 256))

work=$(mktemp -d /tmp/wsrelay-cluster-bench.XXXXXX)
pids=()  # every process this script started and has not stopped yet
# Set by start_wsrelay (printf -v) and start_redis; empty while not running.
A_pid='' A_port='' A_metrics='' B_pid='' B_port='' B_metrics='' redis_pid='' redis_port=''
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -z ${KEEP:-} ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_all() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }  # utime + stime, proc(5); comm has no spaces here
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }  # all CPUs, not idle or iowait
# CPU seconds of this shell's waited-for descendants, from `times` (run in this shell, not in a
# $(...) subshell, which would count its own children).
children_s() { awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.3f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$work/times"; }

# The machine may be shared: what other processes (kernel threads included) used while the
# generator ran = all CPUs' busy time - ours (generator, A, B, redis-server). Reported per row.
load_start() {  # $@: our server pids
    load_pids=("$@")
    load_t0=$(date +%s%N)
    load_busy0=$(busy_ticks)
    times >"$work/times"
    load_child0=$(children_s)
    load_ours0=0
    for p in "${load_pids[@]}"; do load_ours0=$((load_ours0 + $(cpu_ticks "$p"))); done
}
load_end() {  # $1: output file
    local busy child ours=0 t1 hz
    t1=$(date +%s%N)
    busy=$(busy_ticks)
    times >"$work/times"
    child=$(children_s)
    for p in "${load_pids[@]}"; do ours=$((ours + $(cpu_ticks "$p"))); done
    hz=$(getconf CLK_TCK)
    awk -v w="$(( t1 - load_t0 ))" -v b="$(( busy - load_busy0 ))" -v s="$(( ours - load_ours0 ))" -v c0="$load_child0" \
        -v c1="$child" -v hz="$hz" 'BEGIN { printf "{\"wall_s\":%.3f,\"busy_s\":%.3f,\"ours_s\":%.3f}\n", w / 1e9, b / hz, s / hz + c1 - c0 }' >"$1"
}

start_redis() {  # sets redis_pid, redis_port
    redis_port=$(free_port)
    taskset -c "$1" "$REDIS_SERVER" --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        >"$work/redis.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    wait_port "$redis_port" "$redis_pid" || { echo "cluster_bench.sh: redis-server did not start:" >&2; cat "$work/redis.log" >&2; exit 1; }
}

# wsrelay as every perf script configures it for benchmarking (lib.sh's bench_config), plus a
# metrics listener and, given a Redis port, [cluster].
start_wsrelay() {  # $1: name, $2: cpu, $3: redis port or ""; sets <name>_pid, <name>_port, <name>_metrics
    local name=$1 port metrics
    port=$(free_port)
    metrics=$(free_port)
    { bench_config "$port"; printf '[[listen]]\naddress = "127.0.0.1:%s"\nmetrics = true\n' "$metrics"; } >"$work/$name.toml"
    # node_id stays the default, hostname:pid, as the capacity runs' envelopes assume.
    [[ -n $3 ]] && printf '[cluster]\nredis = "redis://127.0.0.1:%s"\n' "$3" >>"$work/$name.toml"
    taskset -c "$2" "$wsrelay" --config "$work/$name.toml" >"$work/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_port "$port" "$pid" || { echo "cluster_bench.sh: wsrelay $name did not start:" >&2; cat "$work/$name.log" >&2; exit 1; }
    printf -v "${name}_pid" %s "$pid"
    printf -v "${name}_port" %s "$port"
    printf -v "${name}_metrics" %s "$metrics"
}

wait_link_up() {  # $1: metrics port; up to 5 s for the instance's Redis link
    local m
    for _ in $(seq 100); do
        m=$(curl -s --max-time 1 "http://127.0.0.1:$1/metrics" || true)
        if [[ $'\n'$m$'\n' = *$'\nwsrelay_cluster_link_up 1\n'* ]]; then return 0; fi
        sleep 0.05
    done
    echo "cluster_bench.sh: the Redis link did not come up" >&2
    exit 1
}

snapshot() {  # $1: file prefix; the counters of the instances and of Redis
    [[ -n $A_pid ]] && curl -s --max-time 2 "http://127.0.0.1:$A_metrics/metrics" >"$1.A.prom"
    curl -s --max-time 2 "http://127.0.0.1:$B_metrics/metrics" >"$1.B.prom"
    [[ -n $redis_pid ]] && redis-cli -p "$redis_port" INFO commandstats >"$1.redis.txt"
    return 0
}

# One run of one row on fresh processes; files $work/<row>.<run>.{json,before.*,after.*}.
run_one() {  # $1: row, $2: run, rest: wsrelay-bench arguments before the URL
    local row=$1 run=$2 mode=${1%_rate}
    shift 2
    A_pid='' redis_pid=''
    local args=("$@" --json --quiet --warmup "$WARMUP" -t "$DURATION" -c "$SUBSCRIBERS" -s "$SIZE")
    if [[ $mode = off ]]; then
        start_wsrelay B "$B_CPU" ""
        args+=(--server-pid "$B_pid" --cpu-pid "B=$B_pid")
    else
        start_redis "$REDIS_CPU"
        start_wsrelay A "$A_CPU" "$redis_port"
        start_wsrelay B "$B_CPU" "$redis_port"
        wait_link_up "$A_metrics"
        wait_link_up "$B_metrics"
        args+=(--server-pid "$B_pid" --cpu-pid "B=$B_pid" --cpu-pid "A=$A_pid" --cpu-pid "redis=$redis_pid")
        [[ $mode = cross ]] && args+=(--publisher-url "ws://127.0.0.1:$A_port$ROOM")
    fi
    local out=$work/$row.$run
    snapshot "$out.before"
    echo "  $row run $run: wsrelay-bench ${args[*]} ws://127.0.0.1:$B_port$ROOM" >&2
    load_start "$B_pid" ${A_pid:+"$A_pid"} ${redis_pid:+"$redis_pid"}
    if ! timeout "$RUN_TIMEOUT" taskset -c "$BENCH_CPU" "$bench" "${args[@]}" "ws://127.0.0.1:$B_port$ROOM" \
            >"$out.json" 2>"$work/bench.log"; then
        echo "cluster_bench.sh: run failed ($row $run):" >&2
        cat "$work/bench.log" >&2
    fi
    load_end "$out.load"
    snapshot "$out.after"
    stop_all
}

row() {  # $1: row name, rest: wsrelay-bench arguments
    local name=$1
    shift
    if [[ -n $ONLY && " $ONLY " != *" $name "* ]]; then return; fi
    for run in $(seq "$RUNS"); do run_one "$name" "$run" "$@"; done
}

# How many PUBLISH/s one Redis core carries: redis-benchmark PUBLISHes what an instance publishes
# for $5 messages of SIZE bytes in a loop turn (an envelope: "WSR1", the node id, then opcode,
# length and payload per message; the bytes' values do not matter to Redis) to a channel with $2
# subscribers.
capacity() {  # $1: index, $2: subscribers, $3: redis-benchmark options, $4: PUBLISH commands, $5: messages
    local fanout=$2 bench_args=$3 count=$4 messages=${5:-1} channel=wsrelay:room:$ROOM node_id payload
    local out=$work/capacity.$1
    node_id="$(hostname):$$"
    payload=$(head -c $((4 + 1 + ${#node_id} + messages * (1 + 4 + SIZE))) /dev/zero | tr '\0' x)
    redis_pid=''
    start_redis "$B_CPU"
    local sinks=()
    for i in $(seq "$fanout"); do
        taskset -c "$BENCH_CPU" /usr/bin/python3 "$here/redis_sink.py" "$redis_port" "$channel" >"$out.sink$i" &
        sinks+=($!)
    done
    # Every sink subscribed before the first PUBLISH.
    for _ in $(seq 100); do
        [[ $(redis-cli -p "$redis_port" PUBSUB NUMSUB "$channel" | tail -1) = "$fanout" ]] && break
        sleep 0.05
    done
    local c0 c1 t0 t1
    c0=$(cpu_ticks "$redis_pid")
    t0=$(date +%s%N)
    echo "  capacity, $fanout subscribers: redis-benchmark $bench_args -n $count PUBLISH $channel <${#payload} bytes>" >&2
    # bench_args is a list of options: word splitting is intended.
    # shellcheck disable=SC2086
    if ! timeout 60 taskset -c "$BENCH_CPU" "$REDIS_BENCHMARK" -p "$redis_port" $bench_args -n "$count" -q \
            PUBLISH "$channel" "$payload" >"$out.bench" 2>&1; then
        echo "cluster_bench.sh: redis-benchmark failed or timed out:" >&2
        cat "$out.bench" >&2
    fi
    t1=$(date +%s%N)
    c1=$(cpu_ticks "$redis_pid")
    sleep 0.2  # the sinks read the tail
    kill "${sinks[@]}" 2>/dev/null || true
    wait "${sinks[@]}" 2>/dev/null || true
    redis-cli -p "$redis_port" INFO commandstats >"$out.redis.txt"
    printf '{"fanout":%s,"options":"%s","messages":%s,"channel":"%s","payload_bytes":%s,"seconds":%s,"redis_cpu_s":%s,"clk_tck":%s,"sink_bytes":[%s]}\n' \
        "$fanout" "$bench_args" "$messages" "$channel" "${#payload}" "$(awk "BEGIN { printf \"%.6f\", ($t1 - $t0) / 1e9 }")" \
        "$(awk "BEGIN { printf \"%.6f\", ($c1 - $c0) / $(getconf CLK_TCK) }")" "$(getconf CLK_TCK)" \
        "$(cat "$out".sink* | paste -sd, -)" >"$out.json"
    stop_all
}

start=$(date +%s)
echo "cluster bench: B on CPU $B_CPU; A, redis-server and wsrelay-bench on CPUs $A_CPU/$REDIS_CPU/$BENCH_CPU; median of $RUNS runs of ${DURATION}s (+${WARMUP}s warm-up)" >&2
row off broadcast -w "$WINDOW"
row on broadcast -w "$WINDOW"
row cross broadcast -w "$WINDOW"
row off_rate broadcast -r "$RATE" -w 1000
row on_rate broadcast -r "$RATE" -w 1000
row cross_rate broadcast -r "$RATE" -w 1000
if [[ -z $ONLY || " $ONLY " = *" capacity "* ]]; then
    IFS=';' read -ra entries <<<"$CAPACITY"
    for i in "${!entries[@]}"; do
        IFS=',' read -r n opts count messages <<<"${entries[$i]}"
        capacity "$i" "$n" "$opts" "$count" "${messages:-1}"
    done
fi
echo "cluster bench took $(( $(date +%s) - start )) s" >&2

/usr/bin/python3 "$here/cluster_table.py" "$work" --rate "$RATE" --size "$SIZE" --subscribers "$SUBSCRIBERS" \
    --machine "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, Linux $(uname -r), $("$REDIS_SERVER" --version | awk '{print $1, $2, $3}')" \
    --params "B on CPU $B_CPU; A, redis-server and wsrelay-bench on CPU $BENCH_CPU (taskset); median of $RUNS runs; ${DURATION} s measured after ${WARMUP} s warm-up; $SIZE-byte messages; window $WINDOW; fixed rate $RATE msg/s"
if [[ -n ${KEEP:-} ]]; then echo "results kept in $work" >&2; fi
