# SPDX-License-Identifier: Apache-2.0
"""Starts the real wsrelay daemon for end-to-end tests.

The binary comes from $WSRELAY_BIN (CTest passes $<TARGET_FILE:wsrelay>). Each daemon gets its own
temporary directory with a generated wsrelay.toml and a captured stderr. By default it is started
the way systemd starts it: we bind 127.0.0.1:0 and listen ourselves, hand the socket over as fd 3
with LISTEN_FDS=1 and LISTEN_PID set to the daemon's own pid (via `sh -c 'LISTEN_PID=$$ exec ...'`),
so clients can connect at once and there is no port race. `activation=False` starts it with
`--listen 127.0.0.1:PORT` instead and waits until the port accepts connections.
"""

import copy
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import wsclient

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                      "ERROR: UndefinedBehaviorSanitizer", "AddressSanitizer:DEADLYSIGNAL")

# Keys every test config gets unless a test overrides them. (The daemon's own defaults are in
# etc/wsrelay/wsrelay.toml; these only keep test logs useful.)
BASE_CONFIG = {
    "server": {"log_level": "info"},
}


def binary():
    b = os.environ.get("WSRELAY_BIN")
    if not b:
        raise unittest.SkipTest("WSRELAY_BIN is not set (CTest sets it to the built wsrelay)")
    if not os.access(b, os.X_OK):
        raise RuntimeError("WSRELAY_BIN=%r is not an executable file" % b)
    return b


# ---------------------------------------------------------------- TOML writer
def _toml_key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_str(k)


def _toml_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append("\\u%04X" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError("cannot write %r as TOML" % (v,))


def _is_table_array(v):
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(x, dict) for x in v)


def toml_dumps(d):
    """dict -> TOML text. Nested dicts become [tables], lists of dicts [[arrays of tables]].
    Scalars of a table come before its sub-tables (TOML requires it)."""
    lines = []

    def emit(table, prefix):
        for k, v in table.items():
            if not isinstance(v, dict) and not _is_table_array(v):
                lines.append("%s = %s" % (_toml_key(k), _toml_value(v)))
        for k, v in table.items():
            name = prefix + [_toml_key(k)]
            if isinstance(v, dict):
                lines.append("")
                lines.append("[%s]" % ".".join(name))
                emit(v, name)
            elif _is_table_array(v):
                for item in v:
                    lines.append("")
                    lines.append("[[%s]]" % ".".join(name))
                    emit(item, name)

    emit(d, [])
    return "\n".join(lines).lstrip("\n") + "\n"


