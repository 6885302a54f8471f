# SPDX-License-Identifier: Apache-2.0
"""Limits: max_connections (503), rooms.max_members and per-room max_members (503),
allowed_origins (403), max_header_bytes / max_header_count (431)."""

import time
import unittest

import harness
import wsclient


def expect_refused(testcase, d, path, status, origin=None, headers=None):
    """Open a WebSocket that must be refused with `status`, then closed by the server."""
    c = wsclient.WSClient(d.host, d.port, handshake=False)
    try:
        try:
            c.handshake(path, origin=origin, headers=headers)
        except wsclient.HandshakeError as e:
            testcase.assertEqual(e.status, status, "%s: %s" % (path, e))
            c.wait_eof(3.0)
            return e
        except wsclient.ConnectionClosed:
            testcase.fail("%s: connection closed without a %d response" % (path, status))
        testcase.fail("%s: upgrade succeeded, expected %d" % (path, status))
    finally:
        c.abort()


def retry_connect(d, path, timeout=30.0, **kw):
    """A slot was just freed; the server may need a moment to notice. Bounded retries."""
    return harness.wait_for(lambda: d.client(path, **kw), timeout,
                            "the freed slot: an upgrade to %s accepted" % path,
                            ignore=(wsclient.HandshakeError, wsclient.ConnectionClosed))


def admit_all(d, path, n):
    """n clients connected at once; or, if one is refused, all dropped again and a note on how
    many got in."""
    cs = []
    try:
        for _ in range(n):
            cs.append(d.client(path))
        return cs
    except (wsclient.HandshakeError, wsclient.ConnectionClosed) as e:
        for c in cs:
            c.abort()
        return "%d of %d admitted: %s" % (len(cs), n, e)


