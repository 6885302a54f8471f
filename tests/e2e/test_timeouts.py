# SPDX-License-Identifier: Apache-2.0
"""Timeouts with short durations: idle (ping, then close 1001), handshake (slowloris -> 408, or
a silent close), keep-alive wait, and close_timeout (a peer that ignores our close is dropped).
Bounds are generous: at least 0.8x the configured time, at most the time + 3 s."""

import time
import unittest

import harness
import wsclient
from wsclient import OP_PING, OP_TEXT

SLACK = 3.0


class TimeoutTest(harness.DaemonTestCase):

    def assertWithin(self, elapsed, nominal, what):
        self.assertGreaterEqual(elapsed, 0.8 * nominal, "%s after %.2fs, expected ~%.2fs" % (
            what, elapsed, nominal))
        self.assertLessEqual(elapsed, nominal + SLACK, "%s after %.2fs, expected ~%.2fs" % (
            what, elapsed, nominal))

    def test_idle_ping_then_close_1001(self):
        d = self.start({"timeouts": {"ping_interval": "400ms", "idle_timeout": "1500ms",
                                     "close_timeout": "1s"}})
        c = self.connect(d, "/idle")
        t0 = time.monotonic()
        f = c.recv_frame(timeout=0.4 + SLACK)
        t_ping = time.monotonic() - t0
        self.assertEqual(f.opcode, OP_PING, f)
        self.assertWithin(t_ping, 0.4, "first ping")
        # We never answer: after idle_timeout of silence from us the server closes with 1001.
        frames = []
        while True:
            f = c.recv_frame(timeout=1.5 + SLACK)
            if f.opcode != OP_PING:
                break
            frames.append(f)
        t_close = time.monotonic() - t0
        self.assertEqual(f.opcode, wsclient.OP_CLOSE, f)
        self.assertEqual(f.close_code, 1001)
        self.assertWithin(t_close, 1.5, "idle close")
        # We do not answer the close either: the server closes TCP after close_timeout at most.
        t1 = time.monotonic()
        c.wait_eof(timeout=1.0 + SLACK)
        self.assertLessEqual(time.monotonic() - t1, 1.0 + SLACK)

    def test_pong_keeps_connection_alive(self):
        d = self.start({"timeouts": {"ping_interval": "300ms", "idle_timeout": "800ms"}})
        c = self.connect(d, "/alive")
        end = time.monotonic() + 2.5
        pings = 0
        while time.monotonic() < end:
            try:
                m = c.recv_message(timeout=0.2, auto_pong=True, return_control=True)
            except wsclient.Timeout:
                continue
            self.assertNotEqual(m.opcode, wsclient.OP_CLOSE,
                                "closed although every ping was answered: %r" % m.close_code)
            if m.opcode == OP_PING:
                pings += 1
        self.assertGreaterEqual(pings, 2)
        c.send_text("still open")
        self.assertEqual(c.recv_data(auto_pong=True).text, "still open")

    def test_client_traffic_keeps_connection_alive(self):
        d = self.start({"timeouts": {"ping_interval": "300ms", "idle_timeout": "800ms"}})
        c = self.connect(d, "/chatty")
        end = time.monotonic() + 2.5
        i = 0
        while time.monotonic() < end:
            c.send_text("m%d" % i)
            m = c.recv_data(timeout=2)   # pings are skipped (not answered)
            self.assertEqual(m.text, "m%d" % i)
            i += 1
            time.sleep(0.1)

    def test_slowloris_half_request_gets_408(self):
        d = self.start({"timeouts": {"handshake_timeout": "700ms"}})
        c = self.track(d.raw())
        t0 = time.monotonic()
        c.send_raw(b"GET /room HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        r = wsclient.read_http_response(c, timeout=0.7 + SLACK)
        self.assertEqual(r.status, 408)
        self.assertWithin(time.monotonic() - t0, 0.7, "408")
        c.wait_eof(timeout=SLACK)

    def test_slowloris_trickle_does_not_extend_deadline(self):
        d = self.start({"timeouts": {"handshake_timeout": "800ms"}})
        c = self.track(d.raw())
        t0 = time.monotonic()
        req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        got = b""
        for i in range(len(req)):
            try:
                c.send_raw(req[i:i + 1])
            except wsclient.ConnectionClosed:
                break
            time.sleep(0.05)
            try:
                got = c.recv_some(timeout=0.001)
                break
            except wsclient.Timeout:
                pass
            except wsclient.ConnectionClosed:
                break
            if time.monotonic() - t0 > 0.8 + SLACK:
                break
        elapsed = time.monotonic() - t0
        self.assertLessEqual(elapsed, 0.8 + SLACK, "a trickled request kept the connection open")
        self.assertGreaterEqual(elapsed, 0.8 * 0.8)
        if got:
            self.assertTrue(got.startswith(b"HTTP/1.1 408"), got[:60])

    def test_silent_connection_closed_without_response(self):
        d = self.start({"timeouts": {"handshake_timeout": "500ms"}})
        c = self.track(d.raw())
        t0 = time.monotonic()
        junk = c.wait_eof(timeout=0.5 + SLACK)
        self.assertWithin(time.monotonic() - t0, 0.5, "silent connection close")
        # Nothing arrived, so no 408 is owed (a 408 would be tolerable but is not expected).
        self.assertIn(junk[:12], (b"", b"HTTP/1.1 408"))

    def test_keepalive_connection_waits_handshake_timeout(self):
        d = self.start({"timeouts": {"handshake_timeout": "600ms"}})
        c = self.track(d.raw())
        c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        r = wsclient.read_http_response(c)
        self.assertEqual(r.status, 200)
        t0 = time.monotonic()
        c.wait_eof(timeout=0.6 + SLACK)
        self.assertWithin(time.monotonic() - t0, 0.6, "keep-alive idle close")

    def test_handshake_timeout_does_not_hit_open_websocket(self):
        d = self.start({"timeouts": {"handshake_timeout": "300ms"}})
        c = self.connect(d, "/ws")
        time.sleep(1.0)
        c.send_text("ok")
        self.assertEqual(c.recv_data().text, "ok")

    def test_close_timeout_drops_unresponsive_peer(self):
        d = self.start({"timeouts": {"close_timeout": "500ms"}})
        c = self.connect(d, "/ct")
        c.send_frame(OP_TEXT, b"x", rsv=1)       # protocol error: server sends close 1002
        t0 = time.monotonic()
        code, _r, _s = c.expect_close()
        self.assertEqual(code, 1002)
        # We neither answer nor close; the server must drop us after close_timeout.
        c.wait_eof(timeout=0.5 + SLACK)
        self.assertLessEqual(time.monotonic() - t0, 0.5 + SLACK)

    def test_close_timeout_after_idle_close(self):
        d = self.start({"timeouts": {"ping_interval": "200ms", "idle_timeout": "500ms",
                                     "close_timeout": "700ms"}})
        c = self.connect(d, "/ct2")
        code, _r, _s = c.expect_close(timeout=0.5 + SLACK)
        self.assertEqual(code, 1001)
        t0 = time.monotonic()
        c.wait_eof(timeout=0.7 + SLACK)
        self.assertLessEqual(time.monotonic() - t0, 0.7 + SLACK)


if __name__ == "__main__":
    unittest.main()