def merge(base, over):
    """Deep merge of config dicts; `over` wins; a None value deletes the key."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---------------------------------------------------------------- the daemon
class Daemon:
    """One wsrelay process. Use as a context manager or call stop()/kill().

    config: dict merged over BASE_CONFIG (ignored if config_text is given).
    activation: pass a pre-bound listening socket as fd 3 (default) or use --listen.
    """

    def __init__(self, config=None, config_text=None, activation=True, args=(), listen=None,
                 env=None, base=BASE_CONFIG, host="127.0.0.1", wait_ready=True):
        self.bin = binary()
        self.tmp = tempfile.mkdtemp(prefix="wsrelay-e2e-")
        self.config_path = os.path.join(self.tmp, "wsrelay.toml")
        self.config = merge(base, config or {})
        self.write_config(config_text)
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.stdout_path = os.path.join(self.tmp, "stdout.log")
        self.proc = None
        self.host = host
        self.port = None
        self.returncode = None
        self._lsock = None
        # sd_notify: like systemd, we give the daemon a NOTIFY_SOCKET and wait for READY=1, so a
        # test never signals a daemon that has not installed its handlers yet.
        self.notify_path = os.path.join(self.tmp, "notify.sock")
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(self.notify_path)
        self.notifications = []
        self._notify_cursor = 0
        env = dict(env or {})
        env.setdefault("NOTIFY_SOCKET", self.notify_path)
        self._start(activation, list(args), listen, env)
        self._check_stderr_is_ours()
        if wait_ready:
            self.wait_notify("READY=1")

    def _check_stderr_is_ours(self):
        """The process's fd 2 is our stderr.log (inherited through any launcher that execs it):
        every check of the log depends on it, so a mix-up fails here, by name."""
        try:
            target = os.readlink("/proc/%d/fd/2" % self.proc.pid)
        except OSError:
            return      # exited already: wait_notify() or the test reports that
        if target != os.path.realpath(self.stderr_path):
            raise AssertionError("wsrelay's stderr is %r, not %r" % (target, self.stderr_path))

    def poll_notify(self, timeout=0.0):
        """Collect sd_notify datagrams that arrived (waiting up to `timeout` for the first)."""
        got = []
        wait = timeout
        while self._notify is not None:
            r, _, _ = select.select([self._notify], [], [], wait)
            if not r:
                break
            got.append(self._notify.recv(4096).decode("utf-8", "replace"))
            wait = 0
        self.notifications.extend(got)
        return got

    def wait_notify(self, assignment, timeout=10.0):
        """Wait (bounded) until a notification containing the line `assignment` arrives after
        the one the previous wait_notify() matched; returns that message."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll_notify(0.05)
            for n in range(self._notify_cursor, len(self.notifications)):
                if assignment in self.notifications[n].split("\n"):
                    self._notify_cursor = n + 1
                    return self.notifications[n]
            if self.proc.poll() is not None:
                raise RuntimeError("wsrelay exited with %s before sending %s; stderr:\n%s" % (
                    self.proc.returncode, assignment, self.stderr()))
            if time.monotonic() > deadline:
                raise RuntimeError("no %s from wsrelay within %.0fs (got %r); stderr:\n%s" % (
                    assignment, timeout, self.notifications[self._notify_cursor:],
                    self.stderr()))

    def write_config(self, config_text=None):
        text = config_text if config_text is not None else toml_dumps(self.config)
        with open(self.config_path, "w") as f:
            f.write(text)

    def update_config(self, over):
        self.config = merge(self.config, over)
        self.write_config()

    def _env(self, extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")
               and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        env.update(extra or {})
        return env

    def _start(self, activation, args, listen, env):
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        cmd_args = ["--config", self.config_path] + args
        if activation:
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((self.host, 0))
            ls.listen(1024)
            self._lsock = ls
            self.port = ls.getsockname()[1]
            # A config that names the passed socket in [[listen]] (e.g. to give it tls = true)
            # writes its address as "127.0.0.1:{port}"; fill in the port we got.
            if any("{port}" in str(l.get("address", "")) for l in self.config.get("listen", [])):
                for l in self.config["listen"]:
                    l["address"] = str(l.get("address", "")).replace("{port}", str(self.port))
                self.write_config()
            # fd 3 in the daemon: the listening socket arrives as the shell's stdin, the shell dups
            # it to 3 and gives the daemon /dev/null as stdin. (subprocess can only pass fds under
            # their own number; this way no fd of ours is touched and no preexec_fn is needed.)
            # LISTEN_PID=$$ is the shell's pid, which `exec` hands to the daemon.
            script = 'exec 3<&0 0</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@"'
            cmd = ["/bin/sh", "-c", script, self.bin] + cmd_args
            self.proc = subprocess.Popen(cmd, stdin=ls.fileno(), stdout=self._stdout,
                                         stderr=self._stderr, env=self._env(env),
                                         close_fds=True)
            # The daemon owns the socket now. Dropping our copy means a dead daemon refuses
            # connections instead of leaving them hanging in the backlog.
            ls.close()
        else:
            # listen=None: one free port of ours; [] : no --listen (the config's listeners;
            # the caller sets .port and calls wait_listening()); else the given addresses.
            if listen is None:
                self.port = free_port(self.host)
                listen = ["%s:%d" % (self.host, self.port)]
            elif listen:
                m = re.match(r"^\[?([^\]]*)\]?:(\d+)$", listen[0])
                self.host, self.port = m.group(1), int(m.group(2))
            for a in listen:
                cmd_args += ["--listen", a]
            self.proc = subprocess.Popen([self.bin] + cmd_args, stdin=subprocess.DEVNULL,
                                         stdout=self._stdout, stderr=self._stderr,
                                         env=self._env(env), close_fds=True)
            for a in listen:
                m = re.match(r"^\[?([^\]]*)\]?:(\d+)$", a)
                self.wait_listening(host=m.group(1), port=int(m.group(2)))

    def wait_listening(self, timeout=10.0, host=None, port=None):
        """Poll (bounded) until host:port (default: ours) accepts a TCP connection."""
        host = self.host if host is None else host
        port = self.port if port is None else port
        deadline = time.monotonic() + timeout
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("wsrelay exited with %s before listening; stderr:\n%s" % (
                    self.proc.returncode, self.stderr()))
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(1.0)
            try:
                s.connect((host, port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("wsrelay is not listening on %s:%d after %.0fs; stderr:\n%s"
                                       % (host, port, timeout, self.stderr()))
                time.sleep(0.02)
            finally:
                s.close()

    # ---- clients ----
    def client(self, path="/", **kw):
        return wsclient.WSClient(self.host, self.port, path, **kw)

    def raw(self, **kw):
        """A connected TCP client that has not sent anything."""
        return wsclient.WSClient(self.host, self.port, handshake=False, **kw)

    def http(self, request, timeout=5.0):
        """Send one raw request, return the parsed response (the connection is then dropped)."""
        c = self.raw(timeout=timeout)
        try:
            c.send_raw(request if isinstance(request, bytes) else request.encode("latin-1"))
            head = request.split(b" ", 1)[0] == b"HEAD" if isinstance(request, bytes) else \
                request.startswith("HEAD ")
            return wsclient.read_http_response(c, head_request=head, timeout=timeout)
        finally:
            c.abort()

    def get(self, path, headers=None, method="GET", timeout=5.0):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (self.host, self.port)]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        return self.http(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), timeout=timeout)

    def url(self, path="/"):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "ws://%s:%d%s" % (h, self.port, path)

    # ---- process control ----
    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signal the daemon and wait (bounded). Returns its exit code, or None if it hung (then
        it is killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            rc = self.wait(timeout)
            if rc is None:
                self.kill()
                return None
        self.returncode = self.proc.returncode
        self._close_files()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self):
        for f in (getattr(self, "_stderr", None), getattr(self, "_stdout", None)):
            if f is not None and not f.closed:
                f.close()
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None
        if getattr(self, "_notify", None) is not None:
            self._notify.close()
            self._notify = None

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            if getattr(self, "_removed", False):
                return ""       # cleaned up: the log went with the directory
            # Never "no log": a test that looks for a line must not pass or fail on a file that
            # vanished under it.
            raise AssertionError("wsrelay's stderr file %s is gone (its directory %s: %s)" % (
                self.stderr_path, self.tmp,
                os.listdir(self.tmp) if os.path.isdir(self.tmp) else "gone too")) from None

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def sanitizer_report(self):
        text = self.stderr()
        for p in SANITIZER_PATTERNS:
            i = text.find(p)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    def crashed(self):
        """A description if the process died of a signal or a sanitizer complained, else None."""
        rep = self.sanitizer_report()
        if rep:
            return "sanitizer report in stderr:\n" + rep
        rc = self.proc.poll()
        if rc is not None and rc < 0 and self.returncode is None:
            return "wsrelay died of signal %d" % -rc
        return None

    def cleanup(self, keep_tmp=False):
        self.kill()
        if not keep_tmp and os.environ.get("WSRELAY_E2E_KEEP") is None:
            self._removed = True
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def ipv6_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
            return True
        finally:
            s.close()
    except OSError:
        return False


def run_cli(args, timeout=10.0, env=None, cwd=None):
    """Run wsrelay with arguments to completion (for --version, --check-config, bad configs).
    Returns CompletedProcess with text stdout/stderr."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    e.update(env or {})
    return subprocess.run([binary()] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, env=e, cwd=cwd, text=True, errors="replace")


# ---------------------------------------------------------------- waiting on a condition
def wait_for(probe, timeout, what, until=bool, ignore=(), step=0.05):
    """Call probe() every `step` seconds until until(value) holds, and return that value.

    This is how a test waits for the daemon to reach a state: never a fixed sleep, which is
    either too short on a loaded machine (CI runs two suites at once on two cores, one of them
    under ASan, which is 5-10x slower) or wastes time everywhere else. So make `timeout`
    generous (10-30 s): the wait ends as soon as the condition holds.

    what: the awaited condition, for the failure message ("wsrelay to log the reload").
    until: when probe() returns a measurement rather than a verdict, the test on it, so the
    failure shows the last measurement (a count, a queue size) instead of False.
    ignore: exception types that mean "not yet" (e.g. a refused handshake while a slot frees
    up); the last one is reported as the last value.
    Raises AssertionError: "timed out after 30s waiting for <what>; last: <last value>".
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            last = probe()
        except ignore as e:
            last = e
        else:
            if until(last):
                return last
        # Checked after the probe, so the condition gets one look at or after the deadline.
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(step)


def _proc_net_address(text, family):
    """'0100007F:1F90' (/proc/net/tcp: the address as native-endian 32-bit words) -> (host, port)"""
    host, port = text.split(":")
    raw = b"".join(struct.pack("=I", int(host[i:i + 8], 16)) for i in range(0, len(host), 8))
    return socket.inet_ntop(family, raw), int(port, 16)


def tcp_queues(c):
    """(unacked, unread) of client c's TCP connection to the daemon, as the kernel sees it
    (/proc/net/tcp): bytes c sent that the daemon's side has not acknowledged yet, and bytes the
    daemon's socket holds that the daemon has not read yet. (0, 0): the daemon has read all
    that c sent. A side whose socket is gone (closed, reset) is None."""
    try:
        local, peer = c.sock.getsockname()[:2], c.sock.getpeername()[:2]
    except OSError:             # ENOTCONN: reset; both ends are gone
        return None, None
    found = {}
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] in ("06", "0A"):      # TIME_WAIT, LISTEN: not the live connection
                continue
            ends = (_proc_net_address(fields[1], family), _proc_net_address(fields[2], family))
            if ends in ((local, peer), (peer, local)):
                tx, rx = (int(x, 16) for x in fields[4].split(":"))
                found[ends] = (tx, rx)
    return found.get((local, peer), (None, None))[0], found.get((peer, local), (None, None))[1]


