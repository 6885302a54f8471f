# SPDX-License-Identifier: Apache-2.0
"""[cluster]: rooms that span wsrelay instances through Redis pub/sub, against real daemons and a
throwaway redis-server (Debian's /usr/bin/redis-server, started by each test on a free loopback
port, without persistence, stopped afterwards).

Covered: three instances sharing a room with plain and permessage-deflate members (text, binary,
non-ASCII, 1 MiB; every message once, each sender's in order, from interleaved senders on
different instances); rooms kept apart and a room's echo = false honoured across instances; the
wsrelay_cluster_* metrics against what was sent, and the channels Redis sees; Redis killed
mid-traffic and restarted on the same port (local delivery unaffected, one warning, /healthz,
STATUS=, drops counted, delivery back within 5 s: the backoff stops at 2 s); Redis's last data and its FIN
read in one go (the loss is still noticed); Redis paused with the smallest max_pending_bytes
(local members keep being served, messages for remote ones dropped, counted, never reordered or
duplicated) and, with Redis up, a turn bigger than max_pending_bytes (published all the same); a
wrong password (one warning, retries, then SIGHUP with the right password_file brings the link
up); an address nobody listens on (and a reload that changes it); --check-config.

Before a test sends across instances it waits until each instance has its room's channel
subscribed (wsrelay_cluster_subscribed_rooms counts Redis's answers to SUBSCRIBE): the 101 of a
member does not say that Redis has the subscription yet."""

import os
import random
import re
import signal
import socket
import tempfile
import threading
import time
import unittest

import harness
import test_deflate
import test_relay
import test_systemd
import wsclient
from redis_server import RedisServer, RespConnection
from wsclient import OP_BINARY, OP_TEXT

KiB = 1 << 10
MiB = 1 << 20
# The link's reconnect backoff doubles from 100 ms up to 2 s (src/cluster/link.cpp); #16 asks that
# delivery across instances resumes within this after Redis is back.
RESUME_WITHIN_S = 5.0


# ---------------------------------------------------------------- what clients received
class Tally:
    """Messages "SRC:SEQ[:...]" one client received, by source. From a `local` source (an
    instance's own senders) every message must come, in order; from any other source each
    message at most once and in order (some may be lost while Redis is down)."""

    def __init__(self, name, local):
        self.name, self.local = name, set(local)
        self.seqs = {}

    def take(self, text):
        src, seq = text.split(":", 2)[:2]
        seq = int(seq)
        got = self.seqs.setdefault(src, [])
        last = got[-1] if got else -1
        if seq <= last:
            raise AssertionError("%s: %s:%d after %s:%d (a duplicate or out of order)" % (
                self.name, src, seq, src, last))
        if src in self.local and seq != last + 1:
            raise AssertionError("%s: %s:%d after %s:%d: local messages lost" % (
                self.name, src, seq, src, last))
        got.append(seq)

    def last(self, src):
        got = self.seqs.get(src)
        return got[-1] if got else -1

    def between(self, src, lo, hi):
        return [s for s in self.seqs.get(src, []) if lo <= s <= hi]

    def read_until(self, c, src, seq, timeout=30.0):
        """Read (bounded) until message SRC:SEQ (or a later one of SRC) has come."""
        deadline = time.monotonic() + timeout
        while self.last(src) < seq:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: no %s:%d within %.0fs (last %s:%d)" % (
                    self.name, src, seq, timeout, src, self.last(src)))
            try:
                self.take(c.recv_data(timeout=left).text)
            except wsclient.Timeout:
                pass

    def read_available(self, c, timeout):
        """Read until nothing has arrived for `timeout` seconds."""
        while True:
            try:
                self.take(c.recv_data(timeout=timeout).text)
            except wsclient.Timeout:
                return


def burst(src, first, count, pad=0):
    """Frames of messages SRC:first .. SRC:first+count-1 (padded to `pad` bytes), one write."""
    out = bytearray()
    for seq in range(first, first + count):
        text = "%s:%d:" % (src, seq)
        out += wsclient.encode_frame(OP_TEXT, (text + "x" * max(0, pad - len(text))).encode())
    return bytes(out)


def lines_with(d, needle):
    return [ln for ln in d.stderr().splitlines() if needle in ln]


