# SPDX-License-Identifier: Apache-2.0
"""Fault injection: what the host or a peer does wrong at the worst moment.

* Accept under file-descriptor exhaustion: a daemon with RLIMIT_NOFILE 64 fills up; the excess
  clients wait in the listen backlog; the server keeps serving the ones it has, warns "accept
  paused" rate-limited (not once per retry), and accepts and serves the waiting clients soon
  after some connections close.
* A peer that resets (SO_LINGER 0) while the server writes it a 16 MiB message, over ws and wss,
  or while it is still sending one: nothing at err, the room's other members get the message
  whole, other rooms are served meanwhile, and every fd is freed.
* A wss peer that goes away after its handshake without close_notify (what browsers do) is a
  plain disconnect, not a "TLS handshake failed".
* SIGHUP with a broken config (invalid value, unknown key, not TOML, file gone), under traffic:
  the old configuration stays in force (limits and room settings, not a mix), connections stay,
  the error is logged at err naming file and key, READY=1 follows RELOADING=1, and a later good
  file is taken. (Complements test_signals, which checks one type error, and test_tls, which
  checks a broken certificate.)
* SIGTERM under full load: 300 clients in 10 rooms, a third of them over wss, with traffic
  flowing: every client that reads gets close 1001 before any EOF or reset, the messages it got
  before are whole and in order with no gaps, and the daemon exits 0 quickly when all answer,
  and within shutdown_timeout when some never answer or never read.
* A service manager that stops reading the notify socket must not freeze the relay.
"""

import asyncio
import os
import shutil
import signal
import socket
import ssl
import struct
import tempfile
import time
import unittest

import harness
import soak
import wsclient
from test_tls import MultiSocketDaemon, Pki
from wsclient import OP_BINARY

MiB = 1 << 20
PKI = None


def setUpModule():
    global PKI
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("no openssl command to make test certificates")
    PKI = Pki(tempfile.mkdtemp(prefix="wsrelay-faults-"))
    PKI.A = PKI.leaf("server", ["DNS:localhost", "IP:127.0.0.1"])
    soak.raise_nofile()        # the SIGTERM test holds 300 connections


def tearDownModule():
    if PKI is not None:
        shutil.rmtree(PKI.dir, ignore_errors=True)


def err_lines(d):
    return [l for l in d.stderr().splitlines() if l.startswith(("<0>", "<1>", "<2>", "<3>"))]


def closed_lines(d, port):
    """The daemon's log lines saying the connection from local port `port` closed."""
    tag = "peer=127.0.0.1:%d " % port
    return [l for l in d.stderr().splitlines() if tag in l and "closed" in l]


def wait_fds(d, fds, what):
    """Wait until the daemon has `fds` fds open again: it has closed the sockets of `what`."""
    harness.wait_for(lambda: soak.fd_count(d.pid), 30, "wsrelay to close the fds of %s (%d open "
                     "before)" % (what, fds), until=lambda n: n == fds)


def metric(d, sample, port=None):
    r = wsclient.http_request(d.host, port or d.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n")
    v = soak.metric(r.decode(errors="replace"), sample)
    if v is None:
        raise AssertionError("no %s in /metrics: %r" % (sample, r[:300]))
    return v


def two_listeners(extra=None):
    cfg = {"listen": [{"address": "127.0.0.1:{port}", "name": "plain", "metrics": True},
                      {"address": "127.0.0.1:{port}", "name": "tls", "tls": True}],
           "tls": {"certificate": PKI.A.cert, "private_key": PKI.A.key}}
    return harness.merge(cfg, extra or {})


class FaultCase(harness.DaemonTestCase):

    def start_two(self, extra=None):
        d = MultiSocketDaemon(two_listeners(extra))
        self._daemons.append(d)
        return d

    def wss(self, d, path, **kw):
        return self.track(wsclient.WSClient(d.host, d.ports["tls"], path,
                                            ssl_context=PKI.client_context(),
                                            server_hostname="localhost", **kw))

    def assertWorks(self, c, text="ping?"):
        c.send_ping(text.encode())
        m = c.recv_message(return_control=True, timeout=10)
        self.assertEqual((m.opcode, m.data), (wsclient.OP_PONG, text.encode()))

    def assertNoErrLines(self, d):
        errs = err_lines(d)
        self.assertFalse(errs, "logged at err or worse:\n" + "\n".join(errs[:20]))


# ---------------------------------------------------------------- fd exhaustion
class LimitedDaemon(harness.Daemon):
    """A Daemon whose process runs with RLIMIT_NOFILE `nofile` (soft and hard): the harness
    execs "$0", so $0 becomes a two-line wrapper that sets the limit and execs wsrelay (same
    pid, so LISTEN_PID still matches)."""

    def __init__(self, config, nofile, **kw):
        self.nofile = nofile
        super().__init__(config, **kw)

    def _start(self, activation, args, listen, env):
        real = self.bin
        wrapper = os.path.join(self.tmp, "wsrelay-nofile")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nulimit -n %d || exit 99\nexec "%s" "$@"\n' % (self.nofile, real))
        os.chmod(wrapper, 0o755)
        self.bin = wrapper
        try:
            super()._start(activation, args, listen, env)
        finally:
            self.bin = real


def upgrade_start(d, path):
    """A client whose upgrade request is sent but whose answer is not awaited (it may sit in
    the listen backlog). Returns (client, key)."""
    c = wsclient.WSClient(d.host, d.port, handshake=False, timeout=10)
    key = wsclient.make_key()
    c.send_raw(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key))
               .encode())
    return c, key


