#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# What [auth] costs per WebSocket handshake: wsrelay-bench's connect scenario (each connection
# upgraded, then closed with a close handshake) into an open room without a token, beside token
# rooms entered with an HS256, ES256, RS256 (2048-bit) and EdDSA token in the URL (?token=...), for
# the README. The server is pinned to one CPU and the generator to the other, like run_suite.sh;
# server CPU per handshake comes from --server-pid (schedstat).
#
# Usage: tests/perf/auth_bench.sh [BUILD_DIR]    (default: build-rel, a Release build)
# Needs /usr/bin/python3 with python3-jwt and python3-cryptography (the tokens and keys), taskset.
# Environment: RUNS [3]  DURATION [5]  WARMUP [1]  CONNECTIONS [16] (handshakes under way at once)
#   SERVER_CPU [0]  BENCH_CPU [1]
# Output: a line per run on stderr; the medians as a Markdown table on stdout. Bounded: 5 rows of
# RUNS runs of DURATION + WARMUP + setup; each cut off by `timeout`.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
CONNECTIONS=${CONNECTIONS:-16}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
wsrelay=$build/src/wsrelay
bench=$build/src/bench/wsrelay-bench
for b in "$wsrelay" "$bench"; do
    [[ -x $b ]] || { echo "$script_name: $b not found; build first (see run_suite.sh)" >&2; exit 2; }
done
py=/usr/bin/python3
work=$(mktemp -d /tmp/wsrelay-auth-bench.XXXXXX)
pid=
cleanup() {
    if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Keys, and one token per algorithm naming every room; valid for an hour.
$py - "$work" <<'EOF'
import json, os, sys, time
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
work = sys.argv[1]
secret = os.urandom(32).hex()
open(os.path.join(work, "hs256.secret"), "w").write(secret + "\n")
keys = {"ES256": ec.generate_private_key(ec.SECP256R1()), "RS256": rsa.generate_private_key(65537, 2048),
        "EdDSA": ed25519.Ed25519PrivateKey.generate()}
with open(os.path.join(work, "keys.pem"), "wb") as f:
    for k in keys.values():
        f.write(k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
claims = {"sub": "bench", "rooms": ["/*"], "exp": int(time.time()) + 3600}
tokens = {"HS256": jwt.encode(claims, secret, algorithm="HS256")}
for alg, k in keys.items():
    tokens[alg] = jwt.encode(claims, k, algorithm=alg)
json.dump(tokens, open(os.path.join(work, "tokens.json"), "w"))
EOF

run_row() {  # $1: row name, $2: path (with ?token= for the token rooms)
    local name=$1 path=$2 run port
    for run in $(seq "$RUNS"); do
        port=$(free_port)
        { bench_config "$port"; cat <<TOML; } >"$work/wsrelay.toml"
[auth]
hmac_secret_file = "$work/hs256.secret"
public_key_file = "$work/keys.pem"
[[room]]
path = "/private"
auth = "token"
TOML
        taskset -c "$SERVER_CPU" "$wsrelay" --config "$work/wsrelay.toml" >>"$work/server.log" 2>&1 &
        pid=$!
        wait_port "$port" "$pid" || { echo "$script_name: wsrelay did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
        timeout $((DURATION + WARMUP + 60)) taskset -c "$BENCH_CPU" "$bench" connect -c "$CONNECTIONS" -t "${DURATION}s" \
            --warmup "${WARMUP}s" -q --json --server-pid "$pid" "ws://127.0.0.1:$port$path" >"$work/$name.$run.json" 2>/dev/null
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        pid=
        $py - "$work/$name.$run.json" "$name" "$run" >&2 <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("  %-6s run %s: %.0f handshakes/s, server %.1f µs CPU per handshake, p50 %.0f µs" % (
    sys.argv[2], sys.argv[3], r["msgs_per_s"], r["server_cpu_us_per_msg"], r["latency_p50_us"]))
PY
    done
}

echo "auth bench: server on CPU $SERVER_CPU, wsrelay-bench on CPU $BENCH_CPU; $RUNS runs of ${DURATION}s after ${WARMUP}s" >&2
run_row open "/lobby"
for alg in HS256 ES256 RS256 EdDSA; do
    run_row "$alg" "/private?token=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/tokens.json" "$alg")"
done

$py - "$work" "$RUNS" "$CONNECTIONS" <<'EOF'
import json, statistics, sys
work, runs, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [("open", "open room, no token"), ("HS256", "token room, HS256"), ("ES256", "token room, ES256 (P-256)"),
        ("RS256", "token room, RS256 (2048-bit)"), ("EdDSA", "token room, EdDSA (Ed25519)")]
res = {k: [json.load(open("%s/%s.%d.json" % (work, k, i))) for i in range(1, runs + 1)] for k, _ in rows}
med = lambda k, f: statistics.median(r[f] for r in res[k])
base = med("open", "server_cpu_us_per_msg")
print("| connect, %s at once, closed with a close handshake | handshakes/s | server CPU per handshake | the token's share |" % conns)
print("|---|---:|---:|---:|")
for k, label in rows:
    cpu = med(k, "server_cpu_us_per_msg")
    share = "—" if k == "open" else "%.1f µs" % (cpu - base)
    print("| %s | %.1f k | %.1f µs | %s |" % (label, med(k, "msgs_per_s") / 1000, cpu, share))
EOF