# ---------------------------------------------------------------- the tests
class ClusterTestCase(test_deflate.DeflateTestCase):
    """Redis servers started here are stopped after the test (after the daemons)."""

    def setUp(self):
        super().setUp()
        self._redis = []

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for r in self._redis:
                r.cleanup()

    def redis(self, password=None):
        r = RedisServer(password)
        self._redis.append(r)
        return r

    def instance(self, redis, node, config=None):
        """A wsrelay with [cluster] redis = `redis` (a RedisServer or a URL), node_id `node`,
        and /metrics on its listener."""
        cfg = harness.merge({"listen": [{"address": "127.0.0.1:{port}", "metrics": True}],
                             "cluster": {"redis": redis if isinstance(redis, str) else redis.url,
                                         "node_id": node}}, config or {})
        d = self.start(cfg)
        d.label = node or "(default node id)"
        return d

    def metrics(self, d):
        r = d.get("/metrics")
        self.assertEqual(r.status, 200, r)
        return test_systemd.Metrics(r.body.decode("utf-8"))

    def metric(self, d, name):
        return self.metrics(d)[name]

    def wait_metric(self, d, name, until, what, timeout=20.0):
        return harness.wait_for(lambda: self.metric(d, name), timeout,
                                "wsrelay %s: %s %s" % (d.label, name, what), until=until)

    def wait_link_up(self, *daemons):
        for d in daemons:
            self.wait_metric(d, "wsrelay_cluster_link_up", lambda v: v == 1, "to be 1", 30)

    def wait_subscribed(self, rooms, *daemons):
        for d in daemons:
            self.wait_metric(d, "wsrelay_cluster_subscribed_rooms", lambda v: v == rooms,
                             "to be %d" % rooms, 30)

    def wait_log(self, d, needle, timeout=20.0):
        try:
            return harness.wait_for(lambda: lines_with(d, needle), timeout,
                                    "wsrelay %s to log %r" % (d.label, needle))
        except AssertionError as e:
            raise AssertionError("%s\n--- its stderr ---\n%s" % (e, d.stderr()[-5000:])) from None

    def wait_status(self, d, ending, after, timeout=20.0):
        """The first STATUS= line sent after notification number `after` that ends with
        `ending` (the periodic STATUS= comes every 5 s)."""
        def probe():
            d.poll_notify(0)
            return [ln for n in d.notifications[after:] for ln in n.split("\n")
                    if ln.startswith("STATUS=")]
        found = harness.wait_for(probe, timeout, "wsrelay %s: a STATUS= ending %r" % (
            d.label, ending), until=lambda lines: any(ln.endswith(ending) for ln in lines))
        return next(ln for ln in found if ln.endswith(ending))

    def healthz(self, d):
        r = d.get("/healthz")
        self.assertEqual(r.status, 200, "wsrelay %s /healthz: %r" % (d.label, r))


