# SPDX-License-Identifier: Apache-2.0
"""wss:// and https:// on socket-activated TLS listeners ([[listen]] tls = true).

The certificates come from a throwaway CA made with the openssl command (Pki below), so clients
verify the chain and the host name as a browser would. Covered: echo, HTTP, close codes, big
messages, a plain and a TLS listener side by side (two passed sockets, matched by name), bad
clients (garbage, truncated or stalled ClientHello, plain HTTP) that cost nobody else anything,
certificate reload on SIGHUP, SNI, certificate errors at startup and in --check-config, interop
with `openssl s_client` (ALPN, TLS 1.2 and 1.3, min_version), close_notify at the end of a
connection, session resumption, and the conformance cases over wss. Skipped when the openssl command is missing."""

import hashlib
import io
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import conformance
import harness
import wsclient
from wsclient import OP_BINARY, OP_TEXT

MiB = 1 << 20
# How an error says that a key and its certificate are not a pair: wsrelay's own words, or
# OpenSSL's ("key values mismatch"), which SSL_CTX_use_PrivateKey_file reports first.
MISMATCH = r"does not match|mismatch"
PKI = None   # the module's Pki, made once in setUpModule


# ---------------------------------------------------------------- certificates
class Leaf:
    """One certificate signed by the test CA: PEM files and the DER form a client sees."""

    def __init__(self, cert, key):
        self.cert, self.key = cert, key
        with open(cert) as f:
            self.der = ssl.PEM_cert_to_DER_cert(f.read())

    @property
    def fingerprint(self):
        return hashlib.sha256(self.der).hexdigest()


class Pki:
    """A throwaway CA (EC P-256, valid 2 days) and leaf certificates it signs, made with the
    openssl command in `directory`."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = os.path.join(directory, "ca.pem")
        self.ca_key = os.path.join(directory, "ca.key")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-days", "2", "-subj", "/CN=wsrelay e2e test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                      "-keyout", self.ca_key, "-out", self.ca)

    @staticmethod
    def _openssl(*args):
        subprocess.run(("openssl",) + args, check=True, capture_output=True, timeout=30)

    def leaf(self, name, sans):
        """A server certificate for `sans` ("DNS:a.test", "IP:127.0.0.1") signed by the CA."""
        base = os.path.join(self.dir, name)
        key, csr, cert, ext = base + ".key", base + ".csr", base + ".pem", base + ".ext"
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-subj", "/CN=" + name, "-keyout", key, "-out", csr)
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n"
                    "subjectAltName=%s\n" % ",".join(sans))
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                      "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
                      "-extfile", ext, "-out", cert)
        return Leaf(cert, key)

    def client_context(self, check_hostname=True, maximum_version=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = check_hostname
        if maximum_version is not None:
            ctx.maximum_version = maximum_version
        return ctx


def setUpModule():
    global PKI
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("no openssl command to make test certificates")
    PKI = Pki(tempfile.mkdtemp(prefix="wsrelay-tls-"))
    local = ["DNS:localhost", "IP:127.0.0.1"]
    PKI.A = PKI.leaf("cert-a", local + ["DNS:a.test"])
    PKI.B = PKI.leaf("cert-b", local)
    PKI.C = PKI.leaf("cert-c", ["DNS:*.b.test"])
    PKI.D = PKI.leaf("cert-d", local + ["DNS:other.test"])


def tearDownModule():
    if PKI is not None:
        shutil.rmtree(PKI.dir, ignore_errors=True)


def client_hello(server_hostname="localhost"):
    """The bytes of a real ClientHello, captured from Python's TLS client through a MemoryBIO."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = PKI.client_context().wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:16]
    return hello


# ---------------------------------------------------------------- several passed sockets
# Runs in the child between fork and the daemon: moves the passed sockets to fds 3, 4, ... as
# sd_listen_fds(3) expects, sets LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID (plus any other
# variables named in argv[3], e.g. WATCHDOG_PID) to its own pid, which execv keeps, then becomes
# wsrelay. (The harness's `sh -c` trick moves one socket through stdin; dash cannot name fds
# above 9, and subprocess passes fds only under their own numbers.)
_LAUNCHER = r"""
import fcntl, os, sys
names, fds, argv = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], sys.argv[4:]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]   # out of the way of 3, 4, ...
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)     # inheritable, like the service manager's sockets
    os.close(fd)
os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=names)
os.environ.update((var, str(os.getpid())) for var in sys.argv[3].split(","))
os.execv(argv[0], argv)
"""


