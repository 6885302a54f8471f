#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The package's end-to-end checks, run as root inside a booted Debian 12 container by
packaging/e2e.sh (which copies this file, tests/e2e/wsclient.py and the .deb next to each other).

The six checks of issue 10, then three that prove the rest of the packaging promises:
  1. `apt install ./wsrelay_*.deb` works; wsrelay.socket is enabled, active and listening on 80 and
     443 (systemd holds the sockets); wsrelay.service is not running yet.
  2. A message relays over ws://127.0.0.1/ and wss://127.0.0.1/ (the snakeoil certificate) in one
     room, both ways; the first connection started wsrelay.service.
  3. `systemctl status wsrelay` shows the STATUS= line; `journalctl -u wsrelay` has the connect and
     close lines, with their journal fields.
  4. An edited limit + `systemctl reload wsrelay` applies (a message over the new limit gets 1009)
     with the same MainPID and a client connected across the reload still relaying, with no kill
     binary in the container (procps is not installed: ExecReload= uses sh's built-in kill); a
     broken edit + reload fails, leaves the service running on the previous configuration and logs
     the error with file, line and key.
  5. `systemctl stop wsrelay` sends a connected client close 1001; the socket stays; the next
     connection starts the service again.
  6. `apt purge wsrelay` leaves nothing behind: no package file, no /etc/wsrelay, no unit, no
     enablement link or deb-systemd-helper state, nothing listening, and no path on the root file
     system that was not there before the install (logs and apt/dpkg databases aside).
  7. Port 80 already in use and the certificate's key missing: `apt install` still succeeds; the
     socket unit fails with the reason in its journal, followed by an err entry (from
     wsrelay-failed@.service) that says what to do: free the port or change ListenStream= and the
     [[listen]] addresses, then restart the socket; once the port is free, a connection makes the
     service fail with the missing file named in its journal, again followed by what to do (fix the
     config or certificate paths, check with --check-config, restart); with the key back, it works.
  8. An upgrade (the same package as version +1) keeps the edited conffile, does not restart the
     socket (it keeps listening), moves the running service to the new binary (its client gets
     1001), and a purge afterwards again leaves nothing behind.
  9. Rooms across instances: with redis-server installed beside wsrelay (its unit running) and
     `[cluster] redis = "redis://127.0.0.1:6379"` added to the conffile, `systemctl restart wsrelay`
     and a second instance (a transient unit with the same conffile, listening on 127.0.0.1:8090)
     both log the link up and say so in STATUS=; a message sent to one instance reaches a member of
     the same room on the other, both ways, exactly once. (Check 8 purged the package: this one
     installs it again, and purges it afterwards.)

 10. Every core: `[server] workers = 2` with the same [cluster] redis, `systemctl restart wsrelay`:
     the main process (MainPID) has two worker processes, the journal says both are ready and that
     the packaged socket is shared by them, STATUS= sums them ("2 of 2 workers: ...", cluster link
     up on both); 20 members of one room all get a message once; `kill -9` of a worker is logged at
     err and the worker replaced (same MainPID, the service active); `systemctl reload` reaches
     both workers; `systemctl stop` sends 1001 to every member and the unit ends inactive, not
     failed.

Prints one line per check and "N passed, N failed"; with -v (or on failure) the evidence follows
each check line, indented. Exit status: 0 all passed, 1 otherwise.
"""

import argparse
import glob
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsclient  # noqa: E402  (tests/e2e/wsclient.py, copied next to this file)

CONF = "/etc/wsrelay/wsrelay.toml"
SNAKEOIL_CERT = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
SNAKEOIL_KEY = "/etc/ssl/private/ssl-cert-snakeoil.key"
E2E_DIR = os.path.dirname(os.path.abspath(__file__))
# Check 9: Debian's redis-server listens there (and on no unix socket unless configured).
REDIS_URL = "redis://127.0.0.1:6379"
SECOND_UNIT = "wsrelay-e2e-second.service"
SECOND_PORT = 8090
# The MESSAGE_ID of wsrelay-failed@.service's "what to do" entries.
HINT_MESSAGE_ID = "22588667e0e94b848d469741571f2375"

# Paths the filesystem comparison of checks 6 and 8 ignores: other mounts (/proc, /run, ...), logs,
# package manager databases and caches, the test's own files, and systemd's timer stamps (the
# container's apt-daily timers may fire during the run).
SNAPSHOT_SKIP = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/log", "/var/cache", "/var/lib/apt",
                 "/var/lib/dpkg", "/var/lib/systemd/timers", E2E_DIR)


class Failure(Exception):
    pass


class Check:
    """One numbered check: runs a function, records pass/fail and the evidence lines it noted."""

    results = []
    verbose = False

    def __init__(self, number, title):
        self.number, self.title, self.notes = number, title, []

    def note(self, line):
        self.notes.append(str(line))

    def run(self, fn):
        t0 = time.monotonic()
        try:
            fn(self)
            ok, why = True, ""
        except Failure as e:
            ok, why = False, str(e)
        except Exception as e:  # a client error, a timeout: a failed check, with the trace as evidence
            ok, why = False, "%s: %s" % (type(e).__name__, e)
            self.notes.extend(traceback.format_exc().rstrip().splitlines())
        dt = time.monotonic() - t0
        line = "%s %s. %s (%.1f s)" % ("PASS" if ok else "FAIL", self.number, self.title, dt)
        if not ok:
            line += " -- " + why
        print(line, flush=True)
        if self.verbose or not ok:
            for n in self.notes:
                for sub in n.splitlines() or [""]:
                    print("      " + sub, flush=True)
        Check.results.append(ok)
        return ok


def expect(cond, why):
    if not cond:
        raise Failure(why)


def tail(text, lines=15):
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(args, check=True, timeout=180):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", SYSTEMD_PAGER="", PAGER="cat",
               SYSTEMD_COLORS="0", LC_ALL="C.UTF-8")
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise Failure("`%s` exited with %d:\n%s" % (" ".join(args), p.returncode,
                                                    tail(p.stdout + p.stderr)))
    return p


def spawn(args):
    """Start a command in the background (its output captured); .communicate() collects it."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", SYSTEMD_PAGER="", LC_ALL="C.UTF-8")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, stdin=subprocess.DEVNULL)