class SharedRoomTest(ClusterTestCase):

    def test_three_instances_one_room_every_message_once_in_order(self):
        r = self.redis()
        cfg = {"deflate": {"enabled": True},
               "limits": {"max_message_bytes": 2 * MiB, "send_queue_bytes": 16 * MiB,
                          "message_rate": 0}}
        # C keeps the default node id, hostname:pid.
        ds = [self.instance(r, node, cfg) for node in ("A", "B", "")]
        for d, node in zip(ds, ("A", "B", "%s:%d" % (socket.gethostname(), ds[2].pid))):
            self.wait_log(d, "<5>cluster: redis link to %s up (node %s, channels "
                             "wsrelay:room:<path>)" % (r.endpoint, node))
        room = "/shared"
        # On each instance a sender and other members, deflate and plain ones side by side.
        # name -> (client, server window bits or None for a plain client, client window bits)
        members = {}

        def plain(name, d):
            c, ext = self.ws(d, room, ())
            self.assertEqual(ext, [])
            members[name] = (c, None, None)

        def deflated(name, d):
            c, sbits, cbits = self.deflate_ws(d, room)
            members[name] = (c, sbits, cbits)

        plain("A-sender", ds[0])
        deflated("A-deflate", ds[0])
        deflated("B-sender", ds[1])     # sends compressed messages
        plain("B-plain", ds[1])
        plain("C-sender", ds[2])
        deflated("C-deflate", ds[2])
        plain("C-plain", ds[2])
        self.wait_subscribed(1, *ds)

        senders = ["A-sender", "B-sender", "C-sender"]
        count = 24

        def payload(s, seq):
            head = "%d:%d:" % (s, seq)
            rnd = random.Random(s * 1000 + seq)
            kind = seq % 4
            if seq == 13:      # 1 MiB binary, exactly
                return OP_BINARY, head.encode() + rnd.randbytes(MiB - len(head))
            if kind == 0:
                return OP_TEXT, (head + "plain ascii " * seq).encode()
            if kind == 1:
                return OP_BINARY, head.encode() + rnd.randbytes(rnd.randrange(0, 4000))
            if kind == 2:
                return OP_TEXT, (head + "héllo wörld ✓ 𝄞 中文 κόσμε 😀 " * (seq * 3)).encode()
            text = test_deflate.compressible_text(rnd.randrange(300, 30000), seq)
            return OP_TEXT, head.encode() + text

        plan = [[payload(s, seq) for seq in range(count)] for s in range(len(senders))]

        def send(s):
            def run():
                c, _, cbits = members[senders[s]]
                for op, data in plan[s]:
                    if cbits is None:
                        c.send_frame(op, data)
                    else:
                        self.send_deflated(c, op, data, cbits)
            return run

        results = {}

        def receive(name):
            def run():
                c, sbits, _ = members[name]
                nxt = [0] * len(senders)
                compressed = [0] * len(senders)
                for _ in range(len(senders) * count):
                    if sbits is None:
                        op, data, m = self.recv_data(c, compressed=False, timeout=60)
                    else:
                        op, data, m = self.recv_data(c, sbits, compressed=None, timeout=60)
                    s, seq = (int(x) for x in data.split(b":", 2)[:2])
                    if seq != nxt[s]:
                        raise AssertionError("%s: from %s expected #%d, got #%d (%s)" % (
                            name, senders[s], nxt[s], seq,
                            "a duplicate" if seq < nxt[s] else "lost or out of order"))
                    if (op, data) != plan[s][seq]:
                        raise AssertionError("%s: %s's #%d differs: opcode %d, %d bytes; sent "
                                             "opcode %d, %d bytes" % (
                                                 name, senders[s], seq, op, len(data),
                                                 plan[s][seq][0], len(plan[s][seq][1])))
                    compressed[s] += m.compressed
                    nxt[s] += 1
                results[name] = (nxt, compressed)
            return run

        test_relay.run_threads([send(s) for s in range(len(senders))]
                               + [receive(name) for name in members], timeout=120)
        for name, (nxt, compressed) in sorted(results.items()):
            self.assertEqual(nxt, [count] * len(senders), name)
            if members[name][1] is not None:
                # Messages from other instances take the same deflate path as local ones.
                self.assertTrue(all(compressed), "%s: compressed messages by sender %r" % (
                    name, compressed))
        self.assertEqual(len(results), len(members))
        # Nothing more: no message came twice (through Redis back to its own instance).
        for i, (c, _, _) in enumerate(members.values()):
            c.expect_silence(0.5 if i == 0 else 0.05)
        for d in ds:
            m = self.metrics(d)
            self.assertEqual(m["wsrelay_cluster_messages_published_total"], count, d.label)
            self.assertEqual(m["wsrelay_cluster_messages_received_total"], 2 * count, d.label)
            self.assertEqual(m["wsrelay_cluster_messages_dropped_total"], 0, d.label)

    def test_rooms_stay_apart_and_echo_false_holds_across_instances(self):
        r = self.redis()
        cfg = {"room": [{"path": "/quiet", "echo": False}]}
        a, b = self.instance(r, "A", cfg), self.instance(r, "B", cfg)
        a_one, b_one = self.connect(a, "/one"), self.connect(b, "/one?user=b")   # one room
        b_two = self.connect(b, "/two")
        a_three = self.connect(a, "/three")
        qa1, qa2 = self.connect(a, "/quiet"), self.connect(a, "/quiet")
        qb = self.connect(b, "/quiet")
        self.wait_subscribed(3, a, b)       # A: /one /three /quiet; B: /one /two /quiet
        a_one.send_text("one from A")
        self.assertEqual(a_one.recv_data().text, "one from A")
        self.assertEqual(b_one.recv_data().text, "one from A")
        b_one.send_binary(b"one from B")
        self.assertEqual(b_one.recv_data().data, b"one from B")
        self.assertEqual(a_one.recv_data().data, b"one from B")
        b_two.send_text("two from B")
        self.assertEqual(b_two.recv_data().text, "two from B")
        a_three.send_text("three from A")
        self.assertEqual(a_three.recv_data().text, "three from A")
        # echo = false: the sender does not get its message back, every other member does,
        # on its instance and on the other.
        qa1.send_text("quiet from A")
        self.assertEqual(qa2.recv_data().text, "quiet from A")
        self.assertEqual(qb.recv_data().text, "quiet from A")
        qb.send_text("quiet from B")
        self.assertEqual(qa1.recv_data().text, "quiet from B")
        self.assertEqual(qa2.recv_data().text, "quiet from B")
        for i, c in enumerate((qa1, qb, a_one, b_one, b_two, a_three, qa2)):
            c.expect_silence(0.5 if i == 0 else 0.05)
        self.assertEqual(self.metric(a, "wsrelay_cluster_messages_received_total"), 2)
        self.assertEqual(self.metric(b, "wsrelay_cluster_messages_received_total"), 2)