class MultiSocketDaemon(harness.Daemon):
    """A Daemon started the way systemd starts it with several named sockets: each name in
    `names` gets a socket bound to 127.0.0.1:0, passed as fds 3, 4, ... with LISTEN_FDS=N and
    LISTEN_FDNAMES=name1:name2. A [[listen]] entry whose address contains "{port}" gets the port
    of the socket with its `name`. self.ports maps names to ports; self.port is the first one.
    pid_vars: environment variables set to the daemon's own pid."""

    def __init__(self, config=None, names=("plain", "tls"), pid_vars=("LISTEN_PID",), **kw):
        self.names = list(names)
        self.pid_vars = list(pid_vars)
        self.ports = {}
        super().__init__(config, **kw)

    def _start(self, activation, args, listen, env):
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        socks = []
        for name in self.names:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, 0))
            s.listen(1024)
            socks.append(s)
            self.ports[name] = s.getsockname()[1]
        self.port = self.ports[self.names[0]]
        for entry in self.config.get("listen", []):
            if entry.get("name") in self.ports:
                entry["address"] = str(entry.get("address", "")).replace(
                    "{port}", str(self.ports[entry["name"]]))
        self.write_config()
        fds = [s.fileno() for s in socks]
        cmd = [sys.executable, "-I", "-c", _LAUNCHER, ":".join(self.names),
               ",".join(map(str, fds)), ",".join(self.pid_vars), self.bin,
               "--config", self.config_path] + list(args)
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                         stderr=self._stderr, env=self._env(env),
                                         close_fds=True, pass_fds=fds)
        finally:
            for s in socks:     # the daemon owns them now (see harness.Daemon._start)
                s.close()


def two_listener_config(extra=None, plain_metrics=False):
    cfg = {"listen": [{"address": "127.0.0.1:{port}", "name": "plain", "metrics": plain_metrics},
                      {"address": "127.0.0.1:{port}", "name": "tls", "tls": True}],
           "tls": {"certificate": PKI.A.cert, "private_key": PKI.A.key}}
    return harness.merge(cfg, extra or {})


def peer_port(c):
    return c.sock.getsockname()[1]


def log_lines_for_peer(d, port):
    """The daemon's log lines about the client whose local port is `port`."""
    tag = "peer=127.0.0.1:%d " % port
    return [l for l in d.stderr().splitlines() if tag in l + " "]


def wait_log(d, predicate, what, timeout=30.0):
    """Wait (bounded) until some stderr line satisfies predicate and return it; else fail
    naming `what`, with the tail of the log."""
    try:
        return harness.wait_for(lambda: next(filter(predicate, d.stderr().splitlines()), None),
                                timeout, what)
    except AssertionError as e:
        raise AssertionError("%s\n--- stderr tail ---\n%s" % (e, d.stderr()[-2000:])) from None


def metric_value(text, sample):
    """The value of one sample line `name` or `name{label="v"}` in /metrics text."""
    m = re.search(r"^%s (\S+)$" % re.escape(sample), text, re.M)
    if not m:
        raise AssertionError("no sample %s in /metrics:\n%s" % (sample, text))
    return float(m.group(1))


class TlsCase(harness.DaemonTestCase):
    """Helpers shared by the TLS test classes."""

    def start_tls(self, extra=None, leaf=None):
        leaf = leaf or PKI.A
        cfg = {"listen": [{"address": "127.0.0.1:{port}", "tls": True}],
               "tls": {"certificate": leaf.cert, "private_key": leaf.key}}
        return self.start(harness.merge(cfg, extra or {}))

    def start_two(self, extra=None, plain_metrics=False):
        d = MultiSocketDaemon(two_listener_config(extra, plain_metrics))
        self._daemons.append(d)
        return d

    def wss(self, d, path="/", port=None, ctx=None, server_hostname="localhost", **kw):
        return self.track(wsclient.WSClient(
            d.host, port or d.port, path, ssl_context=ctx or PKI.client_context(),
            server_hostname=server_hostname, **kw))

    def ws(self, d, path="/", port=None, **kw):
        return self.track(wsclient.WSClient(d.host, port or d.port, path, **kw))

    def assertWorks(self, c, text="ping?"):
        """A round trip on an open WebSocket: ping -> pong (works with or without echo)."""
        c.send_ping(text.encode())
        m = c.recv_message(return_control=True)
        self.assertEqual((m.opcode, m.data), (wsclient.OP_PONG, text.encode()))

    def assertNoErrLines(self, d):
        errs = [l for l in d.stderr().splitlines() if l.startswith(("<0>", "<1>", "<2>", "<3>"))]
        self.assertFalse(errs, "a peer's fault was logged at err or worse:\n" + "\n".join(errs))


