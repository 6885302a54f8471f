# SPDX-License-Identifier: Apache-2.0
"""Signals: SIGTERM/SIGINT close every peer with 1001 and exit 0 within shutdown_timeout; SIGPIPE
never kills the daemon; SIGHUP reloads the config while connections stay."""

import re
import signal
import socket
import struct
import threading
import time
import unittest

import harness
import wsclient
from wsclient import OP_BINARY


class ShutdownTest(harness.DaemonTestCase):

    def shutdown(self, sig, answer):
        d = self.start({"timeouts": {"shutdown_timeout": "3s", "close_timeout": "2s"}})
        clients = [self.connect(d, "/room%d" % (i % 4)) for i in range(20)]
        # Make sure every client is registered before the signal (a round trip each).
        for i, c in enumerate(clients):
            c.send_text("hi %d" % i)
        for i, c in enumerate(clients):
            for _ in range(len(clients)):   # its room's messages; bounded
                if c.recv_data().text == "hi %d" % i:
                    break
        t0 = time.monotonic()
        d.send_signal(sig)
        codes = []
        for c in clients:
            try:
                code, _reason, _skipped = c.expect_close(timeout=5)
            except wsclient.ConnectionClosed:
                code = "EOF without close frame"
            except wsclient.Timeout:
                code = "no close frame within 5s"
            codes.append(code)
            if answer and isinstance(code, int):
                c.answer_close(code)
        self.assertEqual(codes, [1001] * len(clients))
        for c in clients:
            c.wait_eof(timeout=5)
        rc = d.wait(timeout=3 + 3)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(rc, "wsrelay still running %.1fs after %s" % (
            elapsed, signal.Signals(sig).name))
        self.assertEqual(rc, 0, "exit status after %s" % signal.Signals(sig).name)
        self.assertLessEqual(elapsed, 3 + 2.0)
        if answer:
            # Everyone answered: no reason to wait for the full shutdown_timeout.
            self.assertLess(elapsed, 2.5, "exit took %.2fs although all peers closed" % elapsed)
        return d

    def test_sigterm_closes_all_with_1001_and_exits_0(self):
        self.shutdown(signal.SIGTERM, answer=True)

    def test_sigint_closes_all_with_1001_and_exits_0(self):
        self.shutdown(signal.SIGINT, answer=True)

    def test_sigterm_with_unresponsive_peers_exits_within_shutdown_timeout(self):
        self.shutdown(signal.SIGTERM, answer=False)

    def test_sigterm_idle_daemon_exits_0_quickly(self):
        d = self.start()
        t0 = time.monotonic()
        self.assertEqual(d.stop(signal.SIGTERM, timeout=10), 0)
        self.assertLess(time.monotonic() - t0, 2.0)

    def test_sigterm_with_open_http_keepalive_and_half_request(self):
        d = self.start({"timeouts": {"shutdown_timeout": "2s"}})
        k = self.track(d.raw())
        k.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        wsclient.read_http_response(k)
        h = self.track(d.raw())
        h.send_raw(b"GET / HTTP/1.1\r\nHost")
        # The half request must be the daemon's (read, waiting for the rest) when SIGTERM comes.
        harness.wait_for(lambda: harness.tcp_queues(h), 30,
                         "wsrelay to read the half request (TCP queues (unacked, unread))",
                         until=lambda q: q == (0, 0))
        t0 = time.monotonic()
        rc = d.stop(signal.SIGTERM, timeout=2 + 3)
        self.assertEqual(rc, 0)
        self.assertLessEqual(time.monotonic() - t0, 2 + 2.0)


class NotifyTest(harness.DaemonTestCase):
    """sd_notify (STYLE.md): READY=1 once listening (the harness waits for it), RELOADING=1 and
    READY=1 around a reload, STOPPING=1 on shutdown."""

    def test_ready_reloading_stopping(self):
        d = self.start()
        self.assertTrue(any("READY=1" in m.split("\n") for m in d.notifications))
        d.send_signal(signal.SIGHUP)
        m = d.wait_notify("RELOADING=1", timeout=30)
        self.assertRegex(m, r"(^|\n)MONOTONIC_USEC=\d+", "RELOADING=1 without MONOTONIC_USEC")
        d.wait_notify("READY=1", timeout=30)
        d.send_signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1", timeout=30)
        self.assertEqual(d.wait(10), 0)


def wait_closed(d, ports, what):
    """Wait until the daemon (at log_level debug) has logged the close of the connection from
    each local port in `ports` -- it has handled their resets -- or until it died (the caller
    checks alive()). The wait's last value is the ports still missing."""
    def missing():
        log = d.stderr()
        return [p for p in ports if not re.search(r"peer=127\.0\.0\.1:%d .*closed" % p, log)]

    harness.wait_for(missing, 30, "wsrelay to log the close of " + what,
                     until=lambda m: not m or not d.alive())