class MetricsTest(ClusterTestCase):

    def test_counters_gauges_and_channels(self):
        r = self.redis()
        cfg = {"cluster": {"channel_prefix": "t3:"}, "limits": {"message_rate": 0}}
        a, b = self.instance(r, "A", cfg), self.instance(r, "B", cfg)
        self.wait_link_up(a, b)
        m = self.metrics(a)
        for name, kind in (("wsrelay_cluster_link_up", "gauge"),
                           ("wsrelay_cluster_subscribed_rooms", "gauge"),
                           ("wsrelay_cluster_messages_published_total", "counter"),
                           ("wsrelay_cluster_publishes_total", "counter"),
                           ("wsrelay_cluster_messages_received_total", "counter"),
                           ("wsrelay_cluster_messages_dropped_total", "counter"),
                           ("wsrelay_cluster_reconnects_total", "counter")):
            self.assertEqual(m.types.get(name), kind, name)
            self.assertEqual(m[name], 1 if name == "wsrelay_cluster_link_up" else 0, name)

        a1, a2, b1 = self.connect(a, "/m1"), self.connect(a, "/m2"), self.connect(b, "/m1")
        self.wait_subscribed(2, a)
        self.wait_subscribed(1, b)
        # Redis has the channels <prefix>room:<path>, /m1 subscribed by both instances.
        self.assertEqual(r.channels("t3:*"), ["t3:room:/m1", "t3:room:/m2"])
        numsub = r.command("PUBSUB", "NUMSUB", "t3:room:/m1", "t3:room:/m2")
        self.assertEqual(numsub, [b"t3:room:/m1", 2, b"t3:room:/m2", 1])

        # A: 25 messages in /m1 in one write (relayed in one or a few loop turns: batched into
        # fewer PUBLISHes), then 7 in /m2 one at a time (each waits for its echo: one PUBLISH
        # each). B: 10 in /m1 in one write.
        ta1, ta2, tb1 = Tally("a1", "AB"), Tally("a2", "C"), Tally("b1", "AB")
        a1.send_raw(burst("A", 0, 25))
        for seq in range(7):
            a2.send_text("C:%d" % seq)
            ta2.read_until(a2, "C", seq)
        b1.send_raw(burst("B", 0, 10))
        for t, c in ((ta1, a1), (tb1, b1)):
            t.read_until(c, "A", 24)
            t.read_until(c, "B", 9)
        for t in (ta1, tb1):
            self.assertEqual((len(t.seqs["A"]), len(t.seqs["B"])), (25, 10), t.name)

        def counters(d):
            m = self.metrics(d)
            return {k: m["wsrelay_cluster_" + k] for k in (
                "messages_published_total", "publishes_total", "messages_received_total",
                "messages_dropped_total", "reconnects_total", "link_up")}

        ma = counters(a)
        mb = counters(b)
        self.assertEqual(ma["messages_published_total"], 32, ma)
        self.assertEqual(mb["messages_published_total"], 10, mb)
        self.assertEqual(ma["messages_received_total"], 10, ma)     # B's, in /m1
        self.assertEqual(mb["messages_received_total"], 25, mb)     # A's /m1 only: no /m2 on B
        self.assertLess(ma["publishes_total"], ma["messages_published_total"], ma)
        self.assertGreaterEqual(ma["publishes_total"], 8, ma)     # 7 single ones + the burst
        self.assertLessEqual(mb["publishes_total"], mb["messages_published_total"], mb)
        self.assertGreaterEqual(mb["publishes_total"], 1, mb)
        for mm in (ma, mb):
            self.assertEqual((mm["messages_dropped_total"], mm["reconnects_total"],
                              mm["link_up"]), (0, 0, 1), mm)

        # The gauge follows the rooms with local members.
        a2.close()
        self.wait_subscribed(1, a)
        self.assertEqual(r.channels("t3:*"), ["t3:room:/m1"])
        a1.close()
        b1.close()
        self.wait_subscribed(0, a, b)
        self.assertEqual(r.channels("t3:*"), [])