# ---------------------------------------------------------------- the basics (one listener)
class TlsTest(TlsCase):

    def test_wss_echo_and_relay(self):
        d = self.start_tls()
        a, b = self.wss(d, "/t"), self.wss(d, "/t")
        a.send_text("über TLS")
        self.assertEqual(a.recv_data().text, "über TLS")
        self.assertEqual(b.recv_data().text, "über TLS")
        self.assertWorks(a, "p")
        self.assertEqual(a.close()[0], 1000)

    def test_wss_big_messages(self):
        d = self.start_tls({"limits": {"max_message_bytes": 4 * MiB,
                                       "send_queue_bytes": 16 * MiB}})
        a = self.wss(d, "/big", timeout=20)
        for op, payload in ((OP_BINARY, os.urandom(4 * MiB)), (OP_TEXT, b"x" * (4 * MiB))):
            a.send_frame(op, payload)
            m = a.recv_data(timeout=20)
            self.assertEqual((m.opcode, hashlib.sha256(m.data).hexdigest()),
                             (op, hashlib.sha256(payload).hexdigest()))

    def test_wss_many_small_messages_in_one_record_burst(self):
        d = self.start_tls()
        a = self.wss(d, "/burst")
        a.send_raw(b"".join(wsclient.encode_frame(OP_TEXT, b"m%d" % i) for i in range(500)))
        for i in range(500):
            self.assertEqual(a.recv_data().data, b"m%d" % i)

    def test_https_healthz_and_page(self):
        d = self.start_tls()
        c = self.track(wsclient.WSClient(d.host, d.port, handshake=False,
                                         ssl_context=PKI.client_context(),
                                         server_hostname="localhost"))
        c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET / HTTP/1.1\r\n"
                   b"Host: localhost\r\n\r\n")
        r1 = wsclient.read_http_response(c)
        r2 = wsclient.read_http_response(c)
        self.assertEqual((r1.status, r1.body), (200, b"ok\n"))
        self.assertEqual(r2.status, 200)
        self.assertIn(b"<html", r2.body.lower())

    def test_tls_protocol_error_closes_1002(self):
        d = self.start_tls()
        a = self.wss(d, "/err")
        a.send_frame(OP_TEXT, b"x", rsv=4)
        self.assertServerCloses(a, 1002)

    def test_plain_http_on_tls_port_is_refused(self):
        d = self.start_tls()
        c = self.track(d.raw())
        c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            junk = c.wait_eof(timeout=5)
        except wsclient.Timeout:
            self.fail("a plain HTTP request on the TLS port kept the connection open")
        self.assertNotIn(b"ok\n", junk)
        self.assertTrue(d.alive())

    def test_silent_tls_client_times_out(self):
        d = self.start_tls({"timeouts": {"handshake_timeout": "500ms"}})
        c = self.track(d.raw())        # TCP only: never sends a ClientHello
        t0 = time.monotonic()
        c.wait_eof(timeout=0.5 + 3)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)

    def test_wrong_hostname_is_the_clients_business(self):
        # Without [[tls.sni]], the server presents its one certificate whatever SNI says; a
        # verifying client refuses it.
        d = self.start_tls()
        with self.assertRaises(ssl.SSLCertVerificationError):
            wsclient.WSClient(d.host, d.port, "/", ssl_context=PKI.client_context(),
                              server_hostname="not-localhost.example")
        self.assertTrue(d.alive())

    def test_sigterm_closes_wss_clients_with_1001(self):
        d = self.start_tls({"timeouts": {"shutdown_timeout": "3s"}})
        cs = [self.wss(d, "/bye") for _ in range(5)]
        for c in cs:
            self.assertWorks(c, "sync")
        d.send_signal(15)
        for c in cs:
            code, _r, _s = c.expect_close(timeout=5)
            self.assertEqual(code, 1001)
            c.answer_close(code)
        self.assertEqual(d.wait(6), 0)

    def test_conformance_over_wss(self):
        d = self.start_tls(conformance.SPAWN_CONFIG)
        target = conformance.Target("wss://localhost:%d" % d.port, PKI.client_context(),
                                    "localhost")
        target.host = "127.0.0.1"
        out = io.StringIO()
        results = conformance.run_suite(target, "1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.1.*,9.2.*,10.*",
                                        out=out)
        failed = [r for r in results if r[1] == conformance.FAILED]
        self.assertFalse(failed, "FAILED over wss:\n" + "\n".join(
            "  %s: %s" % (r[0], r[2]) for r in failed))


