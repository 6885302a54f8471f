#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Profiles wsrelay under one wsrelay-bench scenario with `perf record` (or callgrind), the server
# pinned to one CPU and the generator to the other, like run_suite.sh.
#
# Usage: tests/perf/profile.sh BUILD_DIR SCENARIO [wsrelay-bench options...]
#   e.g. tests/perf/profile.sh build-prof echo -c 100 -d 8 -s 32
#        tests/perf/profile.sh build-prof broadcast -c 1000 -w 32 -s 32
# Build BUILD_DIR with symbols and frame pointers for readable call graphs:
#   cmake -S . -B build-prof -G Ninja -DCMAKE_BUILD_TYPE=Release -DWSRELAY_TESTS=OFF \
#         -DCMAKE_CXX_FLAGS="-g -fno-omit-frame-pointer" && ninja -C build-prof
# Environment: TOOL [perf], callgrind, or syscalls (counts per syscall, EAGAIN results apart,
#   with perf stat's tracepoints); SECONDS_PROFILED [8]; TLS [unset: ws; set: wss];
#   RAW [unset; set: profile wsrelay-raw-ceiling instead, for comparison]; SERVER_CPU [0]; BENCH_CPU [1]; OUT [/tmp/wsrelay-profile]: perf.data / callgrind.out, reports.
# perf samples the cpu-clock software event (works in VMs without hardware counters), with DWARF
# call graphs so that frames inside libc and the kernel entry are attributed to their callers.
set -euo pipefail

[[ $# -ge 2 ]] || { sed -n '3,16p' "$0" >&2; exit 2; }
build=$1
shift
TOOL=${TOOL:-perf}
SECONDS_PROFILED=${SECONDS_PROFILED:-8}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
OUT=${OUT:-/tmp/wsrelay-profile}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scheme=ws
tls=false
if [[ -n ${TLS:-} ]]; then
    scheme=wss
    tls=true
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
fi
cat >"$OUT/wsrelay.toml" <<EOF
[server]
log_level = "warning"
[[listen]]
address = "127.0.0.1:$port"
tls = $tls
[limits]
max_connections = 1000000
max_connections_per_ip = 0
message_rate = 0
send_queue_bytes = 67108864
EOF
[[ $tls = true ]] && printf '[tls]\ncertificate = "%s"\nprivate_key = "%s"\n' "$OUT/cert.pem" "$OUT/key.pem" >>"$OUT/wsrelay.toml"

server_cmd=("$build/src/wsrelay" --config "$OUT/wsrelay.toml")
if [[ -n ${RAW:-} ]]; then
    scheme=tcp
    server_cmd=("$build/src/bench/wsrelay-raw-ceiling" --listen "127.0.0.1:$port")
fi
if [[ $TOOL = callgrind ]]; then
    # Callgrind runs the server ~50x slower: the generator then measures little, but the
    # instruction counts per function are exact.
    taskset -c "$SERVER_CPU" valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
        --instr-atstart=no "${server_cmd[@]}" 2>"$OUT/valgrind.log" &
else
    taskset -c "$SERVER_CPU" "${server_cmd[@]}" >/dev/null &
fi
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

duration=$((SECONDS_PROFILED + 4))
extra=()
[[ $tls = true ]] && extra=(--insecure)
taskset -c "$BENCH_CPU" "$build/src/bench/wsrelay-bench" "$@" "${extra[@]}" -t "$duration" --warmup 1 -q \
    --setup-timeout 120 -p "$server" "$scheme://127.0.0.1:$port/profile" >"$OUT/bench.txt" &
bench=$!
sleep 3  # setup and warm-up
if [[ $TOOL = callgrind ]]; then
    # Instrument only the measured seconds, then dump exactly those (callgrind.out.1).
    rm -f "$OUT"/callgrind.out*
    callgrind_control -i on "$server" >/dev/null
    callgrind_control -z "$server" >/dev/null
    sleep "$SECONDS_PROFILED"
    callgrind_control -d "$server" >/dev/null
    callgrind_control -i off "$server" >/dev/null
    wait "$bench" || true
    kill "$server"; wait "$server" 2>/dev/null || true
    dump=$(ls -t "$OUT"/callgrind.out.* | head -1)
    { callgrind_annotate --inclusive=no "$dump" | head -45
      callgrind_annotate --inclusive=yes "$dump" | head -45; } 2>/dev/null >"$OUT/report.txt"
elif [[ $TOOL = syscalls ]]; then
    perf stat -x, -o "$OUT/syscalls.csv" -p "$server" \
        -e raw_syscalls:sys_enter -e syscalls:sys_enter_recvfrom -e syscalls:sys_enter_sendmsg \
        -e syscalls:sys_enter_epoll_wait -e syscalls:sys_enter_read -e syscalls:sys_enter_write \
        -e syscalls:sys_exit_recvfrom --filter 'ret == -11' -e syscalls:sys_exit_sendmsg --filter 'ret == -11' \
        -e syscalls:sys_exit_read --filter 'ret == -11' \
        -- sleep "$SECONDS_PROFILED"
    wait "$bench" || true
    # Per message: the bench's rate over the same seconds (its measured interval covers them).
    rate=$(sed -n 's/^ *\(messages\|deliveries\) *[0-9,]* = \([0-9,]*\)\/s.*/\2/p' "$OUT/bench.txt" | tr -d ,)
    awk -F, -v n="$((rate * SECONDS_PROFILED))" -v s="$SECONDS_PROFILED" '
        $3 ~ /sys_/ { name = $3; if (name ~ /sys_exit/) name = name " = EAGAIN";
                      printf "%-44s %12d  %8.0f/s  %.3f per message\n", name, $1, $1 / s, n ? $1 / n : 0 }' \
        "$OUT/syscalls.csv" >"$OUT/report.txt"
else
    perf record -e cpu-clock -F 2000 --call-graph dwarf,16384 -p "$server" -o "$OUT/perf.data" \
        -- sleep "$SECONDS_PROFILED" 2>"$OUT/perf-record.log"
    wait "$bench" || true
    perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio -g none --percent-limit 0.5 \
        2>/dev/null >"$OUT/report.txt"
fi
cat "$OUT/bench.txt"
echo "report: $OUT/report.txt"
head -70 "$OUT/report.txt"