class OutageTest(ClusterTestCase):

    def test_redis_killed_and_restarted(self):
        r = self.redis()
        cfg = {"limits": {"message_rate": 0}}
        a, b = self.instance(r, "A", cfg), self.instance(r, "B", cfg)
        sa, ra = self.connect(a, "/k", timeout=30), self.connect(a, "/k", timeout=30)
        sb, rb = self.connect(b, "/k", timeout=30), self.connect(b, "/k", timeout=30)
        self.wait_subscribed(1, a, b)
        tallies = {c: Tally(name, "A" if name[1] == "a" else "B")
                   for c, name in ((sa, "sa"), (ra, "ra"), (sb, "sb"), (rb, "rb"))}
        clients_of = {"A": (sa, ra), "B": (sb, rb)}
        sender = {"A": sa, "B": sb}
        nxt = {"A": 0, "B": 0}

        def send(src, n):
            sender[src].send_raw(burst(src, nxt[src], n))
            nxt[src] += n
            return nxt[src] - 1

        def read_all(src, last, clients):
            for c in clients:
                tallies[c].read_until(c, src, last)

        # Both ways, everything arrives everywhere.
        for src in "AB":
            read_all(src, send(src, 20), tallies)
        for c, t in tallies.items():
            self.assertEqual({s: len(v) for s, v in t.seqs.items()}, {"A": 20, "B": 20}, t.name)

        # Mid-traffic: bursts on their way when Redis dies.
        last_a, last_b = send("A", 50), send("B", 50)
        r.kill()
        mark = {}
        for d in (a, b):
            d.poll_notify(0)
            mark[d] = len(d.notifications)
        read_all("A", last_a, clients_of["A"])
        read_all("B", last_b, clients_of["B"])
        down = "cluster: redis link to %s down (" % r.endpoint
        for d in (a, b):
            line = self.wait_log(d, down)[0]
            self.assertTrue(line.startswith("<4>"), line)
            self.assertIn("local delivery continues, retrying", line)

        # The outage: local delivery goes on without a loss on each instance.
        outage_first = dict(nxt)
        for _ in range(4):
            for src in "AB":
                read_all(src, send(src, 25), clients_of[src])
        outage_sent = {src: nxt[src] - outage_first[src] for src in "AB"}
        for d, status_mark in mark.items():
            self.healthz(d)
            self.assertEqual(self.metric(d, "wsrelay_cluster_link_up"), 0, d.label)
            self.assertEqual(self.metric(d, "wsrelay_cluster_subscribed_rooms"), 0, d.label)
            self.wait_status(d, ", cluster link DOWN", status_mark)
        for d, src in ((a, "A"), (b, "B")):
            # Sent after the outage was noticed: none of them can have been published.
            self.assertGreaterEqual(self.metric(d, "wsrelay_cluster_messages_dropped_total"),
                                    outage_sent[src], d.label)
            # One warning for the outage, however many reconnects failed meanwhile.
            self.assertEqual(len(lines_with(d, down)), 1, d.stderr())

        # Redis back on the same port: probes both ways until each side hears the other.
        r.restart()
        t0 = time.monotonic()
        first_probe = dict(nxt)

        def resumed():
            for src in "AB":
                send(src, 1)
            tallies[rb].read_available(rb, 0.1)
            tallies[ra].read_available(ra, 0.02)
            return (tallies[rb].last("A") >= first_probe["A"],
                    tallies[ra].last("B") >= first_probe["B"])

        harness.wait_for(resumed, 30, "cross-instance delivery to resume after the restart",
                         until=all, step=0)
        elapsed = time.monotonic() - t0
        # At most one 2 s backoff, then the loop's 100 ms tick, the reconnect and the
        # subscriptions: well inside the 5 s promised, even on a loaded machine.
        self.assertLess(elapsed, RESUME_WITHIN_S, "delivery resumed after %.1fs" % elapsed)
        print("\n  redis restarted: delivery across instances back after %.2fs" % elapsed,
              end=" ")
        back = "cluster: redis link to %s is back after " % r.endpoint
        for d in (a, b):
            line = self.wait_log(d, back)[0]
            self.assertTrue(line.startswith("<5>"), line)
            dropped = re.search(r"; (\d+) messages for remote members were dropped meanwhile$",
                                line)
            self.assertIsNotNone(dropped, line)
            m = self.metrics(d)
            self.assertEqual(m["wsrelay_cluster_reconnects_total"], 1, d.label)
            self.assertEqual(m["wsrelay_cluster_link_up"], 1, d.label)
            self.assertEqual(m["wsrelay_cluster_subscribed_rooms"], 1, d.label)
            # Nothing was dropped before the outage, nor after it (the link is up again).
            self.assertEqual(m["wsrelay_cluster_messages_dropped_total"], int(dropped.group(1)),
                             "%s: %s" % (d.label, line))
            self.assertEqual(len(lines_with(d, down)), 1, d.stderr())

        # Afterwards, everything arrives everywhere again, once.
        final = dict(nxt)
        for src in "AB":
            read_all(src, send(src, 20), tallies)
        for c, t in tallies.items():
            for src in "AB":
                self.assertEqual(t.between(src, final[src], final[src] + 19),
                                 list(range(final[src], final[src] + 20)), t.name)
        for i, c in enumerate(tallies):
            c.expect_silence(0.5 if i == 0 else 0.05)

    def test_loss_noticed_when_last_data_and_fin_arrive_together(self):
        # Redis's last replies and its FIN reach an instance in one go (here the instance is
        # stopped meanwhile, as a process on a loaded machine may be): it must still notice the
        # loss by itself. Otherwise nothing tells it until one of its own PUBLISHes fails, and an
        # instance whose members only listen never reconnects or resubscribes once Redis is back.
        r = self.redis()
        a, b = self.instance(r, "A"), self.instance(r, "B")
        ca, cb = self.connect(a, "/f"), self.connect(b, "/f")
        self.wait_subscribed(1, a, b)
        r.signal(signal.SIGSTOP)
        try:
            ca.send_text("A:0")
            self.assertEqual(ca.recv_data().text, "A:0")    # A's PUBLISH is written
            a.send_signal(signal.SIGSTOP)
        finally:
            r.signal(signal.SIGCONT)
        try:
            # B has A's message: Redis has written it to A's own subscription too (A does not
            # deliver it twice; its publisher connection gets no answers, CLIENT REPLY OFF).
            self.assertEqual(cb.recv_data(timeout=20).text, "A:0")
            r.kill()
        finally:
            a.send_signal(signal.SIGCONT)
        self.wait_log(a, "cluster: redis link to %s down (" % r.endpoint)
        self.wait_metric(a, "wsrelay_cluster_link_up", lambda v: v == 0, "to be 0")
        # Back: A resubscribes by itself and hears B again (B's probes until one arrives).
        r.restart()
        self.wait_link_up(a, b)
        self.wait_subscribed(1, a, b)
        tally = Tally("ca", "A")
        tally.take("A:0")
        seq = iter(range(1, 1000))

        def probe():
            cb.send_text("B:%d" % next(seq))
            tally.read_available(ca, 0.1)
            return tally.last("B")

        harness.wait_for(probe, 20, "A's member to hear B again", until=lambda n: n >= 0, step=0)
        ca.expect_silence(0.3)

    def test_redis_paused_local_members_keep_being_served(self):
        r = self.redis()
        a = self.instance(r, "A", {"cluster": {"max_pending_bytes": 65536},
                                   "limits": {"message_rate": 0}})
        # After SIGCONT, B gets all A published before the drops (what the kernel's socket
        # buffers held: a few MiB) at once: a queue for its member that holds it all.
        b = self.instance(r, "B", {"limits": {"send_queue_bytes": 64 * MiB}})
        sa, ra = self.connect(a, "/p", timeout=30), self.connect(a, "/p", timeout=30)
        rb = self.connect(b, "/p", timeout=30)
        self.wait_subscribed(1, a, b)
        ta, tra, trb = Tally("sa", "A"), Tally("ra", "A"), Tally("rb", "")
        sa.send_text("A:0:before")
        for t, c in ((ta, sa), (tra, ra), (trb, rb)):
            t.read_until(c, "A", 0)

        # Messages of 1 KiB in writes of 20, the next write once both local members have the
        # last: a loop turn relays at most 20 KiB, so what A drops it drops because its writes to
        # the stopped Redis pile up (once the kernel's socket buffers are full: a few MiB), not
        # because one turn's batch is too big.
        size, per_write, count = KiB, 20, 2000
        nxt = 1

        def write():
            nonlocal nxt
            sa.send_raw(burst("A", nxt, per_write, pad=size))
            nxt += per_write
            ta.read_until(sa, "A", nxt - 1)
            tra.read_until(ra, "A", nxt - 1)

        def fill():
            self.assertLess(nxt * size, 256 * MiB, "no drop after %d MiB" % (nxt * size >> 20))
            write()
            return self.metric(a, "wsrelay_cluster_messages_dropped_total")

        r.signal(signal.SIGSTOP)
        try:
            dropped = harness.wait_for(fill, 60, "wsrelay A to drop messages for B while Redis "
                                       "is stopped", until=lambda v: v > 0, step=0)
            filled = nxt - 1
            line = self.wait_log(a, "(max_pending_bytes 65536)")[0]
            waiting = re.search(r"cluster: (\d+) bytes wait to be written to redis", line)
            self.assertIsNotNone(waiting, line)
            self.assertGreater(int(waiting.group(1)), 65536 - per_write * (size + 16), line)
            # The backlog is full: the local members keep getting every message, at full speed.
            t0 = time.monotonic()
            while nxt <= filled + count:
                write()
            took = time.monotonic() - t0
            self.assertEqual((len(ta.seqs["A"]), len(tra.seqs["A"])), (nxt, nxt))
            self.assertGreater(self.metric(a, "wsrelay_cluster_messages_dropped_total"), dropped)
        finally:
            r.signal(signal.SIGCONT)
        # Redis catches up. Until A's backlog is written a new message may be dropped too: probe
        # until B has the last one sent. Then B has had everything A published, in order and
        # once (Tally), and every message A relayed was either published or dropped.
        def caught_up():
            nonlocal nxt
            sa.send_text("A:%d:probe" % nxt)
            nxt += 1
            trb.read_available(rb, 0.1)
            return trb.last("A") == nxt - 1

        harness.wait_for(caught_up, 30, "B to get A's messages again after SIGCONT", step=0)
        last = trb.last("A")
        ta.read_until(sa, "A", last)
        tra.read_until(ra, "A", last)
        m = self.metrics(a)
        published = m["wsrelay_cluster_messages_published_total"]
        self.assertEqual(published + m["wsrelay_cluster_messages_dropped_total"], last + 1, m)
        self.assertEqual(len(trb.seqs["A"]), published, "B's member got %d of A's messages, "
                         "A published %d" % (len(trb.seqs["A"]), published))
        self.assertEqual(self.metric(b, "wsrelay_cluster_messages_received_total"), published)
        self.assertEqual((m["wsrelay_cluster_link_up"], m["wsrelay_cluster_reconnects_total"]),
                         (1, 0))
        rb.expect_silence(0.2)
        print("\n  paused redis: first drop after %d messages of %d bytes; then %d more relayed "
              "locally in %.2fs" % (filled, size, count, took), end=" ")

    def test_turn_bigger_than_max_pending_bytes_with_redis_up(self):
        # max_pending_bytes bounds what waits to be written to Redis. With Redis answering and
        # nothing waiting, a loop turn whose messages add up to more (a burst read at once, or
        # one big message) is not a backlog: it is published like any other.
        r = self.redis()
        cfg = {"cluster": {"max_pending_bytes": 65536}, "limits": {"message_rate": 0}}
        a, b = self.instance(r, "A", cfg), self.instance(r, "B", cfg)
        sa, rb = self.connect(a, "/t"), self.connect(b, "/t")
        self.wait_subscribed(1, a, b)
        ta, trb = Tally("sa", "A"), Tally("rb", "")
        sa.send_raw(burst("A", 0, 100, pad=KiB))        # 100 KiB in one write
        ta.read_until(sa, "A", 99)
        sa.send_text("A:100:" + "y" * (100 * KiB))      # one 100 KiB message
        ta.read_until(sa, "A", 100)
        try:
            trb.read_until(rb, "A", 100, timeout=15)
        except AssertionError as e:
            m = self.metrics(a)
            self.fail("%s\nA: %d messages published, %d dropped; its log:\n%s" % (
                e, m["wsrelay_cluster_messages_published_total"],
                m["wsrelay_cluster_messages_dropped_total"], a.stderr()[-3000:]))
        self.assertEqual(trb.seqs["A"], list(range(101)))
        self.assertEqual(self.metric(a, "wsrelay_cluster_messages_dropped_total"), 0)
        rb.expect_silence(0.2)