# ---------------------------------------------------------------- ws and wss side by side
class TwoListenersTest(TlsCase):
    """One daemon, two passed sockets named "plain" and "tls" (LISTEN_FDNAMES=plain:tls), matched
    to the [[listen]] entries of the same names."""

    def test_plain_and_tls_clients_share_a_room(self):
        d = self.start_two()
        plain, tls = d.ports["plain"], d.ports["tls"]
        w = self.ws(d, "/mixed", port=plain)
        s = self.wss(d, "/mixed", port=tls)
        self.assertIn(s.sock.version(), ("TLSv1.2", "TLSv1.3"))
        w.send_text("from ws")
        self.assertEqual(s.recv_data().text, "from ws")
        self.assertEqual(w.recv_data().text, "from ws")          # echo
        s.send_binary(b"\x00from wss\xff")
        self.assertEqual(w.recv_data().data, b"\x00from wss\xff")
        self.assertEqual(s.recv_data().data, b"\x00from wss\xff")
        # A second room on both listeners stays separate.
        w2, s2 = self.ws(d, "/other", port=plain), self.wss(d, "/other", port=tls)
        s2.send_text("other room")
        self.assertEqual(w2.recv_data().text, "other room")
        w.expect_silence(0.3)
        s.expect_silence(0.1)
        for c in (w, s, w2, s2):
            self.assertEqual(c.close()[0], 1000)

    def test_each_listener_speaks_only_its_protocol(self):
        # handshake_timeout 1s: a ClientHello on the plain port is not a complete request line
        # (it has no CRLF), so the plain listener answers it with 408 after that time.
        d = self.start_two({"timeouts": {"handshake_timeout": "1s"}})
        plain, tls = d.ports["plain"], d.ports["tls"]
        # HTTP on both, in its own protocol.
        self.assertEqual(d.get("/healthz").body, b"ok\n")
        raw = wsclient.http_request(d.host, tls, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Connection: close\r\n\r\n",
                                    ssl_context=PKI.client_context(), server_hostname="localhost")
        self.assertTrue(raw.startswith(b"HTTP/1.1 200"), raw[:80])
        # A TLS client on the plain port fails its handshake: what it gets back is HTTP.
        with self.assertRaises(ssl.SSLError):
            self.wss(d, "/", port=plain, timeout=5)
        # A plain client on the TLS port gets no WebSocket.
        c = self.ws(d, "/", port=tls, timeout=3, handshake=False)
        with self.assertRaises((wsclient.WSError, OSError)):
            c.handshake()
        self.assertTrue(d.alive())
        self.assertWorks(self.wss(d, "/", port=tls))
        self.assertWorks(self.ws(d, "/", port=plain))


