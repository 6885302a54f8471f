# SPDX-License-Identifier: Apache-2.0
"""Close codes: 1000 echo, 1002 (protocol errors), 1007 (invalid UTF-8), 1009 (too big); after each
the server closes TCP. (1008 slow consumer: test_backpressure; 1001 idle: test_timeouts; 1001
shutdown: test_signals.)"""

import struct
import unittest

import harness
from wsclient import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, encode_frame

# close_timeout is long here: a server that closes TCP within eof_timeout after our answer did so
# because the handshake completed, not because it gave up waiting.
CONFIG = {"timeouts": {"close_timeout": "10s"}, "limits": {"max_message_bytes": 1024,
                                                             "send_queue_bytes": 65536}}


class CloseTest(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.d = self.start(CONFIG)
        self.n = 0

    def fresh(self):
        self.n += 1
        return self.connect(self.d, "/close-%d" % self.n)

    # ---- client-initiated close ----
    def test_close_1000_is_echoed_then_tcp_closed(self):
        c = self.fresh()
        c.send_close(1000, b"bye")
        code, _reason, skipped = c.expect_close()
        self.assertEqual(code, 1000)
        self.assertEqual(skipped, [])
        c.wait_eof(3.0)

    def test_close_codes_are_echoed(self):
        for code in (1001, 1003, 1008, 1011, 3000, 3999, 4000, 4999):
            with self.subTest(code=code):
                c = self.fresh()
                c.send_close(code, b"reason")
                rcode, _r, _s = c.expect_close()
                self.assertEqual(rcode, code)
                c.wait_eof(3.0)

    def test_empty_close_answered_with_1000_or_empty(self):
        c = self.fresh()
        c.send_close(None)
        code, reason, _ = c.expect_close()
        self.assertIn(code, (1000, None))
        c.wait_eof(3.0)

    def test_no_messages_after_close(self):
        c, other = self.fresh(), None
        other = self.connect(self.d, "/close-%d" % self.n)
        c.send_raw(encode_frame(OP_CLOSE, struct.pack("!H", 1000)) +
                   encode_frame(OP_TEXT, b"after close") + encode_frame(OP_PING, b"p"))
        code, _r, skipped = c.expect_close()
        self.assertEqual((code, skipped), (1000, []))
        c.wait_eof(3.0)
        self.assertEqual(c.pongs, [])
        other.expect_silence(0.3)

    # ---- 1002 protocol errors ----
    PROTOCOL_ERRORS = {
        "rsv1": encode_frame(OP_TEXT, b"x", rsv=4),
        "rsv2": encode_frame(OP_TEXT, b"x", rsv=2),
        "rsv3 on ping": encode_frame(OP_PING, b"x", rsv=1),
        "unmasked frame": encode_frame(OP_TEXT, b"hello", mask=False),
        "reserved data opcode 3": encode_frame(3, b""),
        "reserved data opcode 7": encode_frame(7, b"abc"),
        "reserved control opcode 0xB": encode_frame(0xB, b""),
        "reserved control opcode 0xF": encode_frame(0xF, b"abc"),
        "ping payload 126": encode_frame(OP_PING, b"p" * 126),
        "pong payload 126": encode_frame(OP_PONG, b"p" * 126),
        "close payload 126": encode_frame(OP_CLOSE, struct.pack("!H", 1000) + b"r" * 124),
        "control length in 16-bit form > 125": encode_frame(OP_PING, b"p" * 200),
        "fragmented ping": encode_frame(OP_PING, b"a", fin=False) + encode_frame(OP_CONT, b"b"),
        "fragmented close": encode_frame(OP_CLOSE, struct.pack("!H", 1000), fin=False),
        "continuation without start": encode_frame(OP_CONT, b"x"),
        "continuation fin=0 without start": encode_frame(OP_CONT, b"x", fin=False),
        "text inside fragmented message": encode_frame(OP_TEXT, b"a", fin=False) +
        encode_frame(OP_TEXT, b"b"),
        "binary inside fragmented message": encode_frame(OP_BINARY, b"a", fin=False) +
        encode_frame(OP_BINARY, b"b"),
        "close payload of 1 byte": encode_frame(OP_CLOSE, b"\x03"),
        "close code 0": encode_frame(OP_CLOSE, struct.pack("!H", 0)),
        "close code 999": encode_frame(OP_CLOSE, struct.pack("!H", 999)),
        "close code 1004": encode_frame(OP_CLOSE, struct.pack("!H", 1004)),
        "close code 1005": encode_frame(OP_CLOSE, struct.pack("!H", 1005)),
        "close code 1006": encode_frame(OP_CLOSE, struct.pack("!H", 1006)),
        "close code 1015": encode_frame(OP_CLOSE, struct.pack("!H", 1015)),
        "close code 1016": encode_frame(OP_CLOSE, struct.pack("!H", 1016)),
        "close code 2000": encode_frame(OP_CLOSE, struct.pack("!H", 2000)),
        "close code 2999": encode_frame(OP_CLOSE, struct.pack("!H", 2999)),
        "close code 5000": encode_frame(OP_CLOSE, struct.pack("!H", 5000)),
        "close code 65535": encode_frame(OP_CLOSE, struct.pack("!H", 65535)),
    }

    def test_protocol_errors_close_1002(self):
        for name, wire in self.PROTOCOL_ERRORS.items():
            with self.subTest(name):
                c = self.fresh()
                c.send_raw(wire)
                _code, _reason, skipped = self.assertServerCloses(c, 1002, msg=name)
                self.assertEqual(skipped, [], name)

    def test_protocol_error_after_valid_message(self):
        # The valid message is relayed first, then the connection fails; the ping after the bad
        # frame is never answered.
        c = self.fresh()
        c.send_raw(encode_frame(OP_TEXT, b"good") + encode_frame(OP_TEXT, b"bad", rsv=2) +
                   encode_frame(OP_PING, b"nope"))
        _code, _r, skipped = self.assertServerCloses(c, 1002)
        self.assertEqual([m.data for m in skipped], [b"good"])
        self.assertEqual(c.pongs, [])

    def test_64bit_length_with_msb_set(self):
        # RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0. Refusing it as a
        # protocol error (1002) or as too big (1009) are both acceptable.
        c = self.fresh()
        c.send_raw(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + b"\x00\x00\x00\x00")
        self.assertServerCloses(c, (1002, 1009))

    # ---- 1007 invalid UTF-8 ----
    def test_invalid_utf8_text_closes_1007(self):
        cases = {
            "lone continuation": b"\x80",
            "surrogate": b"\xed\xa0\x80",
            "overlong slash": b"\xc0\xaf",
            "beyond U+10FFFF": b"\xf4\x90\x80\x80",
            "0xFF": b"abc\xff",
            "truncated at end of message": b"abc\xe2\x82",
        }
        for name, payload in cases.items():
            with self.subTest(name):
                c = self.fresh()
                c.send_frame(OP_TEXT, payload)
                _code, _r, skipped = self.assertServerCloses(c, 1007, msg=name)
                self.assertEqual(skipped, [], "invalid text must not be relayed")

    def test_invalid_utf8_across_fragments_closes_1007(self):
        c = self.fresh()
        c.send_raw(encode_frame(OP_TEXT, b"ok \xce", fin=False) + encode_frame(OP_CONT, b"A"))
        self.assertServerCloses(c, 1007)

    def test_truncated_utf8_at_end_of_fragmented_message_closes_1007(self):
        c = self.fresh()
        c.send_raw(encode_frame(OP_TEXT, b"ok", fin=False) +
                   encode_frame(OP_CONT, b"\xf0\x9d", fin=True))
        self.assertServerCloses(c, 1007)

    def test_invalid_utf8_close_reason_closes_1007(self):
        c = self.fresh()
        c.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bad \xed\xa0\x80 reason")
        self.assertServerCloses(c, 1007)

    def test_invalid_utf8_in_binary_is_fine(self):
        c = self.fresh()
        c.send_frame(OP_BINARY, b"\xff\xfe\xed\xa0\x80")
        self.assertEqual(c.recv_data().data, b"\xff\xfe\xed\xa0\x80")

    # ---- 1009 too big (max_message_bytes = 1024 here) ----
    def test_message_at_limit_is_relayed(self):
        c = self.fresh()
        c.send_frame(OP_TEXT, b"a" * 1024)
        self.assertEqual(len(c.recv_data().data), 1024)
        c.send_raw(encode_frame(OP_BINARY, b"b" * 512, fin=False) +
                   encode_frame(OP_CONT, b"b" * 512))
        self.assertEqual(len(c.recv_data().data), 1024)

    def test_oversize_header_closes_1009_before_payload(self):
        # Only the header (announcing 1025 bytes) and the mask key are sent: the server must
        # refuse on the announcement, not wait for the payload.
        # (A 64-bit length must be > 65535: a non-minimal encoding may be refused with 1002.)
        for opcode, n in ((OP_TEXT, 1025), (OP_BINARY, 1025), (OP_BINARY, 70000)):
            with self.subTest(opcode=opcode, length=n):
                c = self.fresh()
                hdr = encode_frame(opcode, b"", declared_length=n)
                c.send_raw(hdr)
                self.assertServerCloses(c, 1009)

    def test_huge_64bit_length_closes_1009(self):
        c = self.fresh()
        c.send_raw(encode_frame(OP_BINARY, b"", declared_length=1 << 40))
        self.assertServerCloses(c, 1009)

    def test_fragments_summing_past_limit_close_1009(self):
        c = self.fresh()
        c.send_raw(encode_frame(OP_TEXT, b"a" * 600, fin=False))
        c.send_raw(encode_frame(OP_CONT, b"", declared_length=600, fin=True))  # header only
        _code, _r, skipped = self.assertServerCloses(c, 1009)
        self.assertEqual(skipped, [])

    def test_many_empty_fragments_are_fine_or_capped(self):
        # 500 empty continuation frames: either relayed as one empty message or refused with a
        # close (fragment count cap: 1008/1009); never a hang or a crash.
        c = self.fresh()
        wire = encode_frame(OP_TEXT, b"", fin=False)
        wire += b"".join(encode_frame(OP_CONT, b"", fin=False) for _ in range(498))
        wire += encode_frame(OP_CONT, b"", fin=True)
        c.send_raw(wire)
        m = c.recv_message()
        if m.is_close:
            self.assertIn(m.close_code, (1008, 1009))
        else:
            self.assertEqual(m.data, b"")

    # ---- pings ----
    def test_ping_answered_with_same_payload(self):
        c = self.fresh()
        for p in (b"", b"x", b"\x00\xff" * 20, b"z" * 125):
            c.send_ping(p)
            m = c.recv_message(return_control=True)
            self.assertEqual((m.opcode, m.data), (OP_PONG, p))

    def test_unsolicited_pong_ignored(self):
        c = self.fresh()
        c.send_pong(b"unsolicited")
        c.expect_silence(0.3)
        c.send_text("still here")
        self.assertEqual(c.recv_data().text, "still here")


if __name__ == "__main__":
    unittest.main()