def wait_for(fn, timeout=10.0, interval=0.2):
    """Polls fn until it returns something true (returned) or the time is up (returns the last)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def state(unit):
    return run(["systemctl", "is-active", unit], check=False).stdout.strip()


def prop(unit, name):
    return run(["systemctl", "show", "-P", name, unit]).stdout.strip()


def main_pid():
    return int(prop("wsrelay.service", "MainPID") or 0)


def journal_cursor():
    """Cursor of the newest journal entry: later queries start after it."""
    out = run(["journalctl", "-n", "1", "-o", "json", "--no-pager"]).stdout.strip()
    return json.loads(out.splitlines()[-1])["__CURSOR"] if out else None


def journal(unit, after=None):
    args = ["journalctl", "-u", unit, "-o", "json", "--no-pager"]
    if after:
        args.append("--after-cursor=" + after)
    entries = []
    for line in run(args).stdout.splitlines():
        e = json.loads(line)
        if isinstance(e.get("MESSAGE"), list):  # journald stores non-UTF-8 messages as bytes
            e["MESSAGE"] = bytes(e["MESSAGE"]).decode("utf-8", "replace")
        entries.append(e)
    return entries


def hint_entries(unit, after, pattern, timeout=10.0):
    """The err entries wsrelay-failed@.service wrote about `unit` after the cursor (shown by
    `journalctl -u unit`) whose MESSAGE matches; waits for the first one."""
    return [e for e in journal_wait(unit, after, pattern, timeout) or []
            if e.get("MESSAGE_ID") == HINT_MESSAGE_ID and e.get("PRIORITY") == "3"
            and e.get("OBJECT_SYSTEMD_UNIT") == unit]


def journal_wait(unit, after, pattern, timeout=10.0):
    """Journal entries of `unit` after the cursor whose MESSAGE matches; waits for the first one."""
    rx = re.compile(pattern)
    return wait_for(lambda: [e for e in journal(unit, after) if rx.search(e.get("MESSAGE", ""))],
                    timeout)


def listeners():
    """{port: ss line} of the listening TCP sockets."""
    found = {}
    for line in run(["ss", "-Hltnp"]).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            port = fields[3].rsplit(":", 1)[-1]
            if port.isdigit():
                found.setdefault(int(port), line)
    return found


def tls_context():
    # Trust exactly the packaged default certificate: the wss listener must present it.
    ctx = ssl.create_default_context(cafile=SNAKEOIL_CERT)
    ctx.check_hostname = False  # the snakeoil certificate names the host that generated it
    return ctx


def connect(room, tls=False, timeout=15.0):
    """A WebSocket client on ws://127.0.0.1:80 or wss://127.0.0.1:443. The timeout covers a
    socket-activated start of the service."""
    return wsclient.WSClient("127.0.0.1", 443 if tls else 80, room, timeout=timeout,
                             ssl_context=tls_context() if tls else None)


def relay(sender, receivers, payload):
    """Sender sends; every receiver (the sender too when listed) gets exactly that message."""
    if isinstance(payload, str):
        sender.send_text(payload)
    else:
        sender.send_binary(payload)
    for r in receivers:
        m = r.recv_data()
        got = m.text if isinstance(payload, str) else bytes(m.data)
        expect(got == payload, "relayed %r, a member received %r" % (payload[:40], got[:40]))


def set_limit(text, key, value):
    """The config text with `key = ...` (first occurrence, at the start of a line) set to value."""
    new, n = re.subn(r"(?m)^%s = .*$" % re.escape(key), "%s = %s" % (key, value), text, count=1)
    expect(n == 1, "%s: no line '%s = ...' to edit" % (CONF, key))
    return new


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def stop_and_expect_1001(clients, command, timeout=60):
    """Runs `command` (stop, or an upgrade) in the background while the clients wait for the
    server's close frame and answer it, as a well-behaved client does (so the server need not wait
    for its shutdown timeout). Returns (the command's CompletedProcess-like result, close codes)."""
    p = spawn(command)
    codes = []
    for c in clients:
        code, _, _ = c.expect_close(timeout=timeout)
        codes.append(code)
        try:
            c.answer_close(code if code else 1000)
            c.wait_eof(timeout=5)
        except wsclient.WSError:
            pass
        c.abort()
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out, codes


def snapshot():
    """Every path on the root file system (not crossing mounts) but the skipped ones."""
    paths = set()
    root_dev = os.lstat("/").st_dev
    for dirpath, dirnames, filenames in os.walk("/"):
        keep = []
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if any(p == s or p.startswith(s + "/") for s in SNAPSHOT_SKIP):
                continue
            try:
                if os.lstat(p).st_dev != root_dev:
                    continue
            except FileNotFoundError:
                continue
            paths.add(p + "/")
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            paths.add(os.path.join(dirpath, f))
    return paths


# ------------------------------------------------------------------------------------------------
class State:
    deb = None
    before = None       # snapshot() before the first install
    cursor0 = None      # journal cursor before the first install


def check_install(c):
    State.cursor0 = journal_cursor()
    p = run(["apt", "install", "-y", State.deb], timeout=600)
    c.note("$ apt install -y %s\n%s" % (State.deb, tail(p.stdout, 8)))
    c.note("$ systemctl is-enabled/is-active wsrelay.socket: %s/%s" % (
        run(["systemctl", "is-enabled", "wsrelay.socket"], check=False).stdout.strip(), state("wsrelay.socket")))
    expect(run(["systemctl", "is-enabled", "wsrelay.socket"], check=False).stdout.strip() == "enabled",
           "wsrelay.socket is not enabled")
    expect(state("wsrelay.socket") == "active", "wsrelay.socket is %s, not active" % state("wsrelay.socket"))
    ls = listeners()
    for port in (80, 443):
        expect(port in ls, "nothing listens on port %d; listening: %s" % (port, sorted(ls)))
        expect('"systemd",pid=1,' in ls[port], "port %d is not held by systemd: %s" % (port, ls[port]))
        c.note("$ ss -ltnp: " + " ".join(ls[port].split()))
    s = state("wsrelay.service")
    c.note("$ systemctl is-active wsrelay.service: " + s)
    expect(s == "inactive", "wsrelay.service is %s before any connection (want inactive)" % s)


def check_relay(c):
    a = connect("/e2e")
    b = connect("/e2e", tls=True)
    c.note("ws://127.0.0.1/e2e and wss://127.0.0.1/e2e (%s, %s) connected" % (
        b.sock.version(), b.sock.cipher()[0]))
    relay(a, [a, b], "hello from ws")
    relay(b, [a, b], b"\x00\x01binary from wss\xff")
    c.note("text ws->ws+wss and binary wss->ws+wss relayed")
    s = state("wsrelay.service")
    c.note("wsrelay.service after the first connection: %s (MainPID %d)" % (s, main_pid()))
    expect(s == "active", "wsrelay.service is %s after a connection (want active)" % s)
    for cl in (a, b):
        code, _ = cl.close(1000, b"bye")
        expect(code == 1000, "close answered with %r, want 1000" % code)


def check_status_and_journal(c):
    p = run(["systemctl", "status", "wsrelay", "--no-pager", "-n", "0"])
    status = [l.strip() for l in p.stdout.splitlines() if l.strip().startswith("Status:")]
    c.note("$ systemctl status wsrelay: " + (status[0] if status else "(no Status: line)"))
    expect(status and re.search(r'Status: "\d+ WebSocket connections', status[0]),
           "systemctl status shows no wsrelay STATUS= line:\n" + tail(p.stdout))
    connects = journal_wait("wsrelay", State.cursor0, r"conn=\d+ peer=127\.0\.0\.1:\d+ room=/e2e connected")
    closes = journal_wait("wsrelay", State.cursor0, r"conn=\d+ peer=127\.0\.0\.1:\d+ room=/e2e closed code=1000")
    for e in (connects or [])[:2] + (closes or [])[:2]:
        c.note("$ journalctl -u wsrelay: %s   [PRIORITY=%s WSRELAY_CONN=%s WSRELAY_PEER=%s WSRELAY_ROOM=%s%s]" % (
            e["MESSAGE"], e.get("PRIORITY"), e.get("WSRELAY_CONN"), e.get("WSRELAY_PEER"), e.get("WSRELAY_ROOM"),
            " WSRELAY_CLOSE_CODE=%s" % e["WSRELAY_CLOSE_CODE"] if "WSRELAY_CLOSE_CODE" in e else ""))
    expect(connects and len(connects) >= 2, "journal: want 2 'connected' lines for room /e2e, got %d" % len(connects or []))
    expect(closes and len(closes) >= 2, "journal: want 2 'closed code=1000' lines for room /e2e, got %d" % len(closes or []))
    for e in connects + closes:
        expect(e.get("WSRELAY_ROOM") == "/e2e" and e.get("WSRELAY_CONN") and
               e.get("WSRELAY_PEER", "").startswith("127.0.0.1:"),
               "journal entry without its WSRELAY_* fields: %r" % e.get("MESSAGE"))
        expect(e.get("PRIORITY") == "6", "connect/close logged at priority %s, want 6 (info)" % e.get("PRIORITY"))
    for e in closes:
        expect(e.get("WSRELAY_CLOSE_CODE") == "1000", "close entry without WSRELAY_CLOSE_CODE=1000: %r" % e["MESSAGE"])


def check_reload(c):
    original = read(CONF)
    try:
        pid = main_pid()
        expect(pid > 0, "wsrelay.service has no MainPID")
        kill = shutil.which("kill", path="/usr/sbin:/usr/bin:/sbin:/bin")
        c.note("kill binary in the container: %s" % (kill or "none (procps is not installed)"))
        expect(kill is None, "%s exists (procps is installed): this check cannot show that the reload "
                             "works without it" % kill)
        keeper = connect("/e2e-reload")
        relay(keeper, [keeper], "before the reload")

        write(CONF, set_limit(original, "max_message_bytes", "4096"))
        run(["systemctl", "reload", "wsrelay"], timeout=60)
        c.note("limits.max_message_bytes = 4096; `systemctl reload wsrelay` succeeded; MainPID %d -> %d" % (pid, main_pid()))
        expect(main_pid() == pid, "MainPID changed on reload: %d -> %d" % (pid, main_pid()))
        relay(keeper, [keeper], "after the reload")
        c.note("the client connected across the reload still relays")
        big = connect("/e2e-reload")
        big.send_text("x" * 5000)
        code, reason, _ = big.expect_close()
        c.note("a new client's 5000-byte message: close %s %r" % (code, reason))
        expect(code == 1009, "a 5000-byte message over the reloaded 4096 limit got close %r, want 1009" % code)
        big.abort()

        cursor = journal_cursor()
        write(CONF, set_limit(original, "max_message_bytes", '"lots"'))
        p = run(["systemctl", "reload", "wsrelay"], check=False, timeout=60)
        c.note("limits.max_message_bytes = \"lots\"; `systemctl reload wsrelay` exited %d" % p.returncode)
        expect(p.returncode != 0, "reload of a broken config succeeded")
        expect(state("wsrelay.service") == "active", "wsrelay.service is %s after a broken reload" % state("wsrelay.service"))
        expect(main_pid() == pid, "MainPID changed after a broken reload: %d -> %d" % (pid, main_pid()))
        errors = journal_wait("wsrelay", cursor, r"wsrelay\.toml:\d+:\d+: limits\.max_message_bytes")
        for e in errors or []:
            c.note("$ journalctl -u wsrelay: <%s> %s" % (e.get("PRIORITY"), e["MESSAGE"]))
        expect(errors, "no journal line names the file, line and key of the broken edit")
        # Still the last good configuration: 4096 bytes, not the broken file, not the default.
        relay(keeper, [keeper], "y" * 3000)
        big = connect("/e2e-reload")
        big.send_text("x" * 5000)
        code, _, _ = big.expect_close()
        expect(code == 1009, "after the broken reload a 5000-byte message got %r, want 1009 (4096 still applies)" % code)
        big.abort()
        relay(keeper, [keeper], "still here")
        c.note("after it: same MainPID, the 4096 limit still applies, the connected client still relays")
        keeper.close()
    finally:
        write(CONF, original)
        run(["systemctl", "reload", "wsrelay"], check=False, timeout=60)


def check_stop(c):
    pid = main_pid()
    a = connect("/e2e-stop")
    b = connect("/e2e-stop", tls=True)
    relay(a, [a, b], "before stop")
    t0 = time.monotonic()
    rc, out, codes = stop_and_expect_1001([a, b], ["systemctl", "stop", "wsrelay"])
    c.note("`systemctl stop wsrelay` exited %d after %.1f s; the ws and wss clients got close %s" % (
        rc, time.monotonic() - t0, codes))
    expect(rc == 0, "systemctl stop wsrelay failed: " + tail(out))
    expect(codes == [1001, 1001], "clients got close codes %s, want [1001, 1001]" % codes)
    expect(state("wsrelay.service") == "inactive", "wsrelay.service is %s after stop" % state("wsrelay.service"))
    expect(state("wsrelay.socket") == "active", "wsrelay.socket is %s after stopping the service" % state("wsrelay.socket"))
    g = connect("/e2e-stop")
    relay(g, [g], "after restart")
    new_pid = main_pid()
    c.note("the next connection relays; wsrelay.service %s, MainPID %d -> %d" % (state("wsrelay.service"), pid, new_pid))
    expect(state("wsrelay.service") == "active" and new_pid not in (0, pid), "the service did not start again")
    g.close()


def leftovers(c, package_paths):
    """Everything the purge should have removed and did not (empty list: clean)."""
    bad = []
    if run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "wsrelay"], check=False).stdout.strip():
        bad.append("dpkg still knows wsrelay: " + run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "wsrelay"], check=False).stdout)
    for p in package_paths:
        if os.path.lexists(p) and not os.path.isdir(p):
            bad.append("package file left: " + p)
    for p in ("/etc/wsrelay", "/usr/share/wsrelay"):
        if os.path.lexists(p):
            bad.append("left: " + p)
    for pattern in ("/etc/systemd/system/**/wsrelay*", "/lib/systemd/system/**/wsrelay*",
                    "/var/lib/systemd/deb-systemd-helper-enabled/**/*wsrelay*",
                    "/var/lib/systemd/deb-systemd-helper-masked/*wsrelay*", "/var/lib/private/wsrelay*",
                    "/var/lib/wsrelay*", "/run/wsrelay*"):
        bad.extend("left: " + p for p in glob.glob(pattern, recursive=True))
    for unit in ("wsrelay.socket", "wsrelay.service", "wsrelay-failed@wsrelay.socket.service"):
        load = prop(unit, "LoadState")
        if load != "not-found":
            bad.append("systemd still has %s (LoadState=%s, ActiveState=%s)" % (unit, load, prop(unit, "ActiveState")))
    ls = listeners()
    bad.extend("still listening: " + ls[p] for p in (80, 443) if p in ls)
    after = snapshot()
    bad.extend("new path: " + p for p in sorted(after - State.before))
    bad.extend("path gone: " + p for p in sorted(State.before - after))
    return bad