class LinkProblemTest(ClusterTestCase):

    def test_wrong_password_then_sighup_with_the_right_one(self):
        r = self.redis(password="right horse battery")
        pw = os.path.join(r.dir, "password")
        with open(pw, "w") as f:
            f.write("wrong staple\n")
        d = self.instance(r, "A", {"cluster": {"password_file": pw}})
        refused = "AUTH refused: WRONGPASS"
        line = self.wait_log(d, refused)[0]
        self.assertTrue(line.startswith("<4>cluster: redis link to %s unavailable (" % r.endpoint),
                        line)
        self.assertIn("local delivery continues, retrying", line)
        # It keeps trying: each attempt is two new connections (publisher, subscriber) to Redis.
        watch = RespConnection(r.port, r.password)
        try:
            def connections():
                info = watch.command("INFO", "stats").decode()
                return int(re.search(r"^total_connections_received:(\d+)", info, re.M).group(1))
            first = connections()
            harness.wait_for(connections, 30, "wsrelay to try again (new connections, by redis "
                             "INFO stats)", until=lambda n: n >= first + 8)
        finally:
            watch.close()
        self.assertEqual(len(lines_with(d, "AUTH refused")), 1, d.stderr())
        m = self.metrics(d)
        self.assertEqual((m["wsrelay_cluster_link_up"], m["wsrelay_cluster_reconnects_total"]),
                         (0, 0))
        c1, c2 = self.connect(d, "/pw"), self.connect(d, "/pw")
        c1.send_text("local")
        self.assertEqual(c2.recv_data().text, "local")

        with open(pw, "w") as f:
            f.write("right horse battery\n")
        d.send_signal(signal.SIGHUP)
        d.wait_notify("READY=1", timeout=30)
        self.wait_link_up(d)
        self.wait_log(d, "<5>cluster: redis link to %s up (node A," % r.endpoint)
        self.assertEqual(len(lines_with(d, "AUTH refused")), 1, d.stderr())
        self.wait_subscribed(1, d)

    def test_unreachable_address(self):
        port = harness.free_port()
        d = self.instance("redis://127.0.0.1:%d" % port, "A")
        line = self.wait_log(d, "cluster: redis link to 127.0.0.1:%d unavailable (" % port)[0]
        self.assertTrue(line.startswith("<4>"), line)
        self.assertIn("local delivery continues, retrying", line)
        ready = [n for n in d.notifications if "READY=1" in n.split("\n")]
        self.assertRegex(ready[0], r"(?m)^STATUS=.*, cluster link DOWN$")
        c1, c2 = self.connect(d, "/u"), self.connect(d, "/u")
        for i in range(10):
            c1.send_text("u%d" % i)
        self.assertEqual([c2.recv_data().text for _ in range(10)], ["u%d" % i for i in range(10)])
        self.assertEqual([c1.recv_data().text for _ in range(10)], ["u%d" % i for i in range(10)])
        self.healthz(d)
        m = self.metrics(d)
        self.assertEqual(m["wsrelay_cluster_link_up"], 0)
        # While the link is down every relayed message is counted as dropped for remote members.
        self.assertEqual(m["wsrelay_cluster_messages_dropped_total"], 10)
        # [cluster] redis changes only on restart: a reload says so and keeps the old address.
        d.update_config({"cluster": {"redis": "redis://127.0.0.1:%d" % harness.free_port()}})
        d.send_signal(signal.SIGHUP)
        d.wait_notify("READY=1", timeout=30)
        line = self.wait_log(d, "change only on restart")[0]
        self.assertTrue(line.startswith("<4>"), line)
        self.assertIn("127.0.0.1:%d" % port, line)
        self.assertEqual(len(lines_with(d, "unavailable (")), 1, d.stderr())
        c1.send_text("after reload")
        self.assertEqual(c2.recv_data().text, "after reload")


