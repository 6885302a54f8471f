#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench.smoke: wsrelay-bench runs every scenario, briefly, against the real servers.

Starts the built wsrelay the way systemd would (a listening socket on 127.0.0.1:0 passed as fd 3,
LISTEN_FDS=1), a second one with a TLS listener (a throwaway self-signed certificate, when the
openssl command exists), and wsrelay-raw-ceiling on a port of its choosing; when redis-server is
installed, also two instances sharing rooms through it ([cluster]). Then runs each scenario for
1 s with tiny sizes and asserts that wsrelay-bench exits 0 and prints a JSON line with nonzero
counts. Standard library only.

Usage: smoke.py --wsrelay PATH --bench PATH --raw-server PATH
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

CONFIG = """[server]
log_level = "warning"
healthz = false
{listen}
[limits]
max_connections = 100000
max_connections_per_ip = 0
message_rate = 0
send_queue_bytes = 16777216
{tls}
{extra}
"""

RUN_TIMEOUT_S = 60  # one scenario: 1 s measured, setup and drain are bounded by the bench too


def start_wsrelay(binary, workdir, name, tls=None, extra=""):
    """wsrelay socket-activated on 127.0.0.1:<free port>; returns (Popen, port). `extra` is
    appended to its configuration."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    port = ls.getsockname()[1]
    listen = ""
    tls_table = ""
    if tls:
        # The passed socket is matched to this [[listen]] entry by its address.
        listen = '[[listen]]\naddress = "127.0.0.1:%d"\ntls = true\n' % port
        tls_table = '[tls]\ncertificate = "%s"\nprivate_key = "%s"\n' % tls
    config = os.path.join(workdir, name + ".toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(listen=listen, tls=tls_table, extra=extra))
    log = open(os.path.join(workdir, name + ".log"), "wb")
    # fd 3 in the daemon: the socket arrives as the shell's stdin, which dups it to 3.
    script = 'exec 3<&0 0</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@"'
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_") and k != "NOTIFY_SOCKET"}
    proc = subprocess.Popen(["/bin/sh", "-c", script, binary, "--config", config], stdin=ls.fileno(),
                            stdout=log, stderr=log, env=env, close_fds=True)
    ls.close()
    return proc, port


def start_raw(binary):
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError("wsrelay-raw-ceiling did not start: %r" % line)
    return proc, int(line.rsplit(":", 1)[1])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def redis_clients(port):
    """Connections Redis has (CLIENT LIST, this one included), or 0 while it does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n")
            data = b""
            while True:  # one bulk string: "$<length>\r\n<length bytes>\r\n"
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                header, sep, body = data.partition(b"\r\n")
                if sep and header.startswith(b"$") and len(body) >= int(header[1:]) + 2:
                    break
            return data.count(b"id=")
    except (OSError, ValueError):
        return 0