def check_purge(c):
    files = run(["dpkg", "-L", "wsrelay"]).stdout.split()
    p = run(["apt", "purge", "-y", "wsrelay"], timeout=300)
    c.note("$ apt purge -y wsrelay\n" + tail(p.stdout, 6))
    bad = leftovers(c, files)
    for b in bad:
        c.note(b)
    expect(not bad, "%d thing(s) left behind (listed below)" % len(bad) if bad else "")
    c.note("nothing left: %d package paths gone, no unit, link or state file, ports 80/443 closed, "
           "the root file system's %d paths as before the install" % (len(files), len(State.before)))


def check_failures_do_not_fail_install(c):
    os.rename(SNAKEOIL_KEY, SNAKEOIL_KEY + ".e2e-moved")
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # earlier checks' TIME_WAITs
        squatter.bind(("0.0.0.0", 80))
        squatter.listen(1)
        cursor = journal_cursor()
        p = run(["apt", "install", "-y", State.deb], check=False, timeout=600)
        c.note("port 80 taken, %s missing: `apt install` exited %d" % (SNAKEOIL_KEY, p.returncode))
        expect(p.returncode == 0, "apt install failed:\n" + tail(p.stdout + p.stderr))
        s = state("wsrelay.socket")
        c.note("wsrelay.socket: " + s)
        expect(s == "failed", "wsrelay.socket is %s with port 80 taken (want failed)" % s)
        why = journal_wait("wsrelay.socket", cursor, r"[Aa]ddress already in use")
        # Then wsrelay-failed@wsrelay.socket.service's entry: what to do.
        advice = hint_entries("wsrelay.socket", cursor,
                              r"^wsrelay\.socket failed \(result: resources\): a port wsrelay\.socket listens on "
                              r"is taken.*Free it.*`systemctl edit wsrelay\.socket`.*ListenStream=.*"
                              r"\[\[listen\]\] addresses in /etc/wsrelay/wsrelay\.toml.*"
                              r"`systemctl restart wsrelay\.socket`")
        for e in journal("wsrelay.socket", cursor):
            c.note("$ journalctl -u wsrelay.socket: <%s> %s" % (e.get("PRIORITY"), e["MESSAGE"]))
        expect(why, "the journal of wsrelay.socket does not say the address is in use")
        expect(advice, "the journal of wsrelay.socket does not say what to do about the port in use "
                       "(an err entry from wsrelay-failed@wsrelay.socket.service)")
        order = [e["__CURSOR"] for e in journal("wsrelay.socket", cursor)]
        expect(order.index(advice[0]["__CURSOR"]) > order.index(why[0]["__CURSOR"]),
               "the advice comes before the error in `journalctl -u wsrelay.socket`")
    finally:
        squatter.close()

    try:
        cursor = journal_cursor()
        run(["systemctl", "restart", "wsrelay.socket"])
        c.note("port 80 freed; `systemctl restart wsrelay.socket`: " + state("wsrelay.socket"))
        try:
            cl = connect("/e2e-fail", timeout=10)
            cl.abort()
            raise Failure("a client connected although the certificate's key is missing")
        except (wsclient.WSError, OSError) as e:
            c.note("a client's connection: %s: %s" % (type(e).__name__, e))
        named = journal_wait("wsrelay.service", cursor, re.escape(SNAKEOIL_KEY))
        # systemd starts the OnFailure= hint once the service stays failed: after Restart= gave up
        # (5 starts within 10 s), so wait longer than for a log line.
        advice = hint_entries("wsrelay.service", cursor,
                              r"^wsrelay\.service failed \(result: [a-z-]+\): read `journalctl -u wsrelay` "
                              r"for the error above, fix /etc/wsrelay/wsrelay\.toml \(check it with "
                              r"`wsrelay --check-config`\) or the certificate paths.*`systemctl restart wsrelay`",
                              timeout=40)
        for e in journal("wsrelay.service", cursor):
            if e.get("PRIORITY", "6") <= "4" or SNAKEOIL_KEY in e["MESSAGE"]:
                c.note("$ journalctl -u wsrelay: <%s> %s" % (e.get("PRIORITY"), e["MESSAGE"]))
        expect(named, "the journal of wsrelay.service does not name the missing key")
        expect(advice, "the journal of wsrelay.service does not say what to do after the failed start "
                       "(an err entry from wsrelay-failed@wsrelay.service.service)")
        # The socket stops with it (service-start-limit-hit): its own advice points at the service.
        sock_advice = hint_entries("wsrelay.socket", cursor, r"^wsrelay\.socket failed \(result: (?!resources)"
                                   r"[a-z-]+\): wsrelay\.service kept failing.*`journalctl -u wsrelay`")
        for e in journal("wsrelay.socket", cursor):
            if e.get("PRIORITY", "6") <= "4":
                c.note("$ journalctl -u wsrelay.socket: <%s> %s" % (e.get("PRIORITY"), e["MESSAGE"]))
        expect(sock_advice or state("wsrelay.socket") == "active",
               "wsrelay.socket is %s without an entry saying wsrelay.service kept failing" % state("wsrelay.socket"))
        c.note("wsrelay.service: %s, wsrelay.socket: %s" % (state("wsrelay.service"), state("wsrelay.socket")))
    finally:
        os.rename(SNAKEOIL_KEY + ".e2e-moved", SNAKEOIL_KEY)

    # What an operator then does: fix, reset the failure, start the socket.
    run(["systemctl", "reset-failed", "wsrelay.service", "wsrelay.socket"], check=False)
    run(["systemctl", "start", "wsrelay.socket"])
    cl = connect("/e2e-fail")
    relay(cl, [cl], "fixed")
    cl.close()
    c.note("key restored, `systemctl reset-failed wsrelay.service wsrelay.socket; systemctl start wsrelay.socket`: relays again")