class DaemonTestCase(unittest.TestCase):
    """Base class: self.start(config) starts a daemon that is torn down after the test, and the
    test fails if the daemon crashed or a sanitizer reported anything."""

    def setUp(self):
        self._daemons = []
        self._clients = []

    def start(self, config=None, **kw):
        d = Daemon(config, **kw)
        self._daemons.append(d)
        return d

    def track(self, c):
        self._clients.append(c)
        return c

    def connect(self, d, path="/", **kw):
        return self.track(d.client(path, **kw))

    def tearDown(self):
        for c in self._clients:
            c.abort()
        problems = []
        for d in self._daemons:
            # No wait for a sanitizer report: a process that poll() found exited has written
            # all it will (every launcher here execs wsrelay, so the process is wsrelay itself).
            p = d.crashed()
            if p:
                problems.append("%s\n--- stderr tail ---\n%s" % (p, d.stderr()[-4000:]))
            d.kill()
            # A report can also appear only at exit (LeakSanitizer).
            if not p:
                rep = d.sanitizer_report()
                if rep:
                    problems.append("sanitizer report in stderr:\n" + rep)
            d.cleanup(keep_tmp=bool(problems))
        if problems:
            self.fail("daemon crashed:\n" + "\n\n".join(problems))

    # ---- assertions shared by the modules ----
    def assertServerCloses(self, c, code, timeout=5.0, eof_timeout=3.0, answer=True, msg=None):
        """Wait for a close frame with `code` (int or tuple of ints), optionally answer it, then
        require the server to close TCP. Returns (code, reason, skipped_messages)."""
        try:
            rcode, reason, skipped = c.expect_close(timeout=timeout)
        except wsclient.Timeout:
            self.fail((msg or "") + " expected close %r: no close frame within %.1fs" % (
                code, timeout))
        except wsclient.ConnectionClosed:
            self.fail((msg or "") + " expected close %r: TCP closed without a close frame" % (
                code,))
        codes = code if isinstance(code, tuple) else (code,)
        self.assertIn(rcode, codes, (msg or "") + " close reason %r" % (reason,))
        if answer:
            c.answer_close(rcode if rcode is not None else 1000)
        try:
            c.wait_eof(timeout=eof_timeout)
        except wsclient.Timeout:
            self.fail((msg or "") + " server sent close %r but did not close TCP within %.1fs" % (
                rcode, eof_timeout))
        return rcode, reason, skipped
