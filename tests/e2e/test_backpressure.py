# SPDX-License-Identifier: Apache-2.0
"""Slow consumers: a member that never reads must not stall its room. With slow_consumer="close"
it is closed with 1008 after receiving only whole messages; with "drop" it gets an in-order subset
and stays connected. Meanwhile the server stays responsive."""

import hashlib
import struct
import threading
import time
import unittest

import harness
import wsclient
from wsclient import OP_BINARY

KiB = 1 << 10
MSG_BYTES = 64 * KiB
TOTAL_BYTES = 20 * 1000 * 1000
COUNT = TOTAL_BYTES // MSG_BYTES + 1     # 306 messages of 64 KiB: just over 20 MB
WINDOW = 8                               # sender stays at most 8 messages ahead of the receivers


def payload_for(seq):
    """64 KiB whose content depends on seq: a 4-byte seq, then a repeated 32-byte digest."""
    d = hashlib.sha256(struct.pack("!I", seq)).digest()
    body = struct.pack("!I", seq) + (d * (MSG_BYTES // 32 + 1))[:MSG_BYTES - 4]
    return body


def check_payload(data):
    if len(data) != MSG_BYTES:
        raise AssertionError("message of %d bytes, expected %d" % (len(data), MSG_BYTES))
    seq = struct.unpack("!I", data[:4])[0]
    if data != payload_for(seq):
        raise AssertionError("message %d corrupted" % seq)
    return seq


class BackpressureTest(harness.DaemonTestCase):

    def run_room(self, mode):
        d = self.start({
            "limits": {"max_message_bytes": 128 * KiB, "send_queue_bytes": 1024 * KiB,
                       "slow_consumer": mode},
            "timeouts": {"close_timeout": "30s"},
            "room": [{"path": "/bp", "echo": False}],
        })
        # The stuck member: tiny receive buffer, set before connect so the window stays small.
        stuck = self.connect(d, "/bp", rcvbuf=4096, timeout=10)
        sender = self.connect(d, "/bp", timeout=10)
        receivers = [self.connect(d, "/bp", timeout=20) for _ in range(3)]
        progress = [0] * len(receivers)
        errors = []
        cond = threading.Condition()

        def receive(k):
            try:
                c = receivers[k]
                for expect in range(COUNT):
                    m = c.recv_data(timeout=20)
                    seq = check_payload(m.data)
                    if seq != expect:
                        raise AssertionError("receiver %d: expected seq %d, got %d" % (
                            k, expect, seq))
                    with cond:
                        progress[k] = seq + 1
                        cond.notify_all()
            except BaseException as e:  # noqa: BLE001
                errors.append(("receiver %d" % k, e))
                with cond:
                    cond.notify_all()

        threads = [threading.Thread(target=receive, args=(k,), daemon=True)
                   for k in range(len(receivers))]
        for t in threads:
            t.start()
        health = []
        start = time.monotonic()
        deadline = start + 40
        for seq in range(COUNT):
            # Pace on the slowest live receiver so the well-behaved ones never fall behind by more
            # than WINDOW messages (well under send_queue_bytes): only `stuck` is slow.
            with cond:
                while min(progress) < seq - WINDOW and not errors:
                    if time.monotonic() > deadline:
                        self.fail("receivers stalled at %r of %d (sent %d)" % (
                            progress, COUNT, seq))
                    cond.wait(0.5)
            if errors:
                break
            sender.send_frame(OP_BINARY, payload_for(seq))
            if seq == COUNT // 2:
                # The server answers other clients while a member is stuck.
                t0 = time.monotonic()
                r = d.get("/healthz", timeout=5)
                health.append((r.status, r.body, time.monotonic() - t0))
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if errors:
            raise errors[0][1]
        self.assertEqual(progress, [COUNT] * 3, "well-behaved receivers must get everything")
        self.assertEqual(len(health), 1)
        self.assertEqual(health[0][:2], (200, b"ok\n"))
        self.assertLess(health[0][2], 2.0, "healthz took %.2fs during the flood" % health[0][2])
        return d, stuck, sender, receivers

    def drain(self, c, quiet=2.0, limit=40.0):
        """Read everything the server has for c. Returns (seqs, close_frame_or_None, eof)."""
        seqs, close, eof = [], None, False
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                m = c.recv_message(timeout=quiet)
            except wsclient.Timeout:
                break
            except wsclient.ConnectionClosed:
                eof = True
                break
            if m.is_close:
                close = m
                break
            seqs.append(check_payload(m.data))
        return seqs, close, eof

    def test_slow_consumer_close(self):
        d, stuck, _sender, _rx = self.run_room("close")
        # The close frame is what it waits for (bounded): a pause on a loaded machine is not
        # the end of what the server has for it, so no quiet period.
        seqs, close, eof = self.drain(stuck, quiet=40.0)
        self.assertIsNotNone(close, "stuck client: expected close 1008 after %d whole messages%s"
                             % (len(seqs), " (got EOF without close frame)" if eof else ""))
        self.assertEqual(close.close_code, 1008, "close reason %r" % close.close_reason)
        self.assertEqual(seqs, list(range(len(seqs))), "whole messages, in order, none skipped")
        self.assertLess(len(seqs), COUNT, "it was closed before receiving everything")
        stuck.answer_close(1008)
        stuck.wait_eof(5.0)
        self.assertTrue(d.alive())

    def test_slow_consumer_drop(self):
        d, stuck, sender, _rx = self.run_room("drop")
        seqs, close, eof = self.drain(stuck)
        self.assertIsNone(close, "drop mode must not close the slow consumer: %r" % (
            close.close_code if close else None,))
        self.assertFalse(eof, "drop mode must not close the slow consumer's TCP connection")
        self.assertEqual(seqs, sorted(set(seqs)), "a subset, in order, no duplicates")
        self.assertLess(len(seqs), COUNT, "some messages must have been skipped")
        self.assertGreater(len(seqs), 0)
        # Caught up: it gets new messages again, whole.
        sender.send_frame(OP_BINARY, payload_for(COUNT + 7))
        m = stuck.recv_data(timeout=5)
        self.assertEqual(check_payload(m.data), COUNT + 7)
        self.assertEqual(stuck.close()[0], 1000)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class FloodTest(harness.DaemonTestCase):
    """Whatever a peer can make the server queue has a cap (STYLE.md: limits)."""

    def flood(self, d, frame, total_bytes):
        """Send `frame` repeatedly without ever reading, from a client with a tiny receive
        buffer, until total_bytes are sent, the server stops reading (send times out) or it
        closes us. Returns how many bytes went out."""
        c = self.connect(d, "/flood", rcvbuf=4096, timeout=3)
        batch = frame * (65536 // len(frame))
        sent = 0
        t_end = time.monotonic() + 20
        while sent < total_bytes and time.monotonic() < t_end:
            try:
                c.send_raw(batch)
            except (wsclient.Timeout, wsclient.ConnectionClosed):
                break
            sent += len(batch)
        return c, sent

    def check_bounded(self, d, c, before_kib, what):
        # Measure once the daemon is done with the flood: it no longer reads from c (the bytes
        # between us and it hold still: all read, or the rest left unread by input backpressure)
        # and its RSS no longer grows (what it read is processed). A measurement taken earlier
        # could miss the growth of a server without a cap.
        steady = {"value": None, "since": 0.0}

        def held_still():
            now, value = time.monotonic(), (harness.tcp_queues(c), rss_kib(d.pid))
            if value != steady["value"]:
                steady.update(value=value, since=now)
            return round(now - steady["since"], 2), value

        limit_kib = 32 * 1024
        harness.wait_for(held_still, 30, "wsrelay to stop reading the flood (TCP queues "
                         "(unacked, unread)) and its RSS (KiB) to hold still for 0.5 s",
                         until=lambda r: r[0] >= 0.5 or r[1][1] - before_kib >= limit_kib)
        grown = rss_kib(d.pid) - before_kib
        self.assertLess(grown, limit_kib, "%s: wsrelay's RSS grew by %d KiB" % (what, grown))
        self.assertEqual(d.get("/healthz", timeout=5).body, b"ok\n")
        self.assertTrue(d.alive())

    def test_ping_flood_from_non_reader_is_bounded(self):
        d = self.start({"limits": {"send_queue_bytes": 1024 * KiB,
                                   "max_message_bytes": 64 * KiB}})
        before = rss_kib(d.pid)
        ping = wsclient.encode_frame(wsclient.OP_PING, b"p" * 125, mask_key=b"abcd")
        c, sent = self.flood(d, ping, 100 * 1000 * 1000)
        # 100 MB of pings would mean 100 MB of pongs queued for a reader that never reads. The
        # server may stop reading from us, close us (1008), or answer only the latest ping
        # (RFC 6455 §5.5.3 allows it) -- but its memory stays bounded.
        self.check_bounded(d, c, before, "ping flood (%d bytes sent)" % sent)
        # Still a working connection (unless it was closed with 1008): once we read what is
        # queued for us, the server reads our remaining pings again (input backpressure), and a
        # last ping is answered. Drain first: our own send buffer is full until it catches up.
        closed = False
        t_end = time.monotonic() + 30
        while time.monotonic() < t_end:
            try:
                m = c.recv_message(timeout=2, return_control=True)
            except wsclient.Timeout:
                break
            if m.is_close:
                self.assertEqual(m.close_code, 1008)
                closed = True
                break
        if closed:
            return
        c.send_ping(b"last")
        t_end = time.monotonic() + 20
        while time.monotonic() < t_end:
            m = c.recv_message(timeout=10, return_control=True)
            if m.is_close:
                self.assertEqual(m.close_code, 1008)
                break
            if m.opcode == wsclient.OP_PONG and m.data == b"last":
                break
        else:
            self.fail("no pong for the last ping")

    def test_http_pipelining_flood_from_non_reader_is_bounded(self):
        # Each 28-byte request asks for the whole chat page. 2 MB of them would queue ~70000
        # pages for a client that never reads; the server must stop reading requests (or close)
        # once a response backlog builds up. (Kept at 2 MB so a server without a cap costs the
        # test machine ~200 MB, not gigabytes.)
        d = self.start()
        before = rss_kib(d.pid)
        c = self.track(d.raw(rcvbuf=4096, timeout=3))
        req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
        sent = 0
        t_end = time.monotonic() + 15
        while sent < 2 * 1000 * 1000 and time.monotonic() < t_end:
            try:
                c.send_raw(req)
            except (wsclient.Timeout, wsclient.ConnectionClosed):
                break
            sent += len(req)
        self.check_bounded(d, c, before, "HTTP pipelining flood (%d requests sent)" % (
            sent // 28))

    def test_echo_flood_from_non_reader_is_bounded(self):
        d = self.start({"limits": {"send_queue_bytes": 1024 * KiB,
                                   "max_message_bytes": 64 * KiB}})
        before = rss_kib(d.pid)
        msg = wsclient.encode_frame(OP_BINARY, b"e" * 16000, mask_key=b"abcd")
        c, sent = self.flood(d, msg, 100 * 1000 * 1000)
        self.check_bounded(d, c, before, "echo flood (%d bytes sent)" % sent)
        # With echo on, the flooder is its own slow consumer. The server stops reading from it
        # once half its send queue is used (input backpressure), so its own echoes never
        # overflow the queue: it is throttled, not closed. Whatever it reads back is whole
        # messages, as sent; the only close it may see is 1008.
        frames_sent = sent // len(msg)       # whole batches
        batch_frames = 65536 // len(msg)     # a batch whose send timed out may add up to 4 more
        received = 0

        def read_one(timeout):
            """True for an echo; returns False on close 1008 (the test ends there)."""
            nonlocal received
            m = c.recv_message(timeout=timeout)
            if m.is_close:
                self.assertEqual(m.close_code, 1008)
                return False
            self.assertEqual(m.data, b"e" * 16000)
            received += 1
            return True

        # Everything it sent comes back once it reads (nothing lost), as long as it is not
        # closed: as we drain the echoes, the server's queue empties and it reads (and echoes)
        # the rest of our input. Wait for that, bounded.
        t_end = time.monotonic() + 60
        while received < frames_sent:
            try:
                if not read_one(max(0.0, t_end - time.monotonic())):
                    return
            except wsclient.Timeout:
                break
        if received < frames_sent:
            self.fail("echo flood: %d of %d echoes after 60 s: wsrelay still holds the rest of "
                      "the flooder's input unprocessed (TCP queues (unacked, unread): %r)" % (
                          received, frames_sent, harness.tcp_queues(c)))
        # Then only the frames of a batch that was partly sent may follow: read them for a
        # short quiet period, to check that nothing beyond them (a duplicate) comes.
        while True:
            try:
                if not read_one(2.0):
                    return
            except wsclient.Timeout:
                break
        self.assertLessEqual(received, frames_sent + batch_frames,
                             "more echoes than frames sent")


if __name__ == "__main__":
    unittest.main()