def check_upgrade(c):
    # Version +1 of the same package: repacked with only the Debian revision raised.
    new_deb = re.sub(r"_([^_]+)-(\d+)_", lambda m: "_%s-%d_" % (m.group(1), int(m.group(2)) + 1),
                     os.path.basename(State.deb))
    new_deb = os.path.join(E2E_DIR, new_deb)
    tree = "/var/tmp/wsrelay-e2e-upgrade"
    shutil.rmtree(tree, ignore_errors=True)
    run(["dpkg-deb", "-R", State.deb, tree])
    control = read(tree + "/DEBIAN/control")
    old_version = re.search(r"(?m)^Version: (\S+)$", control).group(1)
    upstream, rev = old_version.rsplit("-", 1)
    version = "%s-%d" % (upstream, int(rev) + 1)
    write(tree + "/DEBIAN/control", control.replace("Version: " + old_version, "Version: " + version))
    run(["dpkg-deb", "-b", tree, new_deb])
    shutil.rmtree(tree)

    edited = set_limit(read(CONF), "max_members", "100")
    write(CONF, edited)
    run(["systemctl", "reload", "wsrelay"], check=False)
    cl = connect("/e2e-upgrade")
    relay(cl, [cl], "before the upgrade")
    pid = main_pid()
    socket_since = prop("wsrelay.socket", "ActiveEnterTimestampMonotonic")
    rc, out, codes = stop_and_expect_1001([cl], ["apt", "install", "-y", new_deb], timeout=300)
    c.note("edited %s (rooms.max_members = 100); a client connected; `apt install ./%s` exited %d; "
           "the client got close %s" % (CONF, os.path.basename(new_deb), rc, codes))
    expect(rc == 0, "the upgrade failed:\n" + tail(out))
    installed = run(["dpkg-query", "-W", "-f", "${Version}", "wsrelay"]).stdout
    expect(installed == version, "installed version is %s, want %s" % (installed, version))
    expect(read(CONF) == edited, "the upgrade did not keep the edited " + CONF)
    strays = glob.glob(CONF + ".dpkg-*") + glob.glob(CONF + ".ucf-*")
    expect(not strays, "the upgrade left %s" % strays)
    c.note("%s kept as edited, no .dpkg-* files" % CONF)
    expect(codes == [1001], "the connected client got %s during the upgrade, want [1001] (service restarted)" % codes)
    expect(prop("wsrelay.socket", "ActiveEnterTimestampMonotonic") == socket_since and state("wsrelay.socket") == "active",
           "wsrelay.socket was restarted by the upgrade")
    new_pid = main_pid()
    c.note("wsrelay.socket not restarted; wsrelay.service %s, MainPID %d -> %d" % (state("wsrelay.service"), pid, new_pid))
    expect(state("wsrelay.service") == "active" and new_pid not in (0, pid),
           "the running service was not restarted onto the new binary")
    cl = connect("/e2e-upgrade")
    relay(cl, [cl], "after the upgrade")
    cl.close()

    files = run(["dpkg", "-L", "wsrelay"]).stdout.split()
    run(["apt", "purge", "-y", "wsrelay"], timeout=300)
    os.unlink(new_deb)
    bad = leftovers(c, files)
    for b in bad:
        c.note(b)
    expect(not bad, "%d thing(s) left behind after purging the upgraded package" % len(bad))
    c.note("purged after the upgrade: nothing left")