class LimitsTest(harness.DaemonTestCase):

    def test_max_connections(self):
        d = self.start({"limits": {"max_connections": 5}})
        cs = [self.connect(d, "/c%d" % i) for i in range(5)]
        expect_refused(self, d, "/c9", 503)
        # Plain HTTP connections count as well.
        r = d.get("/healthz")
        self.assertEqual(r.status, 503)
        # The five are unaffected.
        for i, c in enumerate(cs):
            c.send_text("m%d" % i)
            self.assertEqual(c.recv_data().text, "m%d" % i)
        # Freeing one slot admits a new client.
        self.assertEqual(cs[0].close()[0], 1000)
        c = retry_connect(d, "/c0")
        self.track(c)
        c.send_text("in")
        self.assertEqual(c.recv_data().text, "in")
        expect_refused(self, d, "/c9", 503)

    def test_max_connections_many_refusals_then_recovery(self):
        d = self.start({"limits": {"max_connections": 3}})
        cs = [self.connect(d, "/x") for _ in range(3)]
        for _ in range(30):
            expect_refused(self, d, "/x", 503)
        for c in cs:
            c.abort(rst=True)
        c = retry_connect(d, "/x")
        self.track(c)
        self.assertTrue(d.alive())

    def test_max_members(self):
        d = self.start({"rooms": {"max_members": 2}})
        a, b = self.connect(d, "/full"), self.connect(d, "/full")
        expect_refused(self, d, "/full", 503)
        expect_refused(self, d, "/full?other=query", 503)   # same room
        other = self.connect(d, "/other")                    # other rooms are not affected
        other.send_text("o")
        self.assertEqual(other.recv_data().text, "o")
        a.send_text("still two")
        self.assertEqual(b.recv_data().text, "still two")
        self.assertEqual(a.close()[0], 1000)
        c = retry_connect(d, "/full")
        self.track(c)
        c.send_text("three")
        self.assertEqual(b.recv_data().text, "three")

    def test_max_members_per_room_override(self):
        d = self.start({"rooms": {"max_members": 0},
                        "room": [{"path": "/tiny", "max_members": 1},
                                 {"path": "/roomy", "max_members": 3}]})
        self.connect(d, "/tiny")
        expect_refused(self, d, "/tiny", 503)
        for _ in range(3):
            self.connect(d, "/roomy")
        expect_refused(self, d, "/roomy", 503)
        for _ in range(10):
            self.connect(d, "/unlimited")

    def test_allowed_origins(self):
        d = self.start({"limits": {"allowed_origins": ["https://good.example",
                                                       "http://also.example:8080"]}})
        for o in ("https://good.example", "http://also.example:8080"):
            c = self.connect(d, "/o", origin=o)
            c.send_text("hi")
            self.assertEqual(c.recv_data().text, "hi")
        expect_refused(self, d, "/o", 403, origin="https://evil.example")
        expect_refused(self, d, "/o", 403, origin="https://good.example.evil.example")
        expect_refused(self, d, "/o", 403, origin="http://good.example")
        expect_refused(self, d, "/o", 403, origin="null")
        expect_refused(self, d, "/o", 403)   # no Origin at all

    def test_no_allowed_origins_means_any(self):
        d = self.start()
        for o in (None, "https://anything.example", "null"):
            c = self.connect(d, "/any", origin=o)
            c.send_text("x")
            self.assertEqual(c.recv_data().text, "x")

    def churn(self, d, path, rounds):
        """Connections ending every way we can think of; each must give back its slot."""
        for i in range(rounds):
            kind = i % 9
            if kind == 0:                       # clean close handshake
                c = d.client(path)
                c.close()
            elif kind == 1:                     # RST, no close frame
                d.client(path).abort(rst=True)
            elif kind == 2:                     # FIN, no close frame
                d.client(path).abort()
            elif kind == 3:                     # protocol error: server closes 1002
                c = d.client(path)
                c.send_frame(wsclient.OP_TEXT, b"x", rsv=2)
                c.expect_close()
                c.answer_close(1002)
                c.wait_eof(3)
                c.abort()
            elif kind == 4:                     # bad handshake: 400
                c = d.raw()
                c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                           b"Sec-WebSocket-Key: bad\r\n\r\n")
                c.wait_eof(3)
                c.abort()
            elif kind == 5:                     # plain HTTP request, keep-alive, then FIN
                c = d.raw()
                c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                wsclient.read_http_response(c)
                c.abort()
            elif kind == 6:                     # half a request, then RST
                c = d.raw()
                c.send_raw(b"GET / HTTP/1.1\r\nHo")
                c.abort(rst=True)
            elif kind == 7:                     # connect and leave without a byte
                d.raw().abort()
            else:                               # close with unread data after it
                c = d.client(path)
                c.send_raw(wsclient.encode_frame(wsclient.OP_CLOSE, b"\x03\xe8") +
                           wsclient.encode_frame(wsclient.OP_TEXT, b"junk" * 100))
                c.abort(rst=True)

    def test_connection_count_survives_churn(self):
        d = self.start({"limits": {"max_connections": 10}})
        self.churn(d, "/churn", 180)
        # Every slot must come back: 10 at once are admitted (the server may need a moment
        # to notice the last disconnects).
        cs = harness.wait_for(lambda: admit_all(d, "/after", 10), 30,
                              "max_connections=10 clients admitted at once after churn",
                              until=lambda r: isinstance(r, list))
        for c in cs:
            self.track(c)
        expect_refused(self, d, "/after", 503)

    def test_member_count_survives_churn(self):
        d = self.start({"rooms": {"max_members": 3}})
        self.churn(d, "/members", 90)
        cs = harness.wait_for(lambda: admit_all(d, "/members", 3), 30,
                              "max_members=3 clients admitted at once after churn",
                              until=lambda r: isinstance(r, list))
        for c in cs:
            self.track(c)
        expect_refused(self, d, "/members", 503)

    def test_header_limits(self):
        d = self.start({"limits": {"max_header_bytes": 1024, "max_header_count": 10}})

        def request(n_extra, pad_to=None):
            lines = ["GET /healthz HTTP/1.1", "Host: t"]
            lines += ["X-H%d: v" % i for i in range(n_extra)]
            if pad_to is not None:
                base = len("\r\n".join(lines)) + len("\r\nX-Pad: ") + 4
                lines.append("X-Pad: " + "p" * (pad_to - base))
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
            if pad_to is not None:
                assert len(raw) == pad_to, len(raw)
            return raw

        self.assertEqual(d.http(request(9)).status, 200)        # 10 header lines: allowed
        self.assertEqual(d.http(request(10)).status, 431)       # 11 header lines
        self.assertEqual(d.http(request(0, pad_to=1000)).status, 200)
        self.assertEqual(d.http(request(0, pad_to=1100)).status, 431)
        # The same limits guard the WebSocket upgrade.
        expect_refused(self, d, "/ws", 431, headers={"X-Big": "b" * 1100})
        expect_refused(self, d, "/ws", 431, headers={"X-%d" % i: "1" for i in range(12)})
        # A header block that never ends is cut off at the limit, not buffered forever.
        c = self.track(d.raw())
        c.send_raw(b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: " + b"e" * 4000)
        r = wsclient.read_http_response(c)
        self.assertEqual(r.status, 431)
        c.wait_eof(3.0)


if __name__ == "__main__":
    unittest.main()


def upgrade_from(d, source_ip, path="/ip"):
    """A raw upgrade request from `source_ip` (another loopback address); returns the status."""
    import base64
    import os
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.bind((source_ip, 0))
        s.connect((d.host, d.port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        return int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else None, s
    except Exception:
        s.close()
        raise


class AbuseLimitsTest(harness.DaemonTestCase):
    """max_connections_per_ip and the per-connection message rate (token bucket)."""

    def test_max_connections_per_ip(self):
        d = self.start({"limits": {"max_connections_per_ip": 3}})
        cs = [self.connect(d, "/ip") for _ in range(3)]
        expect_refused(self, d, "/ip", 503)
        # Another client address is not affected by 127.0.0.1's count.
        status, s = upgrade_from(d, "127.0.0.2")
        s.close()
        self.assertEqual(status, 101)
        # Closing one of the three frees a slot for 127.0.0.1 again.
        self.assertEqual(cs[0].close()[0], 1000)
        c = self.track(retry_connect(d, "/ip"))
        c.send_text("back")
        self.assertEqual(c.recv_data().text, "back")
        self.assertIn("max_connections_per_ip (3) reached", d.stderr())

    def test_message_rate_close(self):
        d = self.start({"limits": {"message_rate": 10, "message_burst": 5}})
        c = self.connect(d, "/rate")
        for i in range(20):
            c.send_text("m%d" % i)
        got = []
        while True:
            m = c.recv_message(timeout=5)
            if m.is_close:
                self.assertEqual(m.close_code, 1008)
                self.assertEqual(m.close_reason, b"message rate exceeded")
                break
            got.append(m.text)
        # The burst passed, in order; the rest was not relayed.
        self.assertGreaterEqual(len(got), 5)
        self.assertLess(len(got), 20)
        self.assertEqual(got, ["m%d" % i for i in range(len(got))])
        self.assertIn("message_rate (10/s) exceeded: closing 1008", d.stderr())

    def test_message_rate_drop_keeps_the_connection(self):
        d = self.start({"limits": {"message_rate": 10, "message_burst": 5, "rate_limit_action": "drop"}})
        c = self.connect(d, "/rate")
        other = self.connect(d, "/rate")
        for i in range(20):
            c.send_text("m%d" % i)
        got = [other.recv_data(timeout=5).text for _ in range(5)]
        self.assertEqual(got, ["m%d" % i for i in range(5)])
        # After a pause the bucket has refilled: the connection is still open and relays again.
        time.sleep(0.6)
        c.send_text("later")
        while True:
            t = other.recv_data(timeout=5).text
            if t == "later":
                break
            self.assertRegex(t, r"^m\d+$")  # a few refilled tokens may have let some through
        self.assertIn("message_rate (10/s) exceeded: message dropped", d.stderr())

    def test_rate_limit_off(self):
        d = self.start({"limits": {"message_rate": 0}})
        c = self.connect(d, "/fast")
        for i in range(3000):
            c.send_text("x")
        for i in range(3000):
            self.assertEqual(c.recv_data(timeout=10).text, "x")