def upgrade_finish(c, key, timeout):
    head = c.read_http_head(timeout=timeout)
    status, _r, hdrs, _ = wsclient.parse_http_head(head)
    if status != 101 or hdrs.get("sec-websocket-accept") != wsclient.accept_for(key):
        raise AssertionError("upgrade answered %r" % head[:100])


class FdExhaustionTest(FaultCase):

    NOFILE = 64
    WAITING = 10

    def test_accept_pauses_and_recovers(self):
        d = LimitedDaemon({"listen": [{"address": "127.0.0.1:{port}", "metrics": True}],
                           "timeouts": {"handshake_timeout": "1s"}}, nofile=self.NOFILE)
        self._daemons.append(d)
        with open("/proc/%d/limits" % d.pid) as f:
            self.assertRegex(f.read(), r"Max open files\s+%d\s+%d" % (self.NOFILE, self.NOFILE))
        # For the sanitizer build: UBSan's vptr check looks at an object through pipe() the
        # first time it meets its dynamic type (IsAccessibleMemoryRange); under EMFILE that
        # fails and it reports a bogus "invalid vptr". So the loop dispatches to each kind of
        # Pollable before the fds run out: a connection and the listener (below), and the
        # timer (a TCP connection that says nothing is dropped after handshake_timeout).
        idle = self.track(d.raw())
        idle.wait_eof(timeout=1 + 5)
        base_fds = soak.settled_fd_count(d.pid)

        # Fill the server: one upgrade after the other until one gets no answer within 1 s.
        members = []
        waiting = []
        for i in range(self.NOFILE + 5):
            c, key = upgrade_start(d, "/fd%d" % (i % 3))
            self.track(c)
            try:
                upgrade_finish(c, key, timeout=1.0)
            except wsclient.Timeout:
                waiting.append((c, key))
                break
            members.append(c)
        self.assertTrue(waiting, "%d connections and still accepting" % len(members))
        self.assertGreater(len(members), self.NOFILE - 16)
        self.assertEqual(soak.fd_count(d.pid), self.NOFILE)
        for _ in range(self.WAITING - 1):
            c, key = upgrade_start(d, "/fd-late")
            self.track(c)
            waiting.append((c, key))
        line = harness.wait_for(lambda: [l for l in d.stderr().splitlines()
                                         if "accept paused" in l], 30,
                                "an 'accept paused' warning in the log")
        self.assertRegex(line[0], r"^<4>.*accept paused .*Too many open files")
        t_paused = time.monotonic()

        # The server still serves what it has: pings, and relaying in each room.
        for i, c in enumerate(members):
            self.assertWorks(c, "full %d" % i)
        rooms = {}
        for i, c in enumerate(members):
            rooms.setdefault(i % 3, []).append(c)
        for r, cs in rooms.items():
            cs[0].send_text("while full %d" % r)
            for c in cs:
                self.assertEqual(c.recv_data(timeout=10).text, "while full %d" % r)
        # The waiting clients still wait (the listener is not given up, nor are they refused).
        for c, _key in waiting:
            with self.assertRaises(wsclient.Timeout):
                c.read_http_head(timeout=0.01)

        # Exhausted for 5 s in all: the listener retries every 100 ms, the warning is
        # rate-limited (5 per second at most), not one line per retry.
        time.sleep(max(0.0, 5.0 - (time.monotonic() - t_paused)))
        paused_s = time.monotonic() - t_paused
        warn_lines = [l for l in d.stderr().splitlines() if "accept paused" in l]

        # Recovery: 15 members leave; the 10 waiting clients get their 101 and are served.
        leaving, members = members[:15], members[15:]
        t_free = time.monotonic()
        for c in leaving:
            self.assertEqual(c.close(timeout=10)[0], 1000)
        for i, (c, key) in enumerate(waiting):
            upgrade_finish(c, key, timeout=3.0)
            self.assertWorks(c, "recovered %d" % i)
        recovery_s = time.monotonic() - t_free
        self.assertLess(recovery_s, 5.0)
        late = [c for c, _k in waiting[1:]]
        late[0].send_text("after recovery")
        for c in late:
            self.assertEqual(c.recv_data(timeout=10).text, "after recovery")
        # New clients are accepted too (5 fds are free again), and /metrics counted the pauses.
        newcomer = self.track(d.client("/fd-new", timeout=5))
        self.assertWorks(newcomer, "new")
        pauses = metric(d, "wsrelay_accept_pauses_total")
        self.assertLessEqual(len(warn_lines), 5 * (paused_s + 2),
                             "%d 'accept paused' lines in %.1f s" % (len(warn_lines), paused_s))
        self.assertGreater(pauses, len(warn_lines),
                           "%d pauses, %d lines: the warning is not rate-limited" % (
                               pauses, len(warn_lines)))
        self.assertNoErrLines(d)

        # Everyone leaves: every fd is freed.
        for c in members + [w for w, _k in waiting] + [newcomer]:
            self.assertEqual(c.close(timeout=5)[0], 1000)
        wait_fds(d, base_fds, "every client")
        print("\nfd exhaustion: %d members, %d waiting, %d 'accept paused' lines for %d pauses in "
              "%.1f s, recovered in %.2f s" % (len(members) + 15, self.WAITING, len(warn_lines),
                                               pauses, paused_s, recovery_s))