def redis_cli(*args):
    return run(["redis-cli", "-h", "127.0.0.1", "-p", "6379"] + list(args), check=False).stdout.strip()


def expect_nothing_more(clients, wait=0.5):
    """Each client has no further message: a message must arrive once, not again via Redis."""
    for cl in clients:
        try:
            m = cl.recv_message(timeout=wait)
        except wsclient.Timeout:
            continue
        raise Failure("a member of the room got one more message: %r" % (m,))


def ensure_installed(c):
    """Installs the package if an earlier check purged it; returns whether it was installed."""
    installed = run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "wsrelay"], check=False).stdout.startswith("ii")
    if not installed:
        p = run(["apt", "install", "-y", State.deb], timeout=600)
        c.note("$ apt install -y %s (purged by an earlier check): %s" % (State.deb, tail(p.stdout, 1)))
    return installed


def check_cluster(c):
    installed = ensure_installed(c)
    original = read(CONF)
    room = "/e2e-cluster"
    channel = "wsrelay:room:" + room  # cluster.channel_prefix's default, then room:<path>
    units = ("wsrelay.service", SECOND_UNIT)
    clients = []
    try:
        # Installed with the container (e2e.sh adds it to the cached root): the package's
        # redis-server.service is enabled, so the boot started it.
        c.note("redis-server.service: %s, %s" % (
            run(["systemctl", "is-enabled", "redis-server"], check=False).stdout.strip(), state("redis-server")))
        if state("redis-server") != "active":
            run(["systemctl", "start", "redis-server"], timeout=60)
            c.note("$ systemctl start redis-server: " + state("redis-server"))
        pong = wait_for(lambda: redis_cli("ping") == "PONG", timeout=15)
        expect(pong, "redis-server does not answer PING on 127.0.0.1:6379 (state: %s)" % state("redis-server"))
        version = re.search(r"(?m)^redis_version:(\S+)", redis_cli("info", "server"))
        c.note("$ redis-cli -h 127.0.0.1 ping: PONG (redis %s)" % (version.group(1) if version else "?"))

        cursor = journal_cursor()
        write(CONF, original.rstrip("\n") + '\n\n[cluster]\nredis = "%s"\n' % REDIS_URL)
        # Not a reload: a running instance keeps its link (a changed redis URL needs a restart).
        run(["systemctl", "restart", "wsrelay"], timeout=60)
        # The second instance: the same conffile, its own listener instead of the packaged ones
        # (--listen replaces them all, so it needs no certificate), sandboxed as a transient user.
        # Type=notify: systemd-run returns once it sent READY=1, or fails with it.
        p = run(["systemd-run", "--unit", SECOND_UNIT, "-p", "Type=notify", "-p", "DynamicUser=yes",
                 "/usr/sbin/wsrelay", "--config", CONF, "--listen", "127.0.0.1:%d" % SECOND_PORT], timeout=60)
        c.note("[cluster] redis = %s added to %s; `systemctl restart wsrelay`; `systemd-run --unit %s "
               "-p Type=notify -p DynamicUser=yes /usr/sbin/wsrelay --config %s --listen 127.0.0.1:%d`: %s" % (
                   REDIS_URL, CONF, SECOND_UNIT, CONF, SECOND_PORT, p.stderr.strip()))
        for unit in units:
            up = journal_wait(unit, cursor, r"^cluster: redis link to 127\.0\.0\.1:6379 up \(", timeout=20)
            for e in journal(unit, cursor):
                if "cluster" in e.get("MESSAGE", ""):
                    c.note("$ journalctl -u %s: <%s> %s" % (unit.replace(".service", ""), e.get("PRIORITY"), e["MESSAGE"]))
            expect(up, "%s: no 'cluster: redis link to 127.0.0.1:6379 up' in its journal (%s)" % (unit, state(unit)))
            expect(up[0].get("PRIORITY") == "5", "the link-up line has priority %s, want 5 (notice)" % up[0].get("PRIORITY"))
        # STATUS= is refreshed every 5 s: the first one, at READY=1, may predate the link.
        wait_for(lambda: all("cluster link up" in prop(u, "StatusText") for u in units), timeout=15)
        for unit in units:
            status = prop(unit, "StatusText")
            c.note("%s STATUS=%s" % (unit, status))
            expect("cluster link up" in status, "%s: STATUS= does not say the cluster link is up: %r" % (unit, status))

        a = connect(room)
        clients.append(a)
        b = wsclient.WSClient("127.0.0.1", SECOND_PORT, room, timeout=15)
        clients.append(b)
        # Each instance subscribes the room's channel once the room has a local member; until both
        # subscriptions reach Redis, a publication would find no other instance.
        def numsub():  # redis-cli prints the channel, then its count
            count = redis_cli("pubsub", "numsub", channel).splitlines()[-1:]
            return int(count[0]) if count and count[0].isdigit() else 0

        subscribed = wait_for(lambda: numsub() == 2, timeout=10)
        c.note("ws://127.0.0.1%s (wsrelay.service) and ws://127.0.0.1:%d%s (%s) connected; "
               "`redis-cli pubsub numsub %s`: %d" % (room, SECOND_PORT, room, SECOND_UNIT, channel, numsub()))
        expect(subscribed, "Redis channel %s has %d subscribers, want 2 (one per instance)" % (channel, numsub()))
        relay(a, [a, b], "from the packaged instance")
        relay(b, [a, b], b"\x00\x01binary from the second instance\xff")
        expect_nothing_more([a, b])
        c.note("text packaged->second and binary second->packaged relayed (each sender got its echo), once each")
        for cl in (a, b):
            code, _ = cl.close(1000, b"bye")
            expect(code == 1000, "close answered with %r, want 1000" % code)
    finally:
        for cl in clients:
            cl.abort()
        run(["systemctl", "stop", SECOND_UNIT], check=False, timeout=60)
        run(["systemctl", "reset-failed", SECOND_UNIT], check=False)
        write(CONF, original)
        if installed:
            run(["systemctl", "restart", "wsrelay"], check=False, timeout=60)  # without [cluster] again
        else:
            run(["apt", "purge", "-y", "wsrelay"], check=False, timeout=300)


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return sorted(out)