class SigpipeTest(harness.DaemonTestCase):

    def test_reset_mid_transfer_does_not_kill(self):
        d = self.start({"limits": {"max_message_bytes": 2 << 20, "send_queue_bytes": 16 << 20},
                        "server": {"log_level": "debug"}})
        sender = self.connect(d, "/pipe", timeout=10)
        ports = []
        big = b"\xab" * (1 << 20)
        for round_ in range(6):
            victims = [self.connect(d, "/pipe", rcvbuf=4096) for _ in range(3)]
            # Read a little so the transfer is under way, then reset.
            for v in victims:
                v.send_ping(b"x")
            for _ in range(4):
                sender.send_frame(OP_BINARY, big)
            for v in victims:
                try:
                    v.recv_exact(1000, timeout=5)
                except wsclient.WSError:
                    pass
                ports.append(v.sock.getsockname()[1])
                v.abort(rst=True)
            # The sender is also a member (echo): drain its copies.
            for _ in range(4):
                self.assertEqual(len(sender.recv_data(timeout=10).data), len(big))
            self.assertTrue(d.alive(), "wsrelay died in round %d" % round_)
        # Also: a client that resets with unread data pending on the server side.
        for _ in range(5):
            c = d.raw()
            c.send_raw(b"GET /?" + b"q" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
            ports.append(c.sock.getsockname()[1])
            c.abort(rst=True)
        wait_closed(d, ports, "the %d victims and HTTP clients that reset" % len(ports))
        self.assertTrue(d.alive())
        self.assertEqual(d.get("/healthz").body, b"ok\n")
        sender.send_text("alive")
        self.assertEqual(sender.recv_data().text, "alive")
        self.assertEqual(d.stop(), 0)

    def test_http_client_resets_while_page_is_sent(self):
        d = self.start({"server": {"log_level": "debug"}})
        ports = []
        for _ in range(20):
            s = socket.create_connection((d.host, d.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ports.append(s.getsockname()[1])
            s.close()
        wait_closed(d, ports, "the 20 HTTP clients that reset")
        self.assertTrue(d.alive())
        self.assertEqual(d.get("/healthz").status, 200)


class ReloadTest(harness.DaemonTestCase):

    def reload(self, d):
        """SIGHUP, then wait until the reload is done: READY=1 follows RELOADING=1 once the new
        configuration is in force, or once a broken one has been refused and logged."""
        d.send_signal(signal.SIGHUP)
        d.wait_notify("RELOADING=1", timeout=30)
        d.wait_notify("READY=1", timeout=30)

    def test_sighup_keeps_connections_and_applies_echo(self):
        d = self.start({"rooms": {"echo": True}})
        a, b = self.connect(d, "/hup"), self.connect(d, "/hup")
        a.send_text("before")
        self.assertEqual(a.recv_data().text, "before")
        self.assertEqual(b.recv_data().text, "before")
        d.update_config({"rooms": {"echo": False}})
        self.reload(d)
        self.assertEqual(d.stderr().count("configuration reloaded from"), 1)
        # Still connected, both directions.
        a.send_ping(b"after-hup")
        m = a.recv_message(return_control=True)
        self.assertEqual((m.opcode, m.data), (wsclient.OP_PONG, b"after-hup"))
        a.send_text("after")
        self.assertEqual(b.recv_data().text, "after")
        a.expect_silence(0.5)     # echo now off
        # And back on.
        d.update_config({"rooms": {"echo": True}})
        self.reload(d)
        self.assertEqual(d.stderr().count("configuration reloaded from"), 2)
        b.send_text("again")
        self.assertEqual(b.recv_data().text, "again")
        self.assertEqual(a.recv_data().text, "again")
        # New clients work after reloads too.
        c = self.connect(d, "/hup")
        c.send_text("new")
        self.assertEqual(c.recv_data().text, "new")
        self.assertEqual(d.stop(), 0)

    def test_sighup_with_broken_config_keeps_running(self):
        d = self.start({"rooms": {"echo": True}})
        a = self.connect(d, "/bad-hup")
        d.write_config("[rooms]\necho = \"not a bool\"\n")
        self.reload(d)
        self.assertIn("reload failed", d.stderr())
        self.assertTrue(d.alive(), "a bad config on reload must not stop the daemon")
        a.send_text("x")
        self.assertEqual(a.recv_data().text, "x")   # old config (echo on) still in force
        self.assertEqual(d.stop(), 0)

    def test_many_sighups_under_traffic(self):
        d = self.start()
        a, b = self.connect(d, "/hups"), self.connect(d, "/hups")
        stop = threading.Event()

        def hup():
            for _ in range(20):
                if stop.is_set():
                    return
                d.send_signal(signal.SIGHUP)
                time.sleep(0.02)

        t = threading.Thread(target=hup, daemon=True)
        t.start()
        try:
            for i in range(200):
                a.send_text("m%d" % i)
            for i in range(200):
                self.assertEqual(b.recv_data().text, "m%d" % i)
        finally:
            stop.set()
            t.join(5)
        self.assertTrue(d.alive())


if __name__ == "__main__":
    unittest.main()
