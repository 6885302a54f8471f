#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The performance suite of the README's table: wsrelay (ws and wss) and the raw-TCP ceiling server
# (wsrelay-raw-ceiling) under the same wsrelay-bench scenarios, the server pinned to one CPU and
# the load generator to another, each figure the median of RUNS runs, each run on a fresh server.
#
# Usage: tests/perf/run_suite.sh [BUILD_DIR]        (default: build-rel, a Release build)
#   cmake -S . -B build-rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DWSRELAY_TESTS=OFF
#   ninja -C build-rel && tests/perf/run_suite.sh build-rel
#
# Environment (defaults in brackets):
#   RUNS [3]  DURATION [5] (seconds measured)  WARMUP [1]  WINDOW [32] (broadcast)
#   RATE [100] (messages/s of the fixed-rate broadcast, whose latency compares servers at one load)
#   SUBSCRIBERS [1000]  IDLE [10000] (idle connections)  SERVER_CPU [0]  BENCH_CPU [1]
#   Many small rooms: ROOMS [1000] rooms of MEMBERS [10] chatting at CHATTER_RATE [10000] msg/s in
#     all (each member once a second), beside one big room of ROOMS x MEMBERS subscribers at
#     CHATTER_RATE / ROOMS msg/s: the same connections and deliveries per second
#   ONLY ["": all; else a space-separated subset of echo32 echo1k broadcast broadcast_rate idle
#     idle_rooms chatter broadcast_big connect churn]
#   NO_TLS [unset: the wss rows need the openssl command]  KEEP [unset: delete the results dir]
#   PEER_WS, PEER_WSS [unset]: command lines of another WebSocket server to measure side by side,
#     with {port} (and {cert} {key} for wss) filled in; it must listen on 127.0.0.1:{port}, join
#     each connection to the room named by its URL path and relay every message to the whole room,
#     sender included (as wsrelay does). PEER_NAME [peer] labels its columns. The project ships
#     no such server: build your own (the README's Performance section says how ours was made).
# Output: the detailed per-scenario figures, then the README table (Markdown), on stdout; the
# JSON line of every run stays in the results directory named at the end when KEEP is set.
# Bounded: 66 runs (108 with a peer server) of DURATION + WARMUP + setup (+ drain, at most 2 s,
# + 2 s for the RSS after it in idle and connect runs), about 12 minutes with the defaults; each run
# is also cut off by `timeout`.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
WINDOW=${WINDOW:-32}
RATE=${RATE:-100}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
IDLE=${IDLE:-10000}
ROOMS=${ROOMS:-1000}
MEMBERS=${MEMBERS:-10}
CHATTER_RATE=${CHATTER_RATE:-10000}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
ONLY=${ONLY:-}
RUN_TIMEOUT=$((DURATION + WARMUP + 90))  # setup (up to 60 s for 10k TLS handshakes) + drain + RSS

wsrelay=$build/src/wsrelay
bench=$build/src/bench/wsrelay-bench
raw=$build/src/bench/wsrelay-raw-ceiling
for b in "$wsrelay" "$bench" "$raw"; do
    [[ -x $b ]] || { echo "run_suite.sh: $b not found; build first (see the header of this script)" >&2; exit 2; }
done
command -v taskset >/dev/null || { echo "run_suite.sh: taskset (util-linux) is needed" >&2; exit 2; }
if [[ $(nproc) -lt 2 ]]; then echo "run_suite.sh: needs 2 CPUs (server and generator pinned apart)" >&2; exit 2; fi
tls=1
if [[ -n ${NO_TLS:-} ]] || ! command -v openssl >/dev/null; then tls=0; fi
PEER_WS=${PEER_WS:-}
PEER_WSS=${PEER_WSS:-}
PEER_NAME=${PEER_NAME:-peer}
peer_kinds=""
[[ -n $PEER_WS ]] && peer_kinds+=" peer"
[[ -n $PEER_WSS && $tls = 1 ]] && peer_kinds+=" peerwss"

# Both processes hold IDLE sockets plus a few: raise the descriptor limit as far as allowed.
chatters=$((ROOMS * MEMBERS))
most=$((IDLE > chatters ? IDLE : chatters))
raise_fd_limit $((most + SUBSCRIBERS + 256))