def check_workers(c):
    installed = ensure_installed(c)
    original = read(CONF)
    room = "/e2e-workers"
    clients = []
    try:
        if state("redis-server") != "active":
            run(["systemctl", "start", "redis-server"], timeout=60)
        expect(wait_for(lambda: redis_cli("ping") == "PONG", timeout=15), "redis-server does not answer PING")
        expect(re.search(r"(?m)^workers = 1$", original), "the packaged conffile has no 'workers = 1'")
        cursor = journal_cursor()
        write(CONF, re.sub(r"(?m)^workers = 1$", "workers = 2", original).rstrip("\n") +
              '\n\n[cluster]\nredis = "%s"\n' % REDIS_URL)
        run(["systemctl", "restart", "wsrelay"], timeout=60)
        main = main_pid()
        workers = wait_for(lambda: len(children(main)) == 2 and children(main), timeout=15)
        c.note("workers = 2 and [cluster] redis = %s in %s; `systemctl restart wsrelay`: MainPID %d, workers %s" % (
            REDIS_URL, CONF, main, children(main)))
        expect(workers, "MainPID %d has %d child processes, want 2 workers" % (main, len(children(main))))
        for pattern in (r"^all 2 workers are ready$", r"^listener .*: one socket shared by the 2 workers \("):
            found = journal_wait("wsrelay.service", cursor, pattern, timeout=20)
            expect(found, "no %r in the journal of wsrelay.service" % pattern)
            c.note("$ journalctl -u wsrelay: " + found[0]["MESSAGE"])
        up = wait_for(lambda: "cluster link up (2 of 2 workers)" in prop("wsrelay.service", "StatusText"), timeout=15)
        status = prop("wsrelay.service", "StatusText")
        c.note("STATUS=" + status)
        expect(up and status.startswith("2 of 2 workers: "), "STATUS= is not the workers' sum: %r" % status)

        clients += [connect(room) for _ in range(20)]

        def numsub():  # each worker with a member of the room subscribes its channel once
            count = redis_cli("pubsub", "numsub", "wsrelay:room:" + room).splitlines()[-1:]
            return int(count[0]) if count and count[0].isdigit() else 0

        # Both workers' subscriptions, unless one worker took every connection (the shared
        # socket wakes one idle worker per burst): then one.
        wait_for(lambda: numsub() == 2, timeout=5)
        expect(numsub() >= 1, "nobody subscribed wsrelay:room:%s" % room)
        relay(clients[0], clients, "to every member, whichever worker holds it")
        expect_nothing_more(clients)
        c.note("20 members of %s on %d worker(s) (subscriptions on Redis): the message reached each once" % (
            room, numsub()))

        cursor = journal_cursor()
        victim = workers[0]
        os.kill(victim, 9)
        line = journal_wait("wsrelay.service", cursor, r"^worker \d \(pid %d\) was killed by signal 9" % victim, timeout=20)
        expect(line and line[0].get("PRIORITY") == "3", "no err line for the killed worker: %r" % line)
        c.note("$ kill -9 %d; journalctl -u wsrelay: <%s> %s" % (victim, line[0].get("PRIORITY"), line[0]["MESSAGE"]))
        replaced = wait_for(lambda: len(children(main)) == 2 and victim not in children(main), timeout=15)
        expect(replaced and main_pid() == main and state("wsrelay") == "active",
               "after kill -9: MainPID %d (was %d), workers %s, state %s" % (
                   main_pid(), main, children(main), state("wsrelay")))
        c.note("replaced: workers %s, MainPID %d, %s" % (children(main), main, state("wsrelay")))

        cursor = journal_cursor()
        run(["systemctl", "reload", "wsrelay"], timeout=60)
        reloaded = journal_wait("wsrelay.service", cursor, r"^every worker reloaded its configuration$", timeout=30)
        expect(reloaded, "no 'every worker reloaded its configuration' after systemctl reload")
        c.note("$ systemctl reload wsrelay: " + reloaded[0]["MESSAGE"])

        fresh = [connect(room) for _ in range(4)]
        rc, out, codes = stop_and_expect_1001(fresh, ["systemctl", "stop", "wsrelay"])
        c.note("$ systemctl stop wsrelay: exit %d, close codes %s, wsrelay.service %s (Result=%s)" % (
            rc, codes, state("wsrelay"), prop("wsrelay.service", "Result")))
        expect(rc == 0 and codes == [1001] * len(fresh), "stop: exit %d, close codes %s" % (rc, codes))
        expect(state("wsrelay") == "inactive" and prop("wsrelay.service", "Result") == "success",
               "after stop: %s, Result=%s" % (state("wsrelay"), prop("wsrelay.service", "Result")))
    finally:
        for cl in clients:
            cl.abort()
        write(CONF, original)
        if installed:
            run(["systemctl", "restart", "wsrelay"], check=False, timeout=60)
        else:
            run(["apt", "purge", "-y", "wsrelay"], check=False, timeout=300)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deb", required=True, help="the wsrelay_<version>_<arch>.deb to test")
    ap.add_argument("-v", "--verbose", action="store_true", help="show every check's evidence")
    args = ap.parse_args()
    Check.verbose = args.verbose or os.environ.get("WSRELAY_E2E_VERBOSE") == "1"
    State.deb = os.path.abspath(args.deb)
    State.before = snapshot()

    Check(1, "apt install: socket enabled, active, listening on 80 and 443; service not started").run(check_install)
    Check(2, "a message relays over ws:// and wss:// in one room; the service started").run(check_relay)
    Check(3, "systemctl status shows STATUS=; the journal has connect/close lines with fields").run(check_status_and_journal)
    Check(4, "reload applies an edited limit, same MainPID, client kept; a broken edit is refused and logged").run(check_reload)
    Check(5, "systemctl stop sends 1001; the next connection starts the service again").run(check_stop)
    Check(6, "apt purge leaves nothing behind").run(check_purge)
    Check(7, "port in use / missing key: apt install succeeds, the units fail, the journal says why and what to do").run(
        check_failures_do_not_fail_install)
    Check(8, "upgrade keeps the edited conffile and the socket, restarts the service; purge is clean").run(check_upgrade)
    Check(9, "[cluster] redis: a message sent to one instance reaches a member on a second one, both ways").run(check_cluster)
    Check(10, "workers = 2: two supervised workers, STATUS= summed, kill -9 replaced, reload, stop 1001").run(check_workers)

    passed = sum(Check.results)
    failed = len(Check.results) - passed
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