def start_cluster(redis_server, wsrelay, workdir):
    """redis-server and two wsrelay instances sharing rooms through it; returns the processes and
    the two instances' ports, or None when the links do not come up within 10 s."""
    rport = free_port()
    redis = subprocess.Popen([redis_server, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [redis]
    extra = '[cluster]\nredis = "redis://127.0.0.1:%d"\n' % rport
    a, a_port = start_wsrelay(wsrelay, workdir, "cluster-a", extra=extra)
    b, b_port = start_wsrelay(wsrelay, workdir, "cluster-b", extra=extra)
    procs += [a, b]
    # Each instance opens a publishing and a subscribing connection; the link counts as up once
    # Redis answered a PING on both, a moment later.
    deadline = time.monotonic() + 10
    while redis_clients(rport) < 1 + 4:
        if time.monotonic() > deadline:
            return procs, None
        time.sleep(0.05)
    time.sleep(0.3)
    return procs, (redis, a, a_port, b, b_port)


def make_cert(workdir):
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
    return cert, key


def check(bench, name, args, pid, want, ratio=None):
    """Runs one scenario; returns an error string or None. `ratio`: (key, over_key, low, high), the
    figure r[key] / r[over_key] must lie within [low, high]."""
    cmd = [bench] + args + ["--json", "--quiet", "--duration", "1", "--warmup", "0.2",
                            "--setup-timeout", "10", "--server-pid", str(pid)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "%s: no exit within %d s" % (name, RUN_TIMEOUT_S)
    sys.stdout.write("--- %s: %s\n%s" % (name, " ".join(cmd), p.stderr))
    if p.returncode != 0:
        return "%s: exit status %d" % (name, p.returncode)
    lines = p.stdout.strip().splitlines()
    if len(lines) != 1:
        return "%s: expected one JSON line on stdout, got %r" % (name, p.stdout)
    r = json.loads(lines[0])
    if not r.get("completed"):
        return "%s: run not completed: %s" % (name, r.get("error"))
    for key in want:
        if not r.get(key):
            return "%s: %s is %r, expected nonzero" % (name, key, r.get(key))
    if ratio:
        key, over, low, high = ratio
        got = r[key] / r[over] if r.get(over) else None
        if got is None or not low <= got <= high:
            return "%s: %s / %s is %r, expected %g to %g" % (name, key, over, got, low, high)
    return None


# Usage errors of the room options: exit status 2, and a message that says what is wrong.
USAGE_ERRORS = [
    (["idle", "-c", "5", "--rooms", "6"], "--rooms must not exceed the connections (5)"),
    (["echo", "--rooms", "0"], "bad value for --rooms"),
    (["idle", "--rate", "5"], "--rate is for the broadcast and echo scenarios"),
    (["connect", "--rate", "5"], "--rate is for the broadcast and echo scenarios"),
    (["broadcast", "--rooms", "2", "--publisher-url", "ws://127.0.0.1:1/p"],
     "--publisher-url names one room: it cannot be combined with --rooms"),
]


def check_usage(bench):
    """Returns the usage errors that were not refused as they should be."""
    failures = []
    for args, message in USAGE_ERRORS:
        p = subprocess.run([bench] + args + ["ws://127.0.0.1:1/smoke"], capture_output=True, text=True, timeout=10)
        if p.returncode != 2 or ("wsrelay-bench: " + message) not in p.stderr:
            failures.append("usage %s: exit %d, stderr %r" % (" ".join(args), p.returncode, p.stderr[:200]))
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wsrelay", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--raw-server", required=True)
    a = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="wsrelay-bench-smoke-")
    procs = []
    failures = check_usage(a.bench)
    try:
        ws, ws_port = start_wsrelay(a.wsrelay, workdir, "ws")
        procs.append(ws)
        raw, raw_port = start_raw(a.raw_server)
        procs.append(raw)
        ws_url = "ws://127.0.0.1:%d/smoke" % ws_port
        raw_url = "tcp://127.0.0.1:%d/smoke" % raw_port
        busy = ["messages", "msgs_per_s", "latency_samples"]
        runs = [
            ("ws echo", ["echo", "-c", "4", "-d", "2", "-s", "16", ws_url], ws.pid, busy),
            ("ws echo text", ["echo", "-c", "2", "-d", "2", "-s", "40", "--text", ws_url], ws.pid, busy),
            ("ws broadcast", ["broadcast", "-c", "8", "-w", "4", "-s", "16", ws_url], ws.pid, busy),
            ("ws broadcast rate", ["broadcast", "-c", "4", "-r", "200", "-s", "16", ws_url], ws.pid,
             ["messages", "published"]),
            # --publisher-url naming the same instance: acknowledged by the last subscriber.
            ("ws broadcast publisher url", ["broadcast", "-c", "8", "-w", "4", "-s", "16", "--publisher-url", ws_url,
                                            "--cpu-pid", "self=%d" % ws.pid, ws_url], ws.pid, busy + ["cpu_pids"]),
            ("ws connect", ["connect", "-c", "2", ws_url], ws.pid, ["messages", "closes"]),
            ("ws idle", ["idle", "-c", "20", ws_url], ws.pid, ["connections_open", "server_rss_after_bytes"]),
            # Many small rooms: rooms of 4 members (every message reaches 4), a publisher per room,
            # a room per idle connection, a new room per handshake.
            ("ws echo rooms", ["echo", "-c", "12", "--rooms", "3", "-d", "2", "-s", "16", ws_url], ws.pid, busy),
            ("ws chatter", ["echo", "-c", "12", "--rooms", "3", "-r", "300", "-s", "16", ws_url], ws.pid,
             busy + ["published"], ("messages", "published", 3.5, 4.5)),
            ("ws broadcast rooms", ["broadcast", "-c", "9", "--rooms", "3", "-w", "4", "-s", "16", ws_url], ws.pid,
             busy + ["published"], ("messages", "published", 2.5, 3.5)),
            ("ws broadcast rooms rate", ["broadcast", "-c", "6", "--rooms", "3", "-r", "300", "-s", "16", ws_url],
             ws.pid, ["messages", "published"], ("messages", "published", 1.5, 2.5)),
            ("ws idle rooms", ["idle", "-c", "20", "--rooms", "20", ws_url], ws.pid,
             ["connections_open", "server_rss_after_bytes", "server_rss_drained_bytes"]),
            ("ws connect rooms", ["connect", "-c", "2", "--rooms", "1000000", ws_url], ws.pid,
             ["messages", "closes", "server_rss_drained_bytes"]),
            ("raw echo", ["echo", "-c", "4", "-d", "2", "-s", "16", raw_url], raw.pid, busy),
            ("raw chatter", ["echo", "-c", "8", "--rooms", "2", "-r", "300", "-s", "16", raw_url], raw.pid,
             busy + ["published"], ("messages", "published", 3.5, 4.5)),
            ("raw broadcast", ["broadcast", "-c", "8", "-w", "4", "-s", "16", raw_url], raw.pid, busy),
            ("raw idle", ["idle", "-c", "20", raw_url], raw.pid, ["connections_open", "server_rss_after_bytes"]),
        ]
        redis_server = shutil.which("redis-server")
        if redis_server:
            cluster_procs, cluster = start_cluster(redis_server, a.wsrelay, workdir)
            procs += cluster_procs
            if cluster is None:
                failures.append("cluster: the instances did not connect to redis-server within 10 s")
            else:
                redis, ca, ca_port, cb, cb_port = cluster
                # Publisher on instance A, subscribers on instance B, one room through Redis.
                runs.append(("ws broadcast across instances",
                             ["broadcast", "-c", "8", "-w", "4", "-s", "16",
                              "--publisher-url", "ws://127.0.0.1:%d/smoke" % ca_port,
                              "--cpu-pid", "A=%d" % ca.pid, "--cpu-pid", "redis=%d" % redis.pid,
                              "ws://127.0.0.1:%d/smoke" % cb_port], cb.pid, busy + ["cpu_pids"]))
        else:
            print("no redis-server: the run across instances is skipped")
        if shutil.which("openssl"):
            wss, wss_port = start_wsrelay(a.wsrelay, workdir, "wss", tls=make_cert(workdir))
            procs.append(wss)
            wss_url = "wss://127.0.0.1:%d/smoke" % wss_port
            cafile = ["--cafile", os.path.join(workdir, "cert.pem")]
            runs += [
                ("wss echo", ["echo", "-c", "4", "-d", "2", "-s", "16"] + cafile + [wss_url], wss.pid, busy),
                ("wss broadcast", ["broadcast", "-c", "8", "-w", "4", "-s", "16", "--insecure", wss_url],
                 wss.pid, busy),
                ("wss connect", ["connect", "-c", "2", "--insecure", wss_url], wss.pid, ["messages", "closes"]),
            ]
        else:
            print("no openssl command: wss runs skipped")
        for name, args, pid, want, *ratio in runs:
            err = check(a.bench, name, args, pid, want, *ratio)
            if err:
                failures.append(err)
        for p in procs:
            if p.poll() is not None:
                failures.append("a server exited during the runs (status %s)" % p.returncode)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not failures:
            shutil.rmtree(workdir, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    if failures:
        print("server logs kept in", workdir)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