# ---------------------------------------------------------------- 16 MiB messages
class BigMessageTest(TlsCase):

    SIZE = 16 * MiB

    @staticmethod
    def text_payload(n):
        """Exactly n bytes of valid UTF-8 with 1- to 4-byte sequences."""
        unit = "ab€ü😀 ".encode()
        out = unit * (n // len(unit))
        return out + b"z" * (n - len(out))

    def test_16mib_text_and_binary_over_wss_echoed_and_relayed_to_ws(self):
        # Exactly max_message_bytes; the queue holds one such frame per recipient at a time.
        d = self.start_two({"limits": {"max_message_bytes": self.SIZE,
                                       "send_queue_bytes": 3 * self.SIZE}})
        s = self.wss(d, "/big", port=d.ports["tls"], timeout=30)
        w = self.ws(d, "/big", port=d.ports["plain"], timeout=30)
        payloads = ((OP_BINARY, os.urandom(self.SIZE)), (OP_TEXT, self.text_payload(self.SIZE)))
        for op, payload in payloads:
            want = (op, len(payload), hashlib.sha256(payload).hexdigest())
            s.send_frame(op, payload)
            for who, c in (("wss sender (echo)", s), ("ws recipient", w)):
                m = c.recv_data(timeout=30)
                self.assertEqual((m.opcode, len(m.data), hashlib.sha256(m.data).hexdigest()),
                                 want, who)
        # And the other way: from the ws client to the wss one.
        payload = os.urandom(self.SIZE)
        w.send_frame(OP_BINARY, payload)
        for c in (w, s):
            self.assertEqual(hashlib.sha256(c.recv_data(timeout=30).data).digest(),
                             hashlib.sha256(payload).digest())
        self.assertWorks(s)
        self.assertWorks(w)


# ---------------------------------------------------------------- bad clients
class BadClientTest(TlsCase):
    """A bad client on the TLS port is dropped without costing anyone else anything, and logged
    as the peer's fault (info or debug), never at err."""

    def setUp(self):
        super().setUp()
        self.d = self.start_two({"server": {"log_level": "debug"},
                                 "timeouts": {"handshake_timeout": "1s"}}, plain_metrics=True)
        self.bystander = self.wss(self.d, "/ok", port=self.d.ports["tls"])

    def tearDown(self):
        try:
            self.assertWorks(self.bystander, "still here")
            self.assertWorks(self.wss(self.d, "/ok", port=self.d.ports["tls"]), "newcomer")
            self.assertTrue(self.d.alive())
            self.assertNoErrLines(self.d)
        finally:
            super().tearDown()

    def failures(self):
        r = self.d.get("/metrics")
        self.assertEqual(r.status, 200)
        return metric_value(r.body.decode(), "wsrelay_tls_handshake_failures_total")

    def raw_tls(self):
        return self.track(wsclient.WSClient(self.d.host, self.d.ports["tls"], handshake=False,
                                            timeout=5))

    def wait_read(self, c, what):
        """Wait until the daemon has read everything c sent (so the EOF or reset that follows
        finds it mid-handshake, not still in the socket with the data)."""
        harness.wait_for(lambda: harness.tcp_queues(c), 30, "wsrelay to read %s (TCP queues "
                         "(unacked, unread))" % what, until=lambda q: q == (0, 0))

    def check_dropped(self, c, within, reason):
        t0 = time.monotonic()
        try:
            c.wait_eof(timeout=within)
        except wsclient.Timeout:
            self.fail("%s: still connected after %.1fs" % (reason, within))
        return time.monotonic() - t0

    def check_logged(self, port, reason):
        wait_log(self.d, lambda l: ("peer=127.0.0.1:%d " % port) in l and "closed" in l,
                 "%s: a log line saying the connection closed" % reason)
        lines = log_lines_for_peer(self.d, port)
        for l in lines:
            self.assertRegex(l, r"^<[67]>", "%s: logged above info" % reason)
        return lines

    def test_garbage_bytes(self):
        before = self.failures()
        c = self.raw_tls()
        c.send_raw(b"\x00\xff garbage \x13\x37" * 64)
        self.check_dropped(c, 3, "garbage")
        lines = self.check_logged(peer_port(c), "garbage")
        self.assertTrue(any("TLS handshake failed" in l for l in lines), lines)
        self.assertEqual(self.failures(), before + 1)

    def test_garbage_that_looks_like_a_tls_record(self):
        c = self.raw_tls()
        c.send_raw(b"\x16\x03\x01\x00\x40" + os.urandom(64))
        self.check_dropped(c, 3, "garbage record")
        self.check_logged(peer_port(c), "garbage record")

    def test_plain_http_on_tls_port(self):
        before = self.failures()
        c = self.raw_tls()
        c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.check_dropped(c, 3, "plain HTTP")
        self.check_logged(peer_port(c), "plain HTTP")
        self.assertEqual(self.failures(), before + 1)

    def test_truncated_client_hello_then_stall_is_closed_after_handshake_timeout(self):
        c = self.raw_tls()
        c.send_raw(client_hello()[:50])
        elapsed = self.check_dropped(c, 1 + 3, "truncated ClientHello, then silence")
        self.assertGreaterEqual(elapsed, 0.8, "closed before handshake_timeout (1s)")
        self.check_logged(peer_port(c), "truncated ClientHello, then silence")

    def test_truncated_client_hello_then_close(self):
        c = self.raw_tls()
        port = peer_port(c)
        c.send_raw(client_hello()[:50])
        self.wait_read(c, "the truncated ClientHello")
        c.sock.shutdown(socket.SHUT_WR)
        self.check_dropped(c, 3, "truncated ClientHello, then EOF")
        self.check_logged(port, "truncated ClientHello, then EOF")

    def test_truncated_client_hello_then_reset(self):
        c = self.raw_tls()
        port = peer_port(c)
        c.send_raw(client_hello()[:50])
        self.wait_read(c, "the truncated ClientHello")
        c.abort(rst=True)
        self.check_logged(port, "truncated ClientHello, then RST")

    def test_stalled_tcp_only_is_closed_after_handshake_timeout(self):
        c = self.raw_tls()
        elapsed = self.check_dropped(c, 1 + 3, "TCP connect, then silence")
        self.assertGreaterEqual(elapsed, 0.8)
        self.check_logged(peer_port(c), "TCP connect, then silence")

    def test_many_bad_clients_at_once(self):
        hello = client_hello()
        cs = []
        for i in range(30):
            c = self.raw_tls()
            c.send_raw([b"\x00garbage" * 10, hello[:50], b"GET / HTTP/1.1\r\n\r\n"][i % 3])
            cs.append(c)
        self.assertWorks(self.bystander, "during")
        for c in cs:
            c.abort(rst=True)


# ---------------------------------------------------------------- certificate reload
class CertificateReloadTest(TlsCase):

    def test_sighup_rotates_certificate_and_refuses_a_broken_key(self):
        work = tempfile.mkdtemp(prefix="wsrelay-rotate-")
        self.addCleanup(shutil.rmtree, work, True)
        cert, key = os.path.join(work, "server.pem"), os.path.join(work, "server.key")
        shutil.copy(PKI.A.cert, cert)
        shutil.copy(PKI.A.key, key)
        d = self.start_tls({"tls": {"certificate": cert, "private_key": key}})
        old = self.wss(d, "/rot")
        self.assertEqual(old.sock.getpeercert(binary_form=True), PKI.A.der)

        # Rotate in place to B; the open connection stays, new ones see B.
        shutil.copy(PKI.B.cert, cert)
        shutil.copy(PKI.B.key, key)
        d.send_signal(signal.SIGHUP)
        d.wait_notify("RELOADING=1", timeout=5)
        d.wait_notify("READY=1", timeout=5)
        self.assertTrue(d.alive())
        new = self.wss(d, "/rot")
        self.assertEqual(new.sock.getpeercert(binary_form=True), PKI.B.der,
                         "a new client after SIGHUP still gets the old certificate")
        old.send_text("old to new")
        self.assertEqual(new.recv_data().text, "old to new")
        self.assertEqual(old.recv_data().text, "old to new")
        new.send_text("new to old")
        self.assertEqual(old.recv_data().text, "new to old")
        self.assertEqual(new.recv_data().text, "new to old")

        # A key that does not match the certificate: the reload is refused and logged at err,
        # naming the key file; the daemon keeps B.
        shutil.copy(PKI.C.key, key)
        d.send_signal(signal.SIGHUP)
        d.wait_notify("RELOADING=1", timeout=5)
        d.wait_notify("READY=1", timeout=5)
        line = wait_log(d, lambda l: l.startswith("<3>") and key in l, "an err line naming " + key)
        self.assertRegex(line, MISMATCH, line)
        self.assertTrue(d.alive())
        third = self.wss(d, "/rot")
        self.assertEqual(third.sock.getpeercert(binary_form=True), PKI.B.der)
        third.send_text("after a refused reload")
        for c in (old, new, third):
            self.assertEqual(c.recv_data().text, "after a refused reload")

        # Files fixed again (atomic replace this time): the next reload takes them.
        for src, dst in ((PKI.D.cert, cert), (PKI.D.key, key)):
            shutil.copy(src, dst + ".tmp")
            os.replace(dst + ".tmp", dst)
        d.send_signal(signal.SIGHUP)
        d.wait_notify("READY=1", timeout=5)
        fourth = self.wss(d, "/rot")
        self.assertEqual(fourth.sock.getpeercert(binary_form=True), PKI.D.der)
        self.assertWorks(old)
        for c in (old, new, third, fourth):
            self.assertEqual(c.close()[0], 1000)
        self.assertEqual(d.stop(timeout=5), 0)


# ---------------------------------------------------------------- SNI
class SniTest(TlsCase):

    def setUp(self):
        super().setUp()
        self.d = self.start_tls({"tls": {"sni": [
            {"server_name": "a.test", "certificate": PKI.A.cert, "private_key": PKI.A.key},
            {"server_name": "*.b.test", "certificate": PKI.C.cert, "private_key": PKI.C.key}]}},
            leaf=PKI.D)

    def presented(self, server_hostname, ctx=None):
        ctx = ctx or PKI.client_context(check_hostname=False)
        with socket.create_connection((self.d.host, self.d.port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=server_hostname) as t:
                return t.getpeercert(binary_form=True)

    def test_certificate_by_server_name(self):
        cases = [("a.test", PKI.A), ("A.Test", PKI.A), ("x.b.test", PKI.C), ("X.B.TEST", PKI.C),
                 ("other.test", PKI.D), (None, PKI.D),
                 ("b.test", PKI.D),        # "*.b.test" needs one label in front...
                 ("y.x.b.test", PKI.D),    # ...exactly one
                 ("a.test.evil", PKI.D)]
        names = {PKI.A.der: "A", PKI.C.der: "C", PKI.D.der: "D"}
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = PKI.client_context(check_hostname=False, maximum_version=version)
            for name, want in cases:
                with self.subTest(server_hostname=name, version=version.name):
                    got = self.presented(name, ctx)
                    self.assertEqual(names.get(got, "?"), names[want.der])

    def test_sni_certificates_verify_with_hostname_check(self):
        for name in ("a.test", "x.b.test", "other.test", "localhost"):
            with self.subTest(server_hostname=name):
                c = self.wss(self.d, "/sni", server_hostname=name)
                self.assertWorks(c)


# ---------------------------------------------------------------- certificate errors
class CertificateErrorTest(unittest.TestCase):
    """A TLS listener with a bad certificate or key: exit 2 at startup and from --check-config,
    with stderr naming the file."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="wsrelay-badcert-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def file(self, name, text):
        p = os.path.join(self.dir, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def cases(self):
        garbage_pem = self.file("garbage.pem", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
                                               "-----END CERTIFICATE-----\n")
        not_pem = self.file("not-pem.key", "this is not a key\n")
        missing = os.path.join(self.dir, "missing.pem")
        a, b = PKI.A, PKI.B
        out = [
            # (what, [tls] certificate, private_key, the file the message must name, regex)
            ("missing certificate", missing, a.key, missing, r"cannot open|No such file"),
            ("missing key", a.cert, missing, missing, r"cannot open|No such file"),
            # Tests run as root, for whom chmod 000 changes nothing: a directory stands in for
            # an unreadable key.
            ("key is a directory", a.cert, self.dir, self.dir, r"key|directory"),
            ("key is not PEM", a.cert, not_pem, not_pem, r"PEM|key"),
            ("key does not match", a.cert, b.key, b.key, MISMATCH),
            ("garbage PEM certificate", garbage_pem, a.key, garbage_pem, r"PEM|certificate"),
            ("key as certificate", a.key, a.key, a.key, r"certificate"),
        ]
        if os.geteuid() != 0:
            unreadable = self.file("unreadable.key", open(a.key).read())
            os.chmod(unreadable, 0)
            out.append(("unreadable key", a.cert, unreadable, unreadable, r"ermission"))
        return out

    def config(self, cert, key, sni=None):
        cfg = {"server": {"log_level": "info"},
               "listen": [{"address": "127.0.0.1:0", "tls": True}],
               "tls": {"certificate": cert, "private_key": key}}
        if sni:
            cfg["tls"]["sni"] = sni
        return self.file("wsrelay.toml", harness.toml_dumps(cfg))

    def check(self, config_path, names, regex, what):
        for args in ([], ["--check-config"]):
            with self.subTest(what=what, args=args):
                try:
                    r = harness.run_cli(["--config", config_path] + args, timeout=5)
                except subprocess.TimeoutExpired:
                    self.fail("%s: wsrelay %s started instead of exiting 2" % (what, args))
                self.assertEqual(r.returncode, 2, "%s: stderr %r" % (what, r.stderr))
                self.assertIn(names, r.stderr, what)
                self.assertRegex(r.stderr, regex, what)
                self.assertIn(config_path, r.stderr, "%s: the config file is not named" % what)

    def test_bad_default_certificate(self):
        for what, cert, key, names, regex in self.cases():
            self.check(self.config(cert, key), names, regex, what)

    def test_bad_sni_certificate(self):
        missing = os.path.join(self.dir, "sni-missing.pem")
        sni = [{"server_name": "a.test", "certificate": missing, "private_key": PKI.A.key}]
        self.check(self.config(PKI.B.cert, PKI.B.key, sni), missing, r"cannot open", "SNI")
        sni = [{"server_name": "a.test", "certificate": PKI.A.cert, "private_key": PKI.B.key}]
        self.check(self.config(PKI.B.cert, PKI.B.key, sni), PKI.B.key, MISMATCH,
                   "SNI mismatch")

    def test_good_certificates_pass_check_config(self):
        r = harness.run_cli(["--check-config", "--config", self.config(PKI.A.cert, PKI.A.key)])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("wss", r.stdout)


# ---------------------------------------------------------------- openssl s_client
def upgrade_request(path="/sc", host="localhost"):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (path, host)).encode()


def parse_server_frames(data):
    """Unmasked server frames from raw bytes: [(opcode, payload)]."""
    frames, i = [], 0
    while i + 2 <= len(data):
        b0, b1 = data[i], data[i + 1]
        n, i = b1 & 0x7F, i + 2
        if n == 126:
            n, i = int.from_bytes(data[i:i + 2], "big"), i + 2
        elif n == 127:
            n, i = int.from_bytes(data[i:i + 8], "big"), i + 8
        frames.append((b0 & 0x0F, bytes(data[i:i + n])))
        i += n
    return frames


class SClientTest(TlsCase):
    """Interop with OpenSSL's own client, fed a raw upgrade request, one masked text frame and a
    close frame on stdin (the close makes the server end the connection, so s_client exits)."""

    STDIN = (upgrade_request() + wsclient.encode_frame(OP_TEXT, "hello from s_client") +
             wsclient.encode_frame(wsclient.OP_CLOSE, wsclient.close_payload(1000)))

    def s_client(self, d, *extra, quiet=True):
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % d.port,
               "-servername", "localhost", "-CAfile", PKI.ca, "-verify_return_error",
               "-alpn", "http/1.1", "-ign_eof", "-nocommands"] + (["-quiet"] if quiet else [])
        return subprocess.run(cmd + list(extra), input=self.STDIN, capture_output=True,
                              timeout=15)

    def check_echo(self, out):
        i = out.find(b"HTTP/1.1 101")
        self.assertGreaterEqual(i, 0, "no 101 in s_client output: %r" % out[-500:])
        j = out.find(b"\r\n\r\n", i)
        frames = parse_server_frames(out[j + 4:])
        self.assertGreaterEqual(len(frames), 2, frames)
        self.assertEqual(frames[0], (OP_TEXT, b"hello from s_client"))
        self.assertEqual(frames[1][0], wsclient.OP_CLOSE)
        self.assertEqual(frames[1][1][:2], (1000).to_bytes(2, "big"))

    def test_quiet_upgrade_and_echo(self):
        d = self.start_tls()
        r = self.s_client(d)
        self.check_echo(r.stdout)
        self.assertTrue(r.stdout.startswith(b"HTTP/1.1 101"), r.stdout[:100])
        # s_client exits 1 when the stream ends without close_notify ("unexpected eof while
        # reading"): see CloseNotifyTest.
        self.assertEqual(r.returncode, 0, "s_client failed: %s" % r.stderr.decode(errors="replace"))

    def test_alpn_and_protocol_versions(self):
        d = self.start_tls()
        for flag, version in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
            with self.subTest(version=version):
                r = self.s_client(d, flag, quiet=False)
                text = r.stdout.decode("latin-1")
                self.assertRegex(text, r"(?m)^ALPN protocol: http/1\.1$")
                self.assertRegex(text, r"(?m)^New, %s, Cipher is " % re.escape(version))
                self.assertRegex(text, r"(?m)^\s*Protocol\s*: %s$" % re.escape(version))
                self.assertRegex(text, r"Verify return code: 0 \(ok\)")
                self.check_echo(r.stdout)

    def test_no_alpn_offer_still_works(self):
        d = self.start_tls()
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % d.port, "-servername",
               "localhost", "-CAfile", PKI.ca, "-verify_return_error", "-ign_eof", "-nocommands"]
        r = subprocess.run(cmd + ["-alpn", "h2"], input=self.STDIN, capture_output=True,
                           timeout=15)
        self.assertRegex(r.stdout.decode("latin-1"), r"No ALPN negotiated")
        self.check_echo(r.stdout)

    def test_min_version_1_3_refuses_tls_1_2(self):
        d = self.start_tls({"tls": {"min_version": "1.3"}})
        r = self.s_client(d, "-tls1_2", quiet=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn(b"HTTP/1.1 101", r.stdout)
        self.assertRegex(r.stderr.decode(errors="replace"), r"alert protocol version|no protocols")
        r = self.s_client(d, "-tls1_3")
        self.check_echo(r.stdout)
        self.assertTrue(d.alive())
        self.assertNoErrLines(d)


# ---------------------------------------------------------------- close_notify
class _StrictEof:
    """An SSLContext stand-in for WSClient whose sockets report a TCP close without close_notify
    as an error (SSLEOFError, so WSClient.reset is True) instead of as a plain end of stream."""

    def __init__(self, ctx):
        # Python sets OP_IGNORE_UNEXPECTED_EOF by default (OpenSSL 3 would report the truncation).
        ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
        self.ctx = ctx

    def wrap_socket(self, sock, server_hostname=None):
        return self.ctx.wrap_socket(sock, server_hostname=server_hostname,
                                    suppress_ragged_eofs=False)


class CloseNotifyTest(TlsCase):
    """wsrelay(8), TLS: "After its own close frame, or the last HTTP response of a connection,
    the server sends a TLS close_notify alert", so a client can tell a complete stream from a
    truncated one."""

    def strict(self, d, path="/cn", **kw):
        return self.track(wsclient.WSClient(d.host, d.port, path,
                                            ssl_context=_StrictEof(PKI.client_context()),
                                            server_hostname="localhost", **kw))

    def assertCleanEnd(self, c, what):
        """Read to the end of the stream; it must end with close_notify, not a bare TCP close
        (SSLEOFError: "EOF occurred in violation of protocol") or a reset."""
        deadline = time.monotonic() + 5
        while True:
            try:
                c.recv_some(timeout=max(0.0, deadline - time.monotonic()))
            except wsclient.Timeout:
                self.fail("%s: the server did not end the connection within 5s" % what)
            except wsclient.ConnectionClosed as e:
                self.assertFalse(e.reset, "%s: the stream did not end with a TLS close_notify: "
                                          "%s" % (what, e))
                return

    def test_after_client_initiated_close(self):
        d = self.start_tls()
        c = self.strict(d)
        c.send_close(1000, b"bye")
        code, _reason, _ = c.expect_close()
        self.assertEqual(code, 1000)
        self.assertCleanEnd(c, "client-initiated close handshake")

    def test_after_server_initiated_close(self):
        d = self.start_tls()
        c = self.strict(d)
        c.send_frame(OP_TEXT, b"x", rsv=4)
        code, _reason, _ = c.expect_close()
        self.assertEqual(code, 1002)
        c.answer_close(code)
        self.assertCleanEnd(c, "server-initiated close (1002)")

    def test_after_last_http_response(self):
        d = self.start_tls()
        c = self.strict(d, handshake=False)
        c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        r = wsclient.read_http_response(c)
        self.assertEqual(r.status, 200)
        self.assertCleanEnd(c, "HTTP response with Connection: close")


# ---------------------------------------------------------------- session resumption
class ResumptionTest(TlsCase):

    def handshake(self, d, ctx, session=None):
        """Connect, do one HTTP request (so TLS 1.3 tickets have arrived), return
        (session_reused, session)."""
        with socket.create_connection((d.host, d.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                got = b""
                while not got.endswith(b"ok\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:80])
                return s.session_reused, s.session

    def check(self, d, version, expect_reuse):
        ctx = PKI.client_context(maximum_version=version)
        reused, session = self.handshake(d, ctx)
        self.assertFalse(reused)
        for attempt in range(2):       # a TLS 1.3 ticket is single-use; we get a new one each time
            reused, session = self.handshake(d, ctx, session)
            self.assertEqual(reused, expect_reuse, "%s, attempt %d" % (version.name, attempt))

    def test_tls12_session_resumed(self):
        self.check(self.start_tls(), ssl.TLSVersion.TLSv1_2, True)

    def test_tls13_session_resumed(self):
        self.check(self.start_tls(), ssl.TLSVersion.TLSv1_3, True)

    def test_session_tickets_false_disables_resumption(self):
        d = self.start_tls({"tls": {"session_tickets": False}})
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=version.name):
                self.check(d, version, False)


if __name__ == "__main__":
    unittest.main()