# ---------------------------------------------------------------- resets during big writes
class ResetDuringWriteTest(FaultCase):

    SIZE = 16 * MiB

    def test_reset_while_server_writes_16mib(self):
        d = self.start_two({"limits": {"max_message_bytes": self.SIZE,
                                       "send_queue_bytes": 3 * self.SIZE}})
        base_fds = soak.settled_fd_count(d.pid)
        watcher = self.connect(d, "/big", timeout=60)          # same room: must get it whole
        bystander = self.wss(d, "/other", timeout=20)        # another room: served meanwhile
        payload = os.urandom(self.SIZE)
        for rnd, (tls, when) in enumerate([(False, "reading"), (True, "reading"),
                                           (False, "sending"), (True, "sending")]):
            with self.subTest(round=rnd, tls=tls, when=when):
                victim = (self.wss(d, "/big", rcvbuf=65536, timeout=60) if tls else
                          self.connect(d, "/big", rcvbuf=65536, timeout=60))
                port = victim.sock.getsockname()[1]
                if when == "sending":
                    # Half of the message, then the reset: the server drops a partial message.
                    wire = wsclient.encode_frame(OP_BINARY, payload)
                    victim.send_raw(wire[:len(wire) // 2])
                    harness.wait_for(lambda: harness.tcp_queues(victim), 30,
                                     "wsrelay to read the half message (TCP queues (unacked, "
                                     "unread))", until=lambda q: q == (0, 0))
                    victim.abort(rst=True)
                else:
                    victim.send_frame(OP_BINARY, payload)
                    got = victim.recv_exact(256 * 1024, timeout=30)   # its echo is under way
                    self.assertEqual(got[:2], b"\x82\x7f")
                    self.assertWorks(bystander, "during %d" % rnd)
                    victim.abort(rst=True)
                    m = watcher.recv_data(timeout=60)
                    self.assertEqual(len(m.data), self.SIZE)
                    self.assertTrue(m.data == payload, "the watcher's copy differs")
                line = harness.wait_for(lambda: closed_lines(d, port), 30,
                                        "wsrelay to log the victim's close")
                self.assertRegex(line[-1], r"^<[67]>", "a peer's reset logged above info")
                self.assertWorks(bystander, "after %d" % rnd)
                self.assertWorks(watcher, "after %d" % rnd)
        self.assertEqual(d.get("/healthz").status, 200)
        self.assertNoErrLines(d)
        for c in (watcher, bystander):
            self.assertEqual(c.close(timeout=10)[0], 1000)
        wait_fds(d, base_fds, "every client")

    def test_wss_peer_gone_without_close_notify_is_not_a_tls_handshake_failure(self):
        d = self.start_two({"server": {"log_level": "debug"}})
        before = metric(d, "wsrelay_tls_handshake_failures_total")
        c = self.wss(d, "/bye")
        self.assertWorks(c)
        port = c.sock.getsockname()[1]
        # Like a browser tab that is closed: TCP FIN, no close frame, no close_notify.
        c.sock.shutdown(socket.SHUT_RDWR)
        c.abort()
        harness.wait_for(lambda: closed_lines(d, port), 30, "wsrelay to log the close")
        lines = [l for l in d.stderr().splitlines() if "peer=127.0.0.1:%d " % port in l]
        self.assertFalse([l for l in lines if "handshake failed" in l],
                         "an established wss connection that ended without close_notify is "
                         "logged as a failed handshake:\n" + "\n".join(lines))
        self.assertEqual(metric(d, "wsrelay_tls_handshake_failures_total"), before,
                         "and counted in wsrelay_tls_handshake_failures_total")


# ---------------------------------------------------------------- SIGHUP with a broken config
class BrokenReloadTest(FaultCase):

    GOOD = {"server": {"log_level": "info"}, "rooms": {"echo": True},
            "limits": {"max_message_bytes": 1000, "send_queue_bytes": 65536}}

    def check_old_config(self, d, a, b, what):
        # Echo still on, relaying still works for the old connections.
        a.send_text("still %s" % what)
        self.assertEqual(a.recv_data(timeout=10).text, "still %s" % what, what)
        self.assertEqual(b.recv_data(timeout=10).text, "still %s" % what, what)
        # max_message_bytes is still 1000 (each broken file says 5000 before its error).
        c = self.connect(d, "/limit")
        c.send_binary(b"x" * 1001)
        self.assertServerCloses(c, 1009, msg=what)

    def test_broken_configs_keep_the_running_one(self):
        d = self.start(self.GOOD)
        a, b = self.connect(d, "/hup"), self.connect(d, "/hup")
        path = d.config_path
        head = '[rooms]\necho = false\n[limits]\nmax_message_bytes = 5000\n'
        cases = [
            ("idle_timeout not above ping_interval",
             head + '[timeouts]\nping_interval = "30s"\nidle_timeout = "10s"\n',
             "timeouts.idle_timeout"),
            ("send_queue_bytes below max_message_bytes + 14",
             head + 'send_queue_bytes = 4000\n', "limits.send_queue_bytes"),
            ("unknown key", head + 'max_mesage_bytes = 7\n', "limits.max_mesage_bytes"),
            ("not TOML", head + '[[[ oops\n', None),
            ("file removed", None, None),
        ]
        for what, text, key in cases:
            with self.subTest(what):
                n_err = len(err_lines(d))
                if text is None:
                    os.unlink(path)
                else:
                    d.write_config(text)
                d.send_signal(signal.SIGHUP)
                d.wait_notify("RELOADING=1", timeout=30)
                d.wait_notify("READY=1", timeout=30)
                errs = harness.wait_for(lambda: err_lines(d)[n_err:], 30,
                                        "%s: an err line" % what)
                self.assertIn(path, errs[0], what)
                self.assertIn("reload failed", errs[0], what)
                if key:
                    self.assertIn(key, errs[0], what)
                self.assertTrue(d.alive())
                self.check_old_config(d, a, b, what)
        # A good file again: taken, and the old connections still work.
        d.update_config({"rooms": {"echo": False}, "limits": {"max_message_bytes": 5000}})
        d.send_signal(signal.SIGHUP)
        d.wait_notify("READY=1", timeout=30)
        self.assertIn("configuration reloaded", d.stderr())    # logged before READY=1
        a.send_binary(b"y" * 1001)
        self.assertEqual(b.recv_data(timeout=10).data, b"y" * 1001)
        a.expect_silence(0.3)          # echo off now
        self.assertEqual(d.stop(), 0)


# ---------------------------------------------------------------- SIGTERM under load
class ShutdownUnderLoadTest(FaultCase):

    CLIENTS = 300
    ROOMS = 10
    SHUTDOWN_S = 3.0

    def run_load(self, silent=0, stuck=0):
        """CLIENTS clients in ROOMS rooms (every third over wss); one in ten sends all the time.
        The first `stuck` never read (4 KiB buffers, in the rooms of the big senders); the next
        `silent` read but never answer the close. SIGTERM once all are connected and traffic
        has flowed for 2 s. Returns (exit code, seconds to exit, per-client results)."""
        d = self.start_two({"timeouts": {"shutdown_timeout": "%ds" % self.SHUTDOWN_S,
                                         "close_timeout": "30s", "idle_timeout": "60s"},
                            "limits": {"message_rate": 0, "max_connections_per_ip": 0,
                                       "max_message_bytes": 65536, "send_queue_bytes": 1 * MiB}})
        ctx = PKI.client_context()
        results = [None] * self.CLIENTS

        async def client(i, connected, go):
            tls = i % 3 == 0
            role = "stuck" if i < stuck else "silent" if i < stuck + silent else "answer"
            room = "/load%d" % (i % self.ROOMS)
            res = {"role": role, "tls": tls, "close": None, "after": None, "msgs": 0,
                   "error": None}
            results[i] = res
            c = await soak.Conn.open("127.0.0.1", d.ports["tls" if tls else "plain"],
                                     ctx if tls else None, src="127.0.0.%d" % (2 + i % 100),
                                     rcvbuf=4096 if role == "stuck" else None)
            try:
                await c.upgrade(room)
                connected.release()
                if role == "stuck":
                    await asyncio.sleep(self.SHUTDOWN_S + 10)
                    return
                sender = None
                if (i // self.ROOMS) % 10 == 1:        # 3 senders in each room
                    sender = asyncio.create_task(self.send_loop(c, i, go))
                last = {}
                try:
                    async with asyncio.timeout(self.SHUTDOWN_S + 20):
                        while res["close"] is None:
                            for op, data in await c.next_messages():
                                if op == soak.OP_CLOSE:
                                    res["close"] = soak.close_code_of(data)
                                    break
                                if op in (soak.OP_TEXT, soak.OP_BINARY):
                                    sid, seq, _ts = soak.check_good_payload(op, data)
                                    if sid in last and seq != last[sid] + 1:
                                        res["error"] = "from %d: seq %d after %d" % (
                                            sid, seq, last[sid])
                                    last[sid] = seq
                                    res["msgs"] += 1
                finally:
                    if sender:
                        sender.cancel()
                if role == "answer":
                    c.write(soak.frame(soak.OP_CLOSE, struct.pack("!H", res["close"])))
                res["after"], _n = await c.read_to_eof(self.SHUTDOWN_S + 10)
            except soak.Closed as e:
                res["close"] = res["close"] or "%s before a close frame" % e.how
            except (TimeoutError, soak.ProtocolError, OSError, ssl.SSLError) as e:
                res["error"] = "%s: %s" % (type(e).__name__, e)
            finally:
                c.abort()

        async def main():
            connected = asyncio.Semaphore(0)
            go = asyncio.Event()
            tasks = [asyncio.create_task(client(i, connected, go)) for i in range(self.CLIENTS)]
            async with asyncio.timeout(60):
                for _ in range(self.CLIENTS):
                    await connected.acquire()
            go.set()
            # Traffic flows for 2 s, and on (bounded) until the readers have the messages
            # check() requires: a slow (sanitizer) build on a loaded machine needs longer.
            t_go = time.monotonic()
            while (time.monotonic() - t_go < 2.0 or
                   sum(r["msgs"] for r in results if r) <= self.CLIENTS * 10):
                if time.monotonic() - t_go > 60:
                    raise AssertionError("timed out after 60s waiting for %d messages to reach "
                                         "the readers before the SIGTERM; last: %d" % (
                                             self.CLIENTS * 10,
                                             sum(r["msgs"] for r in results if r)))
                await asyncio.sleep(0.05)
            t0 = time.monotonic()
            d.send_signal(signal.SIGTERM)
            rc = None
            while time.monotonic() - t0 < self.SHUTDOWN_S + 10:
                rc = d.proc.poll()
                if rc is not None:
                    break
                await asyncio.sleep(0.01)
            elapsed = time.monotonic() - t0
            await asyncio.wait(tasks, timeout=30)
            return rc, elapsed

        rc, elapsed = asyncio.run(main())
        d.returncode = rc
        return d, rc, elapsed, results

    @staticmethod
    async def send_loop(c, i, go):
        """A good sender: sequence-numbered messages of 20 B-4 KiB, ~20 per second."""
        await go.wait()
        seq = 0
        while True:
            op, payload = soak.good_payload(i, seq, time.monotonic(), (seq * 977) % 4096 + 20)
            c.write(soak.frame(op, payload))
            seq += 1
            await c.drain(10.0)
            await asyncio.sleep(0.05)

    def check(self, d, rc, elapsed, results):
        readers = [r for r in results if r and r["role"] != "stuck"]
        self.assertEqual(len([r for r in results if r]), self.CLIENTS)
        bad = [(i, r) for i, r in enumerate(results) if r["role"] != "stuck" and (
            r["close"] != 1001 or r["error"] or
            (r["role"] == "answer" and r["after"] != "eof"))]
        self.assertFalse(bad, "%d of %d reading clients did not get close 1001 then a clean EOF "
                         "(after answering), e.g. %r" % (len(bad), len(readers), bad[:5]))
        self.assertGreater(sum(r["msgs"] for r in readers), self.CLIENTS * 10,
                           "hardly any traffic before the SIGTERM")
        self.assertIsNotNone(rc, "wsrelay still running %.1f s after SIGTERM" % elapsed)
        self.assertEqual(rc, 0)
        self.assertNoErrLines(d)

    def test_sigterm_under_load_all_answer(self):
        d, rc, elapsed, results = self.run_load()
        self.check(d, rc, elapsed, results)
        # Every peer answered: no reason to wait for shutdown_timeout.
        self.assertLess(elapsed, self.SHUTDOWN_S, "exit took %.2f s" % elapsed)
        print("\nSIGTERM, %d clients all answering: exit 0 after %.2f s" % (self.CLIENTS,
                                                                          elapsed))

    def test_sigterm_under_load_with_silent_and_stuck_peers(self):
        d, rc, elapsed, results = self.run_load(silent=30, stuck=10)
        self.check(d, rc, elapsed, results)
        self.assertLessEqual(elapsed, self.SHUTDOWN_S + 2.0, "exit took %.2f s" % elapsed)
        self.assertIn("shutdown_timeout reached", d.stderr())
        print("\nSIGTERM, %d clients, 30 never answering, 10 never reading: exit 0 after %.2f s"
              % (self.CLIENTS, elapsed))


# ---------------------------------------------------------------- the notify socket
class NotifyStallTest(FaultCase):

    def test_unread_notify_socket_does_not_freeze_the_relay(self):
        # The service manager reads NOTIFY_SOCKET; if it stops (busy, frozen), datagrams queue
        # up to net.unix.max_dgram_qlen (10) and a blocking sendmsg() then waits for it. The
        # relay is one thread: sd_notify must not be able to stop it. Each SIGHUP sends two
        # datagrams (RELOADING=1, READY=1) that nobody reads here.
        d = self.start()
        a, b = self.connect(d, "/n"), self.connect(d, "/n")
        try:
            for i in range(8):
                # One at a time (signals pending together are handled once): each reload logs
                # a line between its RELOADING=1 and READY=1.
                d.send_signal(signal.SIGHUP)
                harness.wait_for(lambda: d.stderr().count("configuration reloaded from"), 30,
                                 "reload %d of 8 to be logged" % (i + 1), until=lambda n: n > i)
            r = d.get("/healthz", timeout=3)
            a.send_text("still relaying")
            got = b.recv_data(timeout=3).text
        except (wsclient.WSError, AssertionError) as e:
            self.fail("wsrelay stopped serving once its notify socket was full (%s); stack:\n%s"
                      % (e, soak.diagnose(d.pid)))
        self.assertEqual(r.status, 200)
        self.assertEqual(got, "still relaying")


if __name__ == "__main__":
    unittest.main()
