# SPDX-License-Identifier: Apache-2.0
"""Relaying: many clients, room isolation, echo flag, per-sender order under load, big messages,
fragmented input, binary messages."""

import hashlib
import os
import random
import re
import resource
import signal
import struct
import threading
import time
import unittest

import harness
import wsclient
from wsclient import OP_BINARY, OP_CONT, OP_PING, OP_TEXT

MiB = 1 << 20


def run_threads(targets, timeout):
    """Run callables in threads; re-raise the first exception; fail if any is still running."""
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported to the test
                errors.append(e)
        return run

    ts = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in ts:
        t.start()
    deadline = time.monotonic() + timeout
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in ts):
        raise AssertionError("threads still running after %.0fs" % timeout)


class RelayTest(harness.DaemonTestCase):

    def test_many_clients_one_room_all_receive_all(self):
        d = self.start()
        n = 50
        clients = [self.connect(d, "/many") for _ in range(n)]
        for i, c in enumerate(clients):
            c.send_text("from-%d" % i)
        for i, c in enumerate(clients):
            got = set()
            for _ in range(n):
                m = c.recv_data(timeout=10)
                self.assertEqual(m.opcode, OP_TEXT)
                got.add(m.text)
            self.assertEqual(got, {"from-%d" % k for k in range(n)}, "client %d" % i)
        for c in clients:
            c.expect_silence(0.05)  # nothing beyond the 50 messages
        for c in clients[:5]:
            self.assertEqual(c.close()[0], 1000)

    def test_room_isolation_and_query_ignored(self):
        d = self.start()
        a1, a2 = self.connect(d, "/a"), self.connect(d, "/a?user=2&x=y")  # same room "/a"
        b1 = self.connect(d, "/b")
        ab = self.connect(d, "/a/b")
        # The server sends nothing of its own into a room (no greetings, no join notices).
        for c in (a1, a2, b1, ab):
            c.expect_silence(0.2)
        a1.send_text("to-a")
        self.assertEqual(a1.recv_data().text, "to-a")
        self.assertEqual(a2.recv_data().text, "to-a")
        b1.send_text("to-b")
        self.assertEqual(b1.recv_data().text, "to-b")
        ab.send_text("to-ab")
        self.assertEqual(ab.recv_data().text, "to-ab")
        for c in (a1, a2):
            c.expect_silence(0.3)
        b1.expect_silence(0.05)
        ab.expect_silence(0.05)

    def test_echo_default_on(self):
        d = self.start()
        a, b = self.connect(d, "/e"), self.connect(d, "/e")
        a.send_text("hello")
        self.assertEqual(a.recv_data().text, "hello")
        self.assertEqual(b.recv_data().text, "hello")

    def test_echo_false_global(self):
        d = self.start({"rooms": {"echo": False}})
        a, b = self.connect(d, "/e"), self.connect(d, "/e")
        a.send_text("one")
        self.assertEqual(b.recv_data().text, "one")
        b.send_text("two")
        self.assertEqual(a.recv_data().text, "two")
        # Neither got its own message back.
        a.expect_silence(0.3)
        b.expect_silence(0.05)

    def test_echo_per_room_override(self):
        d = self.start({"rooms": {"echo": True},
                        "room": [{"path": "/quiet", "echo": False}]})
        q1, q2 = self.connect(d, "/quiet"), self.connect(d, "/quiet")
        l1 = self.connect(d, "/loud")
        q1.send_text("q")
        self.assertEqual(q2.recv_data().text, "q")
        q1.expect_silence(0.3)
        l1.send_text("l")
        self.assertEqual(l1.recv_data().text, "l")

    def test_echo_per_room_override_on_when_global_off(self):
        d = self.start({"rooms": {"echo": False},
                        "room": [{"path": "/chatty", "echo": True}]})
        c1 = self.connect(d, "/chatty")
        o1 = self.connect(d, "/other")
        c1.send_text("c")
        self.assertEqual(c1.recv_data().text, "c")
        o1.send_text("o")
        o1.expect_silence(0.3)

    def test_first_frame_in_same_segment_as_handshake(self):
        # A client may send its first frame right behind the request; the server must keep it.
        d = self.start()
        c = self.connect(d, "/eager", request_extra=wsclient.encode_frame(OP_TEXT, b"eager"))
        self.assertEqual(c.recv_data().text, "eager")

    def test_per_sender_order_under_load(self):
        d = self.start()
        senders, receivers, count = 10, 5, 500
        room = "/order"
        txs = [self.connect(d, room, timeout=20) for _ in range(senders)]
        rxs = [self.connect(d, room, timeout=20) for _ in range(receivers)]
        total = senders * count
        results = {}

        def send(i):
            def run():
                c = txs[i]
                batch = bytearray()
                for seq in range(count):
                    payload = ("s%d:%d:" % (i, seq)).encode() + b"x" * (seq % 97)
                    batch += wsclient.encode_frame(OP_TEXT, payload)
                    if len(batch) > 16384 or seq == count - 1:
                        c.send_raw(bytes(batch))
                        batch.clear()
            return run

        def receive(key, c):
            def run():
                nxt = [0] * senders
                for _ in range(total):
                    m = c.recv_data(timeout=20)
                    s, seq, pad = m.text.split(":", 2)
                    s, seq = int(s[1:]), int(seq)
                    if seq != nxt[s]:
                        raise AssertionError("%s: sender %d: expected seq %d, got %d" % (
                            key, s, nxt[s], seq))
                    if len(pad) != seq % 97:
                        raise AssertionError("%s: sender %d seq %d: corrupted payload" % (
                            key, s, seq))
                    nxt[s] += 1
                results[key] = nxt
            return run

        targets = [send(i) for i in range(senders)]
        targets += [receive("rx%d" % k, c) for k, c in enumerate(rxs)]
        # Senders are room members too (echo on): they must see everything as well.
        targets += [receive("tx%d" % k, c) for k, c in enumerate(txs)]
        run_threads(targets, timeout=45)
        for key, nxt in results.items():
            self.assertEqual(nxt, [count] * senders, key)
        self.assertEqual(len(results), senders + receivers)
        for c in rxs:
            c.expect_silence(0.05)

    def _big(self, opcode):
        d = self.start({"limits": {"max_message_bytes": 16 * MiB,
                                   "send_queue_bytes": 64 * MiB}})
        a = self.connect(d, "/big", timeout=30)
        b = self.connect(d, "/big", timeout=30)
        size = 16 * MiB
        if opcode == OP_TEXT:
            unit = "héllo wörld ✓ 𝄞 ".encode()
            payload = (unit * (size // len(unit) + 1))[:size]
            while True:  # cut on a code point boundary, keep exactly 16 MiB or just under
                try:
                    payload.decode("utf-8")
                    break
                except UnicodeDecodeError:
                    payload = payload[:-1]
        else:
            payload = random.Random(7).randbytes(size)
        digest = hashlib.sha256(payload).hexdigest()
        got = {}

        def rx(name, c):
            def run():
                m = c.recv_data(timeout=40)
                got[name] = (m.opcode, len(m.data), hashlib.sha256(m.data).hexdigest())
            return run

        def tx():
            a.send_frame(opcode, payload)

        run_threads([tx, rx("a", a), rx("b", b)], timeout=50)
        for name in ("a", "b"):
            self.assertEqual(got[name], (opcode, len(payload), digest), name)

    def test_16mib_text_message(self):
        self._big(OP_TEXT)

    def test_16mib_binary_message(self):
        self._big(OP_BINARY)

    def test_fragmented_input_relayed_as_one_message_with_interleaved_pings(self):
        d = self.start()
        a, b = self.connect(d, "/frag"), self.connect(d, "/frag")
        parts = [("part%03d-ä|" % i).encode() for i in range(200)]
        wire = bytearray()
        for i, p in enumerate(parts):
            wire += wsclient.encode_frame(OP_TEXT if i == 0 else OP_CONT, p,
                                          fin=(i == len(parts) - 1))
            if i % 20 == 10:
                wire += wsclient.encode_frame(OP_PING, b"ping-%d" % i)
        a.send_raw(bytes(wire))
        whole = b"".join(parts)
        # The other member gets one unfragmented frame.
        f = b.recv_frame()
        self.assertEqual((f.opcode, f.fin), (OP_TEXT, True), f)
        self.assertEqual(f.payload, whole)
        # The sender gets its pongs, in order, and the echo as one message.
        frames = []
        while True:
            f = a.recv_frame()
            frames.append(f)
            if f.opcode == OP_TEXT:
                break
        pongs = [f.payload for f in frames if f.opcode == wsclient.OP_PONG]
        self.assertEqual(pongs, [b"ping-%d" % i for i in range(len(parts)) if i % 20 == 10])
        self.assertTrue(frames[-1].fin)
        self.assertEqual(frames[-1].payload, whole)

    def test_utf8_split_across_fragments_is_valid(self):
        d = self.start()
        a = self.connect(d, "/u")
        data = "€𝄞ü".encode()
        wire = b"".join(wsclient.encode_frame(OP_TEXT if i == 0 else OP_CONT, data[i:i + 1],
                                              fin=(i == len(data) - 1))
                        for i in range(len(data)))
        a.send_raw(wire)
        self.assertEqual(a.recv_data().data, data)

    def test_binary_messages(self):
        d = self.start()
        a, b = self.connect(d, "/bin"), self.connect(d, "/bin")
        rnd = random.Random(1)
        payloads = [b"", b"\x00", bytes(range(256)), rnd.randbytes(125), rnd.randbytes(126),
                    rnd.randbytes(65535), rnd.randbytes(65536), rnd.randbytes(300000),
                    b"\xff\xfe\xfd invalid utf-8 is fine in binary \xc0\xaf"]
        for p in payloads:
            a.send_binary(p)
        for c in (a, b):
            for p in payloads:
                m = c.recv_data(timeout=10)
                self.assertEqual(m.opcode, OP_BINARY)
                self.assertEqual(m.data, p)

    def test_text_and_binary_interleaved_keep_types_and_order(self):
        d = self.start()
        a, b = self.connect(d, "/mix"), self.connect(d, "/mix")
        seq = []
        for i in range(100):
            if i % 3 == 0:
                seq.append((OP_BINARY, struct.pack("!I", i)))
            else:
                seq.append((OP_TEXT, ("t%d" % i).encode()))
        a.send_raw(b"".join(wsclient.encode_frame(op, p) for op, p in seq))
        got = [(m.opcode, m.data) for m in (b.recv_data() for _ in seq)]
        self.assertEqual(got, seq)

    def test_masking_keys_and_length_encodings(self):
        # Non-minimal length encodings are not forbidden for the receiver to accept by
        # RFC 6455 §5.2 wording ("the minimal number of bytes MUST be used" binds senders); we
        # only use minimal ones here, with varied and all-zero mask keys.
        d = self.start()
        a = self.connect(d, "/mask")
        for key in (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", os.urandom(4)):
            for n in (0, 1, 125, 126, 127, 65535, 65536, 70000):
                p = os.urandom(n)
                a.send_frame(OP_BINARY, p, mask_key=key)
                self.assertEqual(a.recv_data().data, p, "len %d key %r" % (n, key))

    def test_message_sent_with_close_reaches_room(self):
        d = self.start()
        a, b = self.connect(d, "/last"), self.connect(d, "/last")
        a.send_raw(wsclient.encode_frame(OP_TEXT, b"last words") +
                   wsclient.encode_frame(wsclient.OP_CLOSE, b"\x03\xe8"))
        self.assertEqual(b.recv_data().text, "last words")
        code, _r, skipped = a.expect_close()
        self.assertEqual(code, 1000)
        self.assertEqual([m.data for m in skipped], [b"last words"])
        a.wait_eof(3)

    def test_many_one_byte_fragments(self):
        # 100000 fragments of one byte (700 kB on the wire, a 100 kB message): relayed whole, or
        # refused with a close if the server caps the fragment count; never a hang.
        d = self.start()
        a, b = self.connect(d, "/frags", timeout=20), self.connect(d, "/frags", timeout=20)
        n = 100000
        key = b"\x01\x02\x03\x04"
        body = bytearray()
        for i in range(n):
            op = OP_TEXT if i == 0 else OP_CONT
            body += bytes([(0x80 if i == n - 1 else 0) | op, 0x81]) + key + \
                bytes([ord("a") ^ key[0]])
        a.send_raw(bytes(body))
        m = a.recv_message(timeout=20)
        if m.is_close:
            self.assertIn(m.close_code, (1008, 1009))
            b.expect_silence(0.3)
        else:
            self.assertEqual(m.data, b"a" * n)
            self.assertEqual(b.recv_data(timeout=20).data, b"a" * n)

    def test_leaving_member_does_not_disturb_room(self):
        d = self.start()
        a, b, c = (self.connect(d, "/leave") for _ in range(3))
        b_port = b.sock.getsockname()[1]
        b.abort(rst=True)
        c.close()
        # Both have left before A sends: C's close handshake is complete, and B's reset has been
        # handled once the daemon logs B's close.
        harness.wait_for(lambda: [l for l in d.stderr().splitlines()
                                  if "peer=127.0.0.1:%d " % b_port in l and "closed" in l],
                         30, "wsrelay to log the close of B, which reset")
        for i in range(20):
            a.send_text("m%d" % i)
        for i in range(20):
            self.assertEqual(a.recv_data().text, "m%d" % i)
        self.assertTrue(d.alive())

    def test_a_room_per_connection_and_the_memory_back_after_the_crowd(self):
        """1100 connections, each in a room of its own, all relaying; once they are gone the
        server says it returned their memory to the system (see Server::release_memory)."""
        n = 1100
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < n + 64:
            self.skipTest("RLIMIT_NOFILE hard limit %d is below %d" % (hard, n + 64))
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 64), hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        d = self.start({"server": {"log_level": "debug"},
                        "limits": {"max_connections": 5000, "max_connections_per_ip": 0, "message_rate": 0}})
        clients = []
        try:
            for i in range(n):
                clients.append(d.client("/user/%d" % i))
            harness.wait_for(lambda: ("connected, %d open" % n) in d.stderr(), 30, "all %d connected" % n)
            # Every room relays to its own member only.
            for i in (0, 1, n // 2, n - 1):
                clients[i].send_text("to room %d" % i)
            for i in (0, 1, n // 2, n - 1):
                m = clients[i].recv_message()
                self.assertEqual((m.opcode, m.text), (OP_TEXT, "to room %d" % i))
            for i in (2, n - 2):
                with self.assertRaises(wsclient.Timeout, msg="room %d heard another room" % i):
                    clients[i].recv_message(timeout=0.2)
        finally:
            for c in clients:
                c.abort()
        line = harness.wait_for(
            lambda: [l for l in d.stderr().splitlines() if "returning freed memory to the system" in l], 15,
            "the release of the memory after %d connections closed" % n)
        self.assertRegex(line[-1], r"\b\d+ connections open \(\d+ at the peak\)")
        peak = int(re.search(r"\((\d+) at the peak\)", line[-1]).group(1))
        self.assertGreaterEqual(peak, n)
        self.assertTrue(d.alive())


class BatchTest(harness.DaemonTestCase):
    """The small messages a room relays in one loop turn reach each member as one batch: bytes that
    arrive in one TCP segment are read in one turn, so these tests send many frames in one write
    and check that every member still gets every message, whole, in order, and nothing else."""

    SIZES = [1, 10, 500, 1019, 1020, 2000, 10, 70000, 3, 125, 126, 0, 16 * 1024, 7, 64 * 1024, 9]

    def pipelined(self, sizes, op=OP_BINARY, seed=0):
        rnd = random.Random(seed)
        payloads = [bytes(rnd.getrandbits(8) for _ in range(n)) for n in sizes]
        return payloads, b"".join(wsclient.encode_frame(op, p) for p in payloads)

    def test_pipelined_small_and_large_messages_keep_order_for_every_member(self):
        # Small frames are batched, large ones (over 1 KiB framed) go on their own: the switch back
        # and forth must not reorder anything.
        d = self.start()
        sender, *others = (self.connect(d, "/batch") for _ in range(4))
        payloads, wire = self.pipelined(self.SIZES * 3)
        sender.send_raw(wire)
        for who, c in [("sender", sender)] + [("member %d" % i, c) for i, c in enumerate(others)]:
            got = [c.recv_data(timeout=10).data for _ in payloads]
            self.assertEqual([len(g) for g in got], [len(p) for p in payloads], who)
            self.assertEqual(got, payloads, who)
            c.expect_silence(0.05)

    def test_two_pipelining_senders_each_keep_their_order(self):
        d = self.start()
        a, b, watcher = (self.connect(d, "/two") for _ in range(3))
        wire_a = b"".join(wsclient.encode_frame(OP_TEXT, ("a%03d" % i).encode()) for i in range(300))
        wire_b = b"".join(wsclient.encode_frame(OP_TEXT, ("b%03d" % i).encode()) for i in range(300))
        a.send_raw(wire_a)
        b.send_raw(wire_b)
        for c in (a, b, watcher):
            got = [c.recv_data(timeout=10).text for _ in range(600)]
            self.assertEqual([t for t in got if t[0] == "a"], ["a%03d" % i for i in range(300)])
            self.assertEqual([t for t in got if t[0] == "b"], ["b%03d" % i for i in range(300)])
            c.expect_silence(0.05)

    def test_no_echo_room_with_pipelined_messages(self):
        d = self.start({"rooms": {"echo": False}})
        sender, other = self.connect(d, "/quiet"), self.connect(d, "/quiet")
        texts = ["t%d" % i for i in range(40)]
        sender.send_raw(b"".join(wsclient.encode_frame(OP_TEXT, t.encode()) for t in texts))
        self.assertEqual([other.recv_data(timeout=10).text for _ in texts], texts)
        sender.expect_silence(0.2)  # not even one of its own

    def test_member_that_closes_gets_what_was_relayed_before_its_close(self):
        # A rate-limited sender: its first messages are relayed (batched with the room's others),
        # then the server closes it with 1008. Its own copies come before the close frame.
        d = self.start({"limits": {"message_rate": 10, "message_burst": 5}})
        sender, other = self.connect(d, "/burst"), self.connect(d, "/burst")
        sender.send_raw(b"".join(wsclient.encode_frame(OP_TEXT, ("m%d" % i).encode()) for i in range(20)))
        got = []
        while True:
            m = sender.recv_message(timeout=5)
            if m.is_close:
                self.assertEqual(m.close_code, 1008)
                break
            got.append(m.text)
        self.assertEqual(got, ["m%d" % i for i in range(5)])
        self.assertEqual([other.recv_data(timeout=5).text for _ in range(5)], got)
        other.expect_silence(0.1)

    def test_member_joining_in_the_same_turn_gets_only_later_messages(self):
        # The daemon is stopped while A's messages and B's upgrade request arrive, so that one
        # epoll_wait returns both and one loop turn handles them: A's messages are batched first,
        # then B joins. B must not get them (they were relayed before it was a member).
        d = self.start({"server": {"log_level": "debug"}})
        a = self.connect(d, "/join")
        b = self.track(wsclient.WSClient(d.host, d.port, "/join", handshake=False, timeout=30))
        b_port = b.sock.getsockname()[1]
        harness.wait_for(lambda: "peer=127.0.0.1:%d accepted" % b_port in d.stderr(), 30,
                         "wsrelay to accept B's connection before the stop")
        wire = b"".join(wsclient.encode_frame(OP_TEXT, b"early%d" % i) for i in range(10))
        errors = []

        def handshake():
            try:
                b.handshake()   # the request goes now; the 101 comes once the daemon runs again
            except BaseException as e:  # noqa: BLE001 - reported to the test
                errors.append(e)

        hs = threading.Thread(target=handshake, daemon=True)
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            # The kernel still takes in data for the stopped daemon: each wait ends once the
            # bytes sit acknowledged, unread, in the daemon's socket. A's messages come first.
            a.send_raw(wire)
            harness.wait_for(lambda: harness.tcp_queues(a), 30, "A's messages to reach the stopped "
                             "daemon's socket (TCP queues (unacked, unread))",
                             until=lambda q: q == (0, len(wire)))
            hs.start()
            harness.wait_for(lambda: harness.tcp_queues(b), 30, "B's upgrade request to reach the "
                             "stopped daemon's socket (TCP queues (unacked, unread))",
                             until=lambda q: q[0] == 0 and q[1] > 0)
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        hs.join(60)
        if errors:
            raise errors[0]
        self.assertFalse(hs.is_alive(), "B's handshake still waiting for its 101")
        self.assertEqual([a.recv_data().text for _ in range(10)], ["early%d" % i for i in range(10)])
        a.send_text("late")
        self.assertEqual(b.recv_data().text, "late")
        self.assertEqual(a.recv_data().text, "late")
        b.expect_silence(0.05)

    def test_metrics_count_each_batched_message(self):
        d = self.start({"listen": [{"address": "127.0.0.1:{port}", "metrics": True}]})
        a, b = self.connect(d, "/count"), self.connect(d, "/count")
        a.send_raw(b"".join(wsclient.encode_frame(OP_TEXT, b"x" * 10) for _ in range(25)))
        for c in (a, b):
            self.assertEqual([c.recv_data().text for _ in range(25)], ["x" * 10] * 25)
        raw = wsclient.http_request(d.host, d.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                    b"Connection: close\r\n\r\n").decode()
        values = dict(line.rsplit(" ", 1) for line in raw.split("\r\n\r\n", 1)[1].splitlines()
                      if line and not line.startswith("#"))
        self.assertEqual(values["wsrelay_messages_received_total"], "25")
        self.assertEqual(values["wsrelay_messages_sent_total"], "50")  # 25 to each of 2 members
        self.assertEqual(values["wsrelay_message_bytes_sent_total"], "500")


if __name__ == "__main__":
    unittest.main()