work=$(mktemp -d /tmp/wsrelay-perf.XXXXXX)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [[ -z ${KEEP:-} ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $tls = 1 ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
fi

# wsrelay's configuration for benchmarking (lib.sh's bench_config), over TLS for wss.
write_config() {  # $1: file, $2: port, $3: tls (true/false)
    { bench_config "$2"; echo "tls = $3"; } >"$1"
    if [[ $3 = true ]]; then
        printf '[tls]\ncertificate = "%s"\nprivate_key = "%s"\n' "$work/cert.pem" "$work/key.pem" >>"$1"
    fi
}

start_server() {  # $1: ws | wss | raw; sets server_pid and url_base
    local port
    port=$(free_port)
    case $1 in
        raw)
            taskset -c "$SERVER_CPU" "$raw" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
            url_base="tcp://127.0.0.1:$port" ;;
        ws | wss)
            local t=false
            [[ $1 = wss ]] && t=true
            write_config "$work/$1.toml" "$port" "$t"
            taskset -c "$SERVER_CPU" "$wsrelay" --config "$work/$1.toml" >"$work/server.log" 2>&1 &
            url_base="$1://127.0.0.1:$port" ;;
        peer | peerwss)
            local template=$PEER_WS scheme=ws
            [[ $1 = peerwss ]] && template=$PEER_WSS scheme=wss
            local cmd=${template//\{port\}/$port}
            cmd=${cmd//\{cert\}/$work/cert.pem}
            cmd=${cmd//\{key\}/$work/key.pem}
            # The template is the user's own command line: word splitting is intended.
            # shellcheck disable=SC2086
            taskset -c "$SERVER_CPU" $cmd >"$work/server.log" 2>&1 &
            url_base="$scheme://127.0.0.1:$port" ;;
    esac
    server_pid=$!
    wait_port "$port" "$server_pid" || { echo "run_suite.sh: $1 server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# One run of one scenario on a fresh server; the JSON line goes to $work/<name>.<server>.<run>.json.
run_one() {  # $1: name, $2: server kind, $3: run number, rest: wsrelay-bench arguments before URL
    local name=$1 kind=$2 run=$3 path=/$1
    shift 3
    start_server "$kind"
    local extra=()
    [[ $kind = wss || $kind = peerwss ]] && extra=(--cafile "$work/cert.pem")
    local out=$work/$name.$kind.$run.json
    echo "  $name $kind run $run: wsrelay-bench $* ${extra[*]} $url_base$path" >&2
    if ! timeout "$RUN_TIMEOUT" taskset -c "$BENCH_CPU" "$bench" "$@" "${extra[@]}" --json --quiet \
            --warmup "$WARMUP" --server-pid "$server_pid" "$url_base$path" >"$out" 2>"$work/bench.log"; then
        echo "run_suite.sh: run failed ($name $kind $run):" >&2
        cat "$work/bench.log" >&2
    fi
    stop_server
}

scenario() {  # $1: name, $2: server kinds, rest: wsrelay-bench arguments
    local name=$1 kinds=$2
    shift 2
    if [[ -n $ONLY && " $ONLY " != *" $name "* ]]; then return; fi
    for kind in $kinds; do
        [[ $kind = wss && $tls = 0 ]] && continue
        [[ $kind = peer* && " $peer_kinds " != *" $kind "* ]] && continue
        for run in $(seq "$RUNS"); do run_one "$name" "$kind" "$run" "$@"; done
    done
}

start=$(date +%s)
echo "wsrelay performance suite: server on CPU $SERVER_CPU, generator on CPU $BENCH_CPU, median of $RUNS runs of ${DURATION}s (+${WARMUP}s warm-up)" >&2
scenario echo32 "raw ws wss peer peerwss" echo -c 100 -d 8 -s 32 -t "$DURATION"
scenario echo1k "raw ws wss peer peerwss" echo -c 100 -d 8 -s 1024 -t "$DURATION"
scenario broadcast "raw ws wss peer peerwss" broadcast -c "$SUBSCRIBERS" -w "$WINDOW" -s 32 -t "$DURATION"
scenario broadcast_rate "raw ws wss peer peerwss" broadcast -c "$SUBSCRIBERS" -r "$RATE" -w 1000 -s 32 -t "$DURATION"
scenario idle "raw ws peer" idle -c "$IDLE" -t 2 --setup-timeout 60
# Many small rooms: a room per connection; rooms of MEMBERS chatting, beside one big room with the
# same connections and deliveries per second; connections that come and go, in one room and each in
# a room of its own (created on the join, freed on the leave).
scenario idle_rooms "raw ws peer" idle -c "$IDLE" --rooms "$IDLE" -t 2 --setup-timeout 60
scenario chatter "raw ws peer" echo -c "$chatters" --rooms "$ROOMS" -r "$CHATTER_RATE" -s 32 -t "$DURATION" --setup-timeout 60
scenario broadcast_big "raw ws peer" broadcast -c "$chatters" -r $((CHATTER_RATE / ROOMS)) -w 1000 -s 32 -t "$DURATION" --setup-timeout 60
scenario connect "ws peer" connect -c 16 -t "$DURATION"
scenario churn "ws peer" connect -c 16 --rooms 1000000000 -t "$DURATION"
echo "suite took $(( $(date +%s) - start )) s" >&2

/usr/bin/python3 "$here/suite_table.py" "$work" --peer-name "$PEER_NAME" \
    --machine "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, Linux $(uname -r)" \
    --params "server on CPU $SERVER_CPU, wsrelay-bench on CPU $BENCH_CPU (taskset); median of $RUNS runs; ${DURATION} s measured after ${WARMUP} s warm-up; broadcast window $WINDOW; fixed-rate broadcast $RATE msg/s; chatter $ROOMS rooms x $MEMBERS members at $CHATTER_RATE msg/s in all"
if [[ -n ${KEEP:-} ]]; then echo "results kept in $work" >&2; fi