class HostileRedis:
    """A server on a loopback port that speaks RESP the way a broken or hostile Redis-compatible
    server might: it answers the setup (PING), but also sends replies nobody asked for, answers
    CLIENT REPLY OFF with an error and then every PUBLISH all the same, pushes malformed and
    foreign messages to a subscriber, and, once told to, garbage that is not RESP at all. It
    records every command it receives, per connection. Not a stand-in for Redis (the other tests
    run the real one): the tests here are about what such a peer must not do to wsrelay."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.commands = []          # per accepted connection: the list of commands (tuples)
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                log = []
                self.commands.append(log)
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, log), daemon=True).start()

    @staticmethod
    def _read_command(f):
        head = f.readline()
        if not head:
            return None
        assert head.startswith(b"*"), head
        args = []
        for _ in range(int(head[1:])):
            n = int(f.readline()[1:])
            args.append(f.read(n + 2)[:-2])
        return tuple(args)

    def _serve(self, conn, log):
        f = conn.makefile("rb")
        try:
            while True:
                cmd = self._read_command(f)
                if cmd is None:
                    return
                with self.lock:
                    log.append(cmd)
                name = cmd[0].upper()
                if name == b"PING":
                    # PONG, then replies to nothing: an unexpected "+OK" and an integer.
                    conn.sendall(b"+PONG\r\n+OK\r\n:7\r\n")
                elif name == b"CLIENT":
                    conn.sendall(b"-ERR unknown subcommand 'REPLY'\r\n")
                elif name == b"PUBLISH":
                    conn.sendall(b":1\r\n")
                elif name == b"SUBSCRIBE":
                    for i, ch in enumerate(cmd[1:], 1):
                        conn.sendall(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:%d\r\n"
                                     % (len(ch), ch, i))
                        # A push of the wrong shape, a message on a channel that is not a
                        # room's, and one whose envelope is corrupt.
                        conn.sendall(b"*2\r\n$7\r\nmessage\r\n$1\r\nx\r\n")
                        conn.sendall(b"*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$3\r\nabc\r\n")
                        conn.sendall(b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$4\r\n\xff\xff\xff\xff\r\n"
                                     % (len(ch), ch))
        except (OSError, AssertionError, ValueError):
            return
        finally:
            conn.close()

    def connections(self):
        with self.lock:
            return [list(c) for c in self.commands]

    def send_garbage(self):
        """Bytes that are not RESP, on every connection open now."""
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sendall(b"?this is not RESP\r\n")
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.listener.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.thread.join(timeout=5)


class HostileServerTest(ClusterTestCase):

    def test_replies_nobody_asked_for_and_garbage_cost_no_crash(self):
        fake = HostileRedis()
        self.addCleanup(fake.close)
        d = self.instance(fake.url, "A")
        self.wait_link_up(d)
        c1, c2 = self.connect(d, "/h"), self.connect(d, "/h")
        self.wait_subscribed(1, d)
        for i in range(20):
            c1.send_text("h%d" % i)
        self.assertEqual([c2.recv_data().text for _ in range(20)], ["h%d" % i for i in range(20)])
        self.assertEqual([c1.recv_data().text for _ in range(20)], ["h%d" % i for i in range(20)])
        self.wait_metric(d, "wsrelay_cluster_messages_published_total", lambda v: v == 20, "to be 20")
        # The publisher asked for no answers, after the setup and before its first PUBLISH; the
        # server's error to that and its answers to every PUBLISH were ignored. The metric counts
        # what wsrelay wrote; the fake server's thread records it when it has read it.
        pub = harness.wait_for(lambda: next((c for c in fake.connections()
                                             if any(cmd[0] == b"PUBLISH" for cmd in c)), None),
                               10, "the fake redis to read a PUBLISH", until=lambda c: c is not None)
        names = [b" ".join(cmd[:3]) if cmd[0] == b"CLIENT" else cmd[0] for cmd in pub]
        self.assertEqual(names[:2], [b"PING", b"CLIENT REPLY OFF"], names)
        self.assertEqual(set(names[2:]), {b"PUBLISH"}, names)
        self.wait_log(d, "cluster: redis answered the publisher with an error: ERR unknown "
                         "subcommand 'REPLY'")
        self.wait_log(d, 'cluster: ignoring a message on redis channel "other": not a room channel')
        self.wait_log(d, 'cluster: ignoring a message on redis channel "wsrelay:room:/h"')
        self.assertEqual(self.metric(d, "wsrelay_cluster_messages_received_total"), 0)
        self.assertEqual(self.metric(d, "wsrelay_cluster_link_up"), 1)
        self.healthz(d)
        # Not RESP at all: the link is given up (one warning) and made again.
        fake.send_garbage()
        line = self.wait_log(d, "cluster: redis link to 127.0.0.1:%d down (" % fake.port)[0]
        self.assertIn("not the Redis protocol", line)
        self.wait_metric(d, "wsrelay_cluster_reconnects_total", lambda v: v == 1, "to be 1")
        self.wait_subscribed(1, d)
        c1.send_text("after")
        self.assertEqual(c2.recv_data().text, "after")
        self.healthz(d)
        self.assertIsNone(d.proc.poll(), "wsrelay exited")


class CheckConfigTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wsrelay-cluster-cfg-")

    def tearDown(self):
        for f in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, f))
        os.rmdir(self.tmp)

    def check(self, text):
        path = os.path.join(self.tmp, "wsrelay.toml")
        with open(path, "w") as f:
            f.write(text)
        return path, harness.run_cli(["--check-config", "--config", path])

    def test_valid_cluster_config(self):
        path, r = self.check('[cluster]\nredis = "redis://127.0.0.1:6390/2"\n'
                             'channel_prefix = "x:"\nnode_id = "n1"\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cluster redis 127.0.0.1:6390/2 (channels x:room:<path>, node n1)",
                      r.stdout)
        path, r = self.check('[cluster]\nredis = "unix:/run/redis/redis.sock"\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^cluster redis unix:/run/redis/redis\.sock \(")
        path, r = self.check('[server]\nlog_level = "info"\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("cluster redis", r.stdout)

    def test_bad_redis_url(self):
        for url in ("http://x", "redis://host:99999"):
            with self.subTest(url=url):
                path, r = self.check('[server]\nlog_level = "info"\n\n[cluster]\n'
                                     'redis = "%s"\n' % url)
                self.assertEqual(r.returncode, 2, r.stderr)
                m = re.search(re.escape(path) + r":(\d+):(\d+): cluster\.redis: \S", r.stderr)
                self.assertIsNotNone(m, r.stderr)
                self.assertEqual(int(m.group(1)), 5, r.stderr)
                self.assertGreaterEqual(int(m.group(2)), 1)


if __name__ == "__main__":
    unittest.main()
