#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""wsrelay conformance suite: the Autobahn TestSuite "fuzzingclient" case list, sections 1-7, 9
and 10, reimplemented on the raw client in wsclient.py (standard library only).

Each case runs on its own connection in its own room, so wsrelay (echo on, the default) behaves as
the echo server Autobahn expects. Verdicts follow Autobahn's rules:

  OK             the events and the closing behaviour are what the case expects
  NON-STRICT     accepted by Autobahn but not the strict behaviour (e.g. an invalid UTF-8 message
                 failed only when complete, not as soon as the bad octet arrived (6.4.x "fail
                 fast"); a protocol error answered by dropping TCP or with an empty close frame
                 instead of the close code)
  INFORMATIONAL  Autobahn accepts several behaviours and only reports which one (7.1.6, 7.13.x)
  FAILED         anything else: wrong echo, missing/extra events, wrong close code, the wrong
                 endpoint failing the connection, the server not closing TCP after the close
                 handshake, a timeout

Usage, against a running server:
    /usr/bin/python3 tests/e2e/conformance.py --url ws://127.0.0.1:8080 [--cases '1.*,5.*']
    /usr/bin/python3 tests/e2e/conformance.py --url wss://host:443 --insecure | --cafile CA.pem
or let it start wsrelay itself (max_message_bytes = 16 MiB, send_queue_bytes = 64 MiB):
    WSRELAY_BIN=build/src/wsrelay /usr/bin/python3 tests/e2e/conformance.py --spawn
Exit status: 0 if no case FAILED, 1 otherwise, 2 on usage errors.
"""

import argparse
import fnmatch
import os
import ssl
import struct
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wsclient  # noqa: E402
from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,  # noqa: E402
                      encode_frame, mask_bytes)

OK, NON_STRICT, INFORMATIONAL, FAILED = "OK", "NON-STRICT", "INFORMATIONAL", "FAILED"

# Bounded waits (seconds). Autobahn waits 1 s in several places; we mostly wait for the events
# themselves and only sit out a fixed time where a case expects *nothing* to happen.
QUIET = 0.3          # "nothing must arrive" windows
EVENT_TIMEOUT = 5.0  # expected events of ordinary cases
FAIL_TIMEOUT = 3.0   # the server must fail the connection within this
EOF_TIMEOUT = 2.0    # after a close frame, the server must close TCP within this
FAST_WAIT = 0.5      # 6.4.x: the "wait" between the parts of an invalid message
BIG_TIMEOUT = 30.0   # 9.x


class CaseFailure(Exception):
    pass


# ---------------------------------------------------------------- building blocks
class F:
    """A frame to send (built, and masked with a fresh key, when sent)."""

    def __init__(self, op, payload=b"", fin=True, rsv=0):
        self.op, self.fin, self.rsv = op, fin, rsv
        self.payload = payload.encode("utf-8") if isinstance(payload, str) else payload

    def wire(self):
        return encode_frame(self.op, self.payload, fin=self.fin, rsv=self.rsv)


def T(payload, fin=True, rsv=0):
    return F(OP_TEXT, payload, fin, rsv)


def B(payload, fin=True, rsv=0):
    return F(OP_BINARY, payload, fin, rsv)


def C(payload, fin=True, rsv=0):
    return F(OP_CONT, payload, fin, rsv)


def PING(payload=b"", fin=True, rsv=0):
    return F(OP_PING, payload, fin, rsv)


def PONG(payload=b"", fin=True, rsv=0):
    return F(OP_PONG, payload, fin, rsv)


def CLOSE(code=None, reason=b"", rsv=0, fin=True):
    return F(OP_CLOSE, wsclient.close_payload(code, reason), fin, rsv)


def CLOSE_RAW(payload):
    return F(OP_CLOSE, payload)


def msg_text(data):
    return ("message", OP_TEXT, data.encode("utf-8") if isinstance(data, str) else data)


def msg_binary(data):
    return ("message", OP_BINARY, data)


def pong(data):
    return ("pong", data.encode("utf-8") if isinstance(data, str) else data)


def fmt_event(ev):
    if ev is None:
        return "nothing"
    kind = ev[0]
    if kind == "message":
        data = ev[2]
        shown = repr(data[:24]) + ("...(%d bytes)" % len(data) if len(data) > 24 else "")
        return "%s %s" % ("text" if ev[1] == OP_TEXT else "binary", shown)
    if kind in ("pong", "ping"):
        return "%s %r" % (kind, ev[1][:24])
    if kind == "close":
        return "close %s%s" % (ev[1], (" %r" % ev[2][:30]) if ev[2] else "")
    return kind


def fmt_events(evs):
    return "[" + ", ".join(fmt_event(e) for e in evs) + "]" if evs else "[]"


def fragmented_wire(op, payload, frag):
    """One message in frames of `frag` bytes, masked with one key in a single pass (fast for the
    9.x cases; frag is a multiple of 4 there, so the key phase is the same in every frame)."""
    key = os.urandom(4)
    if frag % 4:
        return b"".join(encode_frame(op if i == 0 else OP_CONT, payload[i:i + frag],
                                     fin=i + frag >= len(payload))
                        for i in range(0, max(1, len(payload)), frag))
    masked = mask_bytes(key, payload)
    out = []
    n = len(payload)
    for i in range(0, max(1, n), frag):
        chunk = masked[i:i + frag]
        fin = i + frag >= n
        b0 = (0x80 if fin else 0) | (op if i == 0 else OP_CONT)
        ln = len(chunk)
        if ln <= 125:
            hdr = struct.pack("!BB", b0, 0x80 | ln)
        elif ln <= 0xFFFF:
            hdr = struct.pack("!BBH", b0, 0x80 | 126, ln)
        else:
            hdr = struct.pack("!BBQ", b0, 0x80 | 127, ln)
        out.append(hdr + key)
        out.append(chunk)
    return b"".join(out)


# ---------------------------------------------------------------- one connection
class Target:
    def __init__(self, url, ssl_context=None, server_hostname=None, prefix=None):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("ws", "wss"):
            raise ValueError("URL must be ws:// or wss://")
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "wss" else 80)
        self.prefix = (prefix if prefix is not None else u.path.rstrip("/")) or ""
        self.ssl_context = ssl_context if u.scheme == "wss" else None
        self.server_hostname = server_hostname or u.hostname
        self.counter = 0


class Session:
    """One case's connection; turns received frames into Autobahn-style events."""

    def __init__(self, target, case_id, timeout=EVENT_TIMEOUT):
        target.counter += 1
        room = "%s/autobahn/%s-%d-%d" % (target.prefix, case_id, os.getpid(), target.counter)
        self.c = wsclient.WSClient(target.host, target.port, room, timeout=max(timeout, 5.0),
                                   ssl_context=target.ssl_context,
                                   server_hostname=target.server_hostname)
        self.partial_op, self.partial = None, []
        self.closed_by_server = None   # close event the server sent, if any
        self.eof = False

    # ---- sending ----
    def send(self, frames, mode="all", chop=None, delay=0.0):
        """mode 'all': every frame in one write; 'frames': one write per frame, `delay` apart;
        'chop': the whole byte sequence in writes of `chop` bytes, `delay` apart."""
        try:
            if mode == "frames":
                for i, f in enumerate(frames):
                    self.c.send_raw(f.wire() if isinstance(f, F) else f)
                    if delay and i + 1 < len(frames):
                        time.sleep(delay)
            else:
                wire = b"".join(f.wire() if isinstance(f, F) else f for f in frames)
                if mode == "chop":
                    self.c.send_chopped(wire, chop, delay)
                else:
                    self.c.send_raw(wire)
        except wsclient.ConnectionClosed:
            self.eof = True   # the server already gave up on us; the events will tell

    # ---- receiving ----
    def event(self, timeout):
        """Next event: ('message', op, data), ('ping', p), ('pong', p), ('close', code, reason),
        ('eof',), or None on timeout. A malformed server frame raises CaseFailure."""
        if self.eof:
            return ("eof",)
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.c.recv_frame(timeout=max(0.0, deadline - time.monotonic()))
            except wsclient.Timeout:
                return None
            except wsclient.ConnectionClosed:
                self.eof = True
                return ("eof",)
            except wsclient.WSError as e:
                raise CaseFailure("server sent a bad frame: %s" % e)
            if f.rsv:
                raise CaseFailure("server frame with RSV bits set: %r" % f)
            if f.opcode >= 8:
                if not f.fin or len(f.payload) > 125:
                    raise CaseFailure("server sent an invalid control frame %r" % f)
                if f.opcode == OP_PING:
                    return ("ping", f.payload)
                if f.opcode == OP_PONG:
                    return ("pong", f.payload)
                if f.opcode == OP_CLOSE:
                    if len(f.payload) == 1:
                        raise CaseFailure("server close frame with a 1-byte payload")
                    ev = ("close", f.close_code, f.close_reason)
                    self.closed_by_server = ev
                    return ev
                raise CaseFailure("server sent reserved opcode %#x" % f.opcode)
            if f.opcode == OP_CONT:
                if self.partial_op is None:
                    raise CaseFailure("server sent a continuation frame with nothing to continue")
            elif f.opcode in (OP_TEXT, OP_BINARY):
                if self.partial_op is not None:
                    raise CaseFailure("server started a message inside a fragmented one")
                self.partial_op = f.opcode
            else:
                raise CaseFailure("server sent reserved opcode %#x" % f.opcode)
            self.partial.append(f.payload)
            if f.fin:
                data = b"".join(self.partial)
                op = self.partial_op
                self.partial_op, self.partial = None, []
                return ("message", op, data)

    def collect(self, n, timeout):
        """Up to n events (stopping early at close/eof/timeout)."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            ev = self.event(max(0.0, deadline - time.monotonic()))
            if ev is None:
                break
            got.append(ev)
            if ev[0] in ("close", "eof"):
                break
        return got

    def wait_eof(self, timeout=EOF_TIMEOUT):
        if self.eof:
            return True
        try:
            self.c.wait_eof(timeout)
            self.eof = True
            return True
        except wsclient.Timeout:
            return False

    def abort(self):
        self.c.abort()


# ---------------------------------------------------------------- endings
def end_with_client_close(s, code=1000, reason=b""):
    """We start the closing handshake; the server must answer with close (same code, 1000 or
    empty) and then close TCP, with no other event in between."""
    s.send([CLOSE(code, reason)])
    ev = s.event(FAIL_TIMEOUT)
    if ev is None:
        return FAILED, "no close frame in answer to ours within %.0fs" % FAIL_TIMEOUT
    if ev[0] == "eof":
        return FAILED, "server dropped TCP without answering our close"
    if ev[0] != "close":
        return FAILED, "unexpected %s after the expected events" % fmt_event(ev)
    if ev[1] not in (code, 1000, None):
        return FAILED, "answered close %d with close %s" % (code, ev[1])
    if not s.wait_eof():
        return FAILED, "server did not close TCP within %.0fs after the close handshake" % (
            EOF_TIMEOUT)
    return OK, ""


def end_with_server_close(s, ev, codes, strict_codes=None):
    """The server sent `ev` (a close or eof) to fail the connection. Autobahn: the close code must
    be one of `codes` or empty; we answer and the server must close TCP."""
    strict = strict_codes or codes
    if ev[0] == "eof":
        return NON_STRICT, "TCP dropped without a close frame (expected %s)" % (
            "/".join(map(str, strict)))
    code = ev[1]
    if code is not None and code not in codes:
        return FAILED, "close code %d, expected %s" % (code, "/".join(map(str, codes)))
    s.send([CLOSE(code if code is not None else 1000)])
    if not s.wait_eof():
        return FAILED, "server sent close %s but did not close TCP within %.0fs" % (
            code, EOF_TIMEOUT)
    if code is None:
        return NON_STRICT, "empty close frame (expected %s)" % "/".join(map(str, strict))
    if code not in strict:
        return NON_STRICT, "close %d accepted by Autobahn; strict is %s" % (
            code, "/".join(map(str, strict)))
    return OK, ""


# ---------------------------------------------------------------- case templates
def expect_ok(frames, expected, mode="all", chop=None, delay=0.0, timeout=EVENT_TIMEOUT,
              builder=None):
    """Send, receive exactly `expected` (nothing at all for [], checked for QUIET seconds), then
    close normally."""
    def run(s):
        s.send(builder() if builder else frames, mode, chop, delay)
        if expected:
            got = s.collect(len(expected), timeout)
        else:
            got = s.collect(1, QUIET)
        if got != expected:
            return FAILED, "expected %s, got %s" % (fmt_events(expected), fmt_events(got))
        return end_with_client_close(s)
    return run


def expect_fail(frames, codes=(1002,), before=(), non_strict_before=None, mode="all", chop=None,
                delay=0.0, strict_codes=None):
    """Send; the server may first produce `before` (e.g. the echo of a valid first message), then
    must fail the connection with one of `codes`."""
    before = list(before)

    def run(s):
        s.send(frames, mode, chop, delay)
        got = []
        deadline = time.monotonic() + FAIL_TIMEOUT + EVENT_TIMEOUT
        while True:
            ev = s.event(max(0.0, deadline - time.monotonic()))
            if ev is None:
                return FAILED, "the server did not fail the connection (got %s)" % fmt_events(got)
            if ev[0] in ("close", "eof"):
                break
            got.append(ev)
        verdict = OK
        if got != before:
            if non_strict_before is not None and got == list(non_strict_before):
                verdict = NON_STRICT
            else:
                return FAILED, "before failing: expected %s, got %s" % (
                    fmt_events(before), fmt_events(got))
        v, detail = end_with_server_close(s, ev, codes, strict_codes)
        if v == OK and verdict == NON_STRICT:
            return NON_STRICT, "events %s (strict: %s)" % (fmt_events(got), fmt_events(before))
        return v, detail
    return run


def expect_close_answer(frames, expected=(), codes=(1000,), informational=False,
                        alternatives=None, mode="all", strict_codes=None, timeout=EVENT_TIMEOUT):
    """7.x: our frames include a close. The server sends `expected` events (or one of
    `alternatives`), then a close with one of `codes` (or empty), then closes TCP; nothing it
    receives after our close may produce anything."""
    expected = list(expected)

    def run(s):
        s.send(frames, mode)
        got = []
        deadline = time.monotonic() + timeout
        while True:
            ev = s.event(max(0.0, deadline - time.monotonic()))
            if ev is None:
                return FAILED, "no close frame (got %s)" % fmt_events(got)
            if ev[0] == "eof":
                return FAILED, "server dropped TCP without a close frame after %s" % (
                    fmt_events(got))
            if ev[0] == "close":
                break
            got.append(ev)
        ok_events = [expected] + [list(a) for a in (alternatives or [])]
        if got not in ok_events:
            return FAILED, "expected %s before the close, got %s" % (
                fmt_events(expected), fmt_events(got))
        if ev[1] is not None and ev[1] not in codes:
            return FAILED, "close code %s, expected %s or empty" % (
                ev[1], "/".join(map(str, codes)))
        if ev[1] is None and 1000 not in codes and not informational:
            # Autobahn accepts an empty close here; the strict answer carries the code.
            if not s.wait_eof():
                return FAILED, "server did not close TCP within %.0fs after the close" % (
                    EOF_TIMEOUT)
            return NON_STRICT, "empty close frame (expected %s)" % "/".join(map(str, codes))
        # The server has both closes now: it must close TCP.
        if not s.wait_eof():
            return FAILED, "server did not close TCP within %.0fs after the close handshake" % (
                EOF_TIMEOUT)
        if informational:
            return INFORMATIONAL, "got %s then close %s" % (fmt_events(got), ev[1])
        if strict_codes and ev[1] not in strict_codes:
            return NON_STRICT, "close %s (strict: %s)" % (ev[1], "/".join(map(str, strict_codes)))
        return OK, ""
    return run


def fail_fast(p1, p2, p3, frames):
    """6.4.x: an invalid UTF-8 text message in three parts with a wait after each. OK if the
    server fails (1007) right after part 2, NON-STRICT if only after part 3."""
    def run(s):
        if frames:
            parts = [T(p1, fin=False).wire(), C(p2, fin=False).wire(), C(p3).wire()]
        else:
            whole = T(p1 + p2 + p3).wire()
            hl = len(whole) - len(p1 + p2 + p3)
            parts = [whole[:hl + len(p1)], whole[hl + len(p1):hl + len(p1) + len(p2)],
                     whole[hl + len(p1) + len(p2):]]
        s.send([parts[0]])
        ev = s.event(FAST_WAIT)
        if ev is not None:
            return FAILED, "part 1 (valid) got %s" % fmt_event(ev)
        s.send([parts[1]])
        ev = s.event(FAST_WAIT)
        if ev is not None:
            if ev[0] in ("close", "eof"):
                return end_with_server_close(s, ev, (1007,))
            return FAILED, "after part 2: %s" % fmt_event(ev)
        s.send([parts[2]])
        ev = s.event(FAIL_TIMEOUT)
        if ev is None:
            return FAILED, "invalid message never failed"
        if ev[0] in ("close", "eof"):
            v, d = end_with_server_close(s, ev, (1007,))
            if v == OK:
                return NON_STRICT, "failed only after the whole message (not fail-fast)"
            return v, d
        return FAILED, "after part 3: %s" % fmt_event(ev)
    return run


def roundtrips(op, size, count, timeout=BIG_TIMEOUT):
    """9.7/9.8: `count` messages of `size`, each sent after the previous echo arrived."""
    def run(s):
        payload = (b"*" if op == OP_TEXT else b"\xfe") * size
        t_end = time.monotonic() + timeout
        for i in range(count):
            s.send([F(op, payload)])
            ev = s.event(max(0.0, t_end - time.monotonic()))
            if ev != ("message", op, payload):
                return FAILED, "round trip %d: got %s" % (i, fmt_event(ev))
        return end_with_client_close(s)
    return run


# ---------------------------------------------------------------- the case list
CASES = []   # (id, description, run, timeout)


def add(cid, desc, run, timeout=EVENT_TIMEOUT):
    CASES.append((cid, desc, run, timeout))


def build_cases():
    KiB, MiB = 1 << 10, 1 << 20

    # 1 Framing
    sizes = [0, 125, 126, 127, 128, 65535, 65536]
    for i, n in enumerate(sizes):
        add("1.1.%d" % (i + 1), "text message, payload %d" % n,
            expect_ok([T("*" * n)], [msg_text("*" * n)]))
    add("1.1.8", "text message, payload 65536, in chops of 997 octets",
        expect_ok([T("*" * 65536)], [msg_text("*" * 65536)], mode="chop", chop=997))
    for i, n in enumerate(sizes):
        add("1.2.%d" % (i + 1), "binary message, payload %d" % n,
            expect_ok([B(b"\xfe" * n)], [msg_binary(b"\xfe" * n)]))
    add("1.2.8", "binary message, payload 65536, in chops of 997 octets",
        expect_ok([B(b"\xfe" * 65536)], [msg_binary(b"\xfe" * 65536)], mode="chop", chop=997))

    # 2 Pings/Pongs
    add("2.1", "ping without payload", expect_ok([PING()], [pong(b"")]))
    add("2.2", "ping with small text payload",
        expect_ok([PING("Hello, world!")], [pong("Hello, world!")]))
    bp = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
    add("2.3", "ping with small binary payload", expect_ok([PING(bp)], [pong(bp)]))
    add("2.4", "ping with 125 octets", expect_ok([PING(b"\xfe" * 125)], [pong(b"\xfe" * 125)]))
    add("2.5", "ping with 126 octets", expect_fail([PING(b"\xfe" * 126)]))
    add("2.6", "ping with 125 octets, octet-wise chops",
        expect_ok([PING(b"\xfe" * 125)], [pong(b"\xfe" * 125)], mode="chop", chop=1))
    add("2.7", "unsolicited pong without payload", expect_ok([PONG()], []))
    add("2.8", "unsolicited pong with payload",
        expect_ok([PONG("unsolicited pong payload")], []))
    add("2.9", "unsolicited pong, then ping",
        expect_ok([PONG("unsolicited pong payload"), PING("ping payload")],
                  [pong("ping payload")]))
    pings = [PING("payload-%d" % i) for i in range(10)]
    add("2.10", "10 pings", expect_ok(pings, [pong("payload-%d" % i) for i in range(10)]))
    add("2.11", "10 pings, octet-wise chops",
        expect_ok(pings, [pong("payload-%d" % i) for i in range(10)], mode="chop", chop=1))

    # 3 Reserved bits
    hello = "Hello, world!"
    add("3.1", "text with RSV = 1", expect_fail([T(hello, rsv=1)]))
    add("3.2", "text, text with RSV = 2, ping",
        expect_fail([T(hello), T(hello, rsv=2), PING(hello)], before=[msg_text(hello)],
                    mode="frames"))
    add("3.3", "text, text with RSV = 3, ping, in one chop",
        expect_fail([T(hello), T(hello, rsv=3), PING(hello)], before=[msg_text(hello)]))
    add("3.4", "text, text with RSV = 4, ping, octet-wise chops",
        expect_fail([T(hello), T(hello, rsv=4), PING(hello)], before=[msg_text(hello)],
                    mode="chop", chop=1))
    add("3.5", "binary with RSV = 5", expect_fail([B(bp, rsv=5)]))
    add("3.6", "ping with RSV = 6", expect_fail([PING(hello, rsv=6)]))
    add("3.7", "close with RSV = 7", expect_fail([CLOSE(1000, rsv=7)]))

    # 4 Opcodes
    for sec, base in ((1, 3), (2, 11)):
        kind = "non-control" if sec == 1 else "control"
        add("4.%d.1" % sec, "reserved %s opcode %d" % (kind, base),
            expect_fail([F(base, b"")]))
        add("4.%d.2" % sec, "reserved %s opcode %d, payload" % (kind, base + 1),
            expect_fail([F(base + 1, "reserved opcode payload")]))
        add("4.%d.3" % sec, "text, reserved %s opcode %d, ping" % (kind, base + 2),
            expect_fail([T(hello), F(base + 2, b""), PING(hello)], before=[msg_text(hello)],
                        mode="frames"))
        add("4.%d.4" % sec, "text, reserved %s opcode %d with payload, ping" % (kind, base + 3),
            expect_fail([T(hello), F(base + 3, "reserved opcode payload"), PING(hello)],
                        before=[msg_text(hello)], mode="frames"))
        add("4.%d.5" % sec, "text, reserved %s opcode %d with payload, ping, octet-wise" % (
            kind, base + 4),
            expect_fail([T(hello), F(base + 4, "reserved opcode payload"), PING(hello)],
                        before=[msg_text(hello)], mode="chop", chop=1))

    # 5 Fragmentation
    add("5.1", "ping in 2 fragments",
        expect_fail([PING("fragment1", fin=False), C("fragment2")]))
    add("5.2", "pong in 2 fragments",
        expect_fail([PONG("fragment1", fin=False), C("fragment2")]))
    two = [T("fragment1", fin=False), C("fragment2")]
    add("5.3", "text in 2 fragments", expect_ok(two, [msg_text("fragment1fragment2")]))
    add("5.4", "text in 2 fragments, octet-wise chops",
        expect_ok(two, [msg_text("fragment1fragment2")], mode="chop", chop=1))
    add("5.5", "text in 2 fragments, one write per frame with a delay",
        expect_ok(two, [msg_text("fragment1fragment2")], mode="frames", delay=0.1))
    withping = [T("fragment1", fin=False), PING("pongme!"), C("fragment2")]
    exp = [pong("pongme!"), msg_text("fragment1fragment2")]
    add("5.6", "text in 2 fragments, ping in between", expect_ok(withping, exp))
    add("5.7", "text in 2 fragments, ping in between, octet-wise chops",
        expect_ok(withping, exp, mode="chop", chop=1))
    add("5.8", "text in 2 fragments, ping in between, one write per frame with a delay",
        expect_ok(withping, exp, mode="frames", delay=0.1))
    for cid, fin, mode in (("5.9", True, "all"), ("5.10", True, "frames"),
                           ("5.11", True, "chop"), ("5.12", False, "all"),
                           ("5.13", False, "frames"), ("5.14", False, "chop")):
        add(cid, "continuation (FIN=%s) with nothing to continue, then text (%s)" % (fin, mode),
            expect_fail([C("non-continuation payload", fin=fin), T(hello)], mode=mode, chop=1))
    add("5.15", "2 fragments, then continuation FIN=0 with nothing to continue, then text",
        expect_fail([T("fragment1", fin=False), C("fragment2"), C("fragment3", fin=False),
                     T("fragment4")], before=[msg_text("fragment1fragment2")],
                    non_strict_before=[]))
    seq16 = [C("fragment1", fin=False), T("fragment2", fin=False), C("fragment3")] * 2
    add("5.16", "2x: continuation FIN=0 with nothing to continue, then 2-fragment text",
        expect_fail(seq16))
    seq17 = [C("fragment1"), T("fragment2", fin=False), C("fragment3")] * 2
    add("5.17", "2x: continuation FIN=1 with nothing to continue, then 2-fragment text",
        expect_fail(seq17))
    add("5.18", "text in 2 fragments, both with opcode text",
        expect_fail([T("fragment1", fin=False), T("fragment2")]))
    five = [T("fragment1", fin=False), C("fragment2", fin=False), PING("pongme 1!"),
            C("fragment3", fin=False), C("fragment4", fin=False), PING("pongme 2!"),
            C("fragment5")]
    exp5 = [pong("pongme 1!"), pong("pongme 2!"),
            msg_text("fragment1fragment2fragment3fragment4fragment5")]
    add("5.19", "text in 5 fragments, 2 pings in between, with delays",
        expect_ok(five, exp5, mode="frames", delay=0.05))
    add("5.20", "same as 5.19, each frame in its own write, longer delays",
        expect_ok(five, exp5, mode="frames", delay=0.15))

    # 6 UTF-8 handling
    add("6.1.1", "text of length 0", expect_ok([T("")], [msg_text("")]))
    add("6.1.2", "3 empty fragments",
        expect_ok([T("", fin=False), C("", fin=False), C("")], [msg_text("")]))
    add("6.1.3", "3 fragments, middle non-empty",
        expect_ok([T("", fin=False), C("middle frame payload", fin=False), C("")],
                  [msg_text("middle frame payload")]))
    valid = "Hello-µ@ßöäüàá-UTF-8!!".encode()
    add("6.2.1", "valid UTF-8 in one frame", expect_ok([T(valid)], [msg_text(valid)]))
    cut = len("Hello-µ@ßöä".encode())
    add("6.2.2", "valid UTF-8 in 2 fragments, split on a code point boundary",
        expect_ok([T(valid[:cut], fin=False), C(valid[cut:])], [msg_text(valid)]))

    def octet_frames(data):
        return [F(OP_TEXT if i == 0 else OP_CONT, data[i:i + 1], fin=i == len(data) - 1)
                for i in range(len(data))]

    add("6.2.3", "valid UTF-8 in 1-octet fragments", expect_ok(octet_frames(valid),
                                                                 [msg_text(valid)]))
    kosme = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
    add("6.2.4", "valid UTF-8 (kosme) in 1-octet fragments",
        expect_ok(octet_frames(kosme), [msg_text(kosme)]))
    bad = kosme + b"\xed\xa0\x80" + b"edited"
    add("6.3.1", "invalid UTF-8 in one frame", expect_fail([T(bad)], codes=(1007,)))
    add("6.3.2", "invalid UTF-8 in 1-octet fragments", expect_fail(octet_frames(bad),
                                                                    codes=(1007,)))
    a1, a2, a3 = kosme, b"\xf4\x90\x80\x80", b"edited"
    b1, b2, b3 = kosme + b"\xf4", b"\x90", b"\x80\x80edited"
    add("6.4.1", "invalid UTF-8 in 3 frames, fail fast", fail_fast(a1, a2, a3, True), 10)
    add("6.4.2", "invalid UTF-8 in 3 frames, bad octet alone, fail fast",
        fail_fast(b1, b2, b3, True), 10)
    add("6.4.3", "invalid UTF-8 in 3 chops of one frame, fail fast",
        fail_fast(a1, a2, a3, False), 10)
    add("6.4.4", "invalid UTF-8 in 3 chops of one frame, bad octet alone, fail fast",
        fail_fast(b1, b2, b3, False), 10)

    for (sec, idx), (ok, data) in utf8_sequences():
        cid = "6.%d.%d" % (sec, idx)
        if ok:
            add(cid, "valid UTF-8 %s" % data.hex(), expect_ok([T(data)], [msg_text(data)]))
        else:
            add(cid, "invalid UTF-8 %s" % data.hex(), expect_fail([T(data)], codes=(1007,)))

    # 7 Close handling
    hw = "Hello World!"
    add("7.1.1", "text, then close", expect_close_answer([T(hw), CLOSE(1000)], [msg_text(hw)]))
    add("7.1.2", "two closes", expect_close_answer([CLOSE(1000), CLOSE(1000)]))
    add("7.1.3", "close, then ping", expect_close_answer([CLOSE(1000), PING(hw)]))
    add("7.1.4", "close, then text", expect_close_answer([CLOSE(1000), T(hw)]))
    add("7.1.5", "fragment 1, close, fragment 2",
        expect_close_answer([T("fragment1", fin=False), CLOSE(1000), C("fragment2")]))
    big = ("BAsd7&jh23" * 26 * KiB).encode()
    add("7.1.6", "256K text, close, ping (informational)",
        expect_close_answer([T(big), CLOSE(1000), PING(hw)], [msg_text(big)],
                            alternatives=[[]], informational=True, timeout=10))
    add("7.3.1", "close with empty payload", expect_close_answer([CLOSE()]))
    add("7.3.2", "close with 1-octet payload",
        expect_close_answer([CLOSE_RAW(b"a")], codes=(1002,)))
    add("7.3.3", "close with code", expect_close_answer([CLOSE(1000)]))
    add("7.3.4", "close with code and reason", expect_close_answer([CLOSE(1000, hw)]))
    add("7.3.5", "close with code and 123-octet reason",
        expect_close_answer([CLOSE(1000, "*" * 123)]))
    add("7.3.6", "close with code and 124-octet reason (payload too long)",
        expect_close_answer([CLOSE(1000, "*" * 124)], codes=(1002,)))
    add("7.5.1", "close with invalid UTF-8 reason",
        expect_close_answer([CLOSE(1000, bad)], codes=(1002, 1007), strict_codes=(1007,)))
    for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999,
                              4000, 4999]):
        add("7.7.%d" % (i + 1), "close with valid code %d" % code,
            expect_close_answer([CLOSE(code)], codes=(1000, code)))
    for i, code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]):
        add("7.9.%d" % (i + 1), "close with invalid code %d" % code,
            expect_close_answer([CLOSE(code)], codes=(1002,)))
    add("7.13.1", "close with code 5000 (informational)",
        expect_close_answer([CLOSE(5000)], codes=(1000, 1002, 5000), informational=True))
    add("7.13.2", "close with code 65535 (informational)",
        expect_close_answer([CLOSE(65535)], codes=(1000, 1002, 65535), informational=True))

    # 9 Limits/performance
    big_sizes = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB]
    for sec, op, unit in ((1, OP_TEXT, b"*"), (2, OP_BINARY, b"\xfe")):
        for i, n in enumerate(big_sizes):
            add("9.%d.%d" % (sec, i + 1), "%s message of %d bytes" % (
                "text" if op == OP_TEXT else "binary", n),
                big_case(op, unit, n), BIG_TIMEOUT)
    frags = [64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB]
    for sec, op, unit in ((3, OP_TEXT, b"*"), (4, OP_BINARY, b"\xfe")):
        for i, fs in enumerate(frags):
            add("9.%d.%d" % (sec, i + 1), "4 MiB %s message in fragments of %d" % (
                "text" if op == OP_TEXT else "binary", fs),
                big_case(op, unit, 4 * MiB, frag=fs), BIG_TIMEOUT)
    chops = [64, 128, 256, 512, 1024, 2048]
    for sec, op, unit in ((5, OP_TEXT, b"*"), (6, OP_BINARY, b"\xfe")):
        for i, ch in enumerate(chops):
            add("9.%d.%d" % (sec, i + 1), "1 MiB %s message in chops of %d" % (
                "text" if op == OP_TEXT else "binary", ch),
                big_case(op, unit, 1 * MiB, chop=ch), BIG_TIMEOUT)
    rt = [0, 16, 64, 256, 1024, 4096]
    for sec, op in ((7, OP_TEXT), (8, OP_BINARY)):
        for i, n in enumerate(rt):
            add("9.%d.%d" % (sec, i + 1), "1000 %s round trips of %d bytes" % (
                "text" if op == OP_TEXT else "binary", n), roundtrips(op, n, 1000), BIG_TIMEOUT)

    # 10 Misc
    add("10.1.1", "65536-byte text in 1300-byte fragments",
        expect_ok(None, [msg_text(b"*" * 65536)],
                  builder=lambda: [fragmented_wire(OP_TEXT, b"*" * 65536, 1300)]))


def big_case(op, unit, n, frag=None, chop=None):
    def run(s):
        payload = unit * n
        # Unfragmented: one "fragment" as big as the message (the sizes are multiples of 4).
        wire = fragmented_wire(op, payload, frag or n)
        s.c.sock.settimeout(BIG_TIMEOUT)
        s.send([wire], mode="chop" if chop else "all", chop=chop)
        ev = s.event(BIG_TIMEOUT)
        if ev is None or ev[0] != "message" or ev[1] != op or ev[2] != payload:
            return FAILED, "expected the %d-byte echo, got %s" % (n, fmt_event(ev))
        return end_with_client_close(s)
    return run


def utf8_sequences():
    """Autobahn 6.5-6.23 (after Markus Kuhn's UTF-8 decoder stress test). Yields
    ((section, index), (valid, bytes))."""
    kosme = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

    def valid(b):
        try:
            b.decode("utf-8")   # Python's codec is strict: no surrogates, no overlongs
            return True
        except UnicodeDecodeError:
            return False

    sections = []
    sections.append([b"hello\x24world", b"hello\xc2\xa2world", b"hello\xe2\x82\xacworld",
                     b"hello\xf0\xa4\xad\xa2world", kosme])                            # 6.5
    sections.append([kosme[:i] for i in range(1, len(kosme) + 1)])                      # 6.6
    sections.append([b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80"])       # 6.7
    sections.append([b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"])             # 6.8
    sections.append([b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"])       # 6.9
    sections.append([b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf",
                     b"\xfd\xbf\xbf\xbf\xbf\xbf"])                                      # 6.10
    sections.append([b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xf4\x8f\xbf\xbf",
                     b"\xf4\x90\x80\x80"])                                              # 6.11
    sections.append([b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf",
                     b"\x80\xbf\x80\xbf\x80", b"\x80\xbf\x80\xbf\x80\xbf",
                     bytes(range(0x80, 0xC0))])                                         # 6.12
    sections.append([b"".join(bytes([c]) + b"\x20" for c in range(0xC0, 0xE0)),
                     b"".join(bytes([c]) + b"\x20" for c in range(0xE0, 0xF0)),
                     b"".join(bytes([c]) + b"\x20" for c in range(0xF0, 0xF8)),
                     b"".join(bytes([c]) + b"\x20" for c in range(0xF8, 0xFC)),
                     b"".join(bytes([c]) + b"\x20" for c in range(0xFC, 0xFE))])        # 6.13
    incomplete = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80",
                  b"\xfc\x80\x80\x80\x80", b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf",
                  b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    sections.append(incomplete)                                                         # 6.14
    sections.append([b"".join(incomplete)])                                             # 6.15
    sections.append([b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"])                            # 6.16
    sections.append([b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
                     b"\xf8\x80\x80\x80\xaf", b"\xfc\x80\x80\x80\x80\xaf"])             # 6.17
    sections.append([b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf",
                     b"\xf8\x87\xbf\xbf\xbf", b"\xfc\x83\xbf\xbf\xbf\xbf"])             # 6.18
    sections.append([b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",
                     b"\xf8\x80\x80\x80\x80", b"\xfc\x80\x80\x80\x80\x80"])             # 6.19
    sections.append([b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
                     b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf"])                # 6.20
    sections.append([b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xa0\x80\xed\xbf\xbf",
                     b"\xed\xad\xbf\xed\xb0\x80", b"\xed\xad\xbf\xed\xbf\xbf",
                     b"\xed\xae\x80\xed\xb0\x80", b"\xed\xae\x80\xed\xbf\xbf",
                     b"\xed\xaf\xbf\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf"])         # 6.21
    nonchars = [b"\xef\xbf\xbe", b"\xef\xbf\xbf"]
    for plane in range(1, 17):
        for low in (0xFFFE, 0xFFFF):
            nonchars.append(chr(plane * 0x10000 + low).encode("utf-8"))
    sections.append(nonchars)                                                           # 6.22
    sections.append([chr(c).encode("utf-8") for c in
                     (0xFFF9, 0xFFFA, 0xFFFB, 0xFFFC, 0xFFFD, 0xFFFE, 0xFFFF)])        # 6.23
    for s_i, seqs in enumerate(sections):
        for j, b in enumerate(seqs):
            yield (5 + s_i, j + 1), (valid(b), b)


build_cases()


# ---------------------------------------------------------------- running
def select(patterns):
    if not patterns:
        return list(CASES)
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [c for c in CASES if any(fnmatch.fnmatchcase(c[0], p) or c[0] == p for p in pats)]


def run_case(target, case):
    cid, _desc, run, timeout = case
    t0 = time.monotonic()
    s = None
    try:
        s = Session(target, cid, timeout)
        verdict, detail = run(s)
    except CaseFailure as e:
        verdict, detail = FAILED, str(e)
    except wsclient.HandshakeError as e:
        verdict, detail = FAILED, "opening handshake: %s" % e
    except (wsclient.WSError, OSError) as e:
        verdict, detail = FAILED, "%s: %s" % (type(e).__name__, e)
    finally:
        if s is not None:
            s.abort()
    return cid, verdict, detail, time.monotonic() - t0


def run_suite(target, patterns=None, out=sys.stdout, verbose=False):
    cases = select(patterns)
    results = []
    out.write("%-8s %-13s %8s  %s\n" % ("case", "verdict", "ms", "detail"))
    for case in cases:
        cid, verdict, detail, dt = run_case(target, case)
        results.append((cid, verdict, detail, dt))
        if verbose or verdict != OK:
            line = "%-8s %-13s %8.0f  %s" % (cid, verdict, dt * 1000, detail or case[1])
        else:
            line = "%-8s %-13s %8.0f  %s" % (cid, verdict, dt * 1000, case[1])
        out.write(line + "\n")
        out.flush()
    counts = {}
    for r in results:
        counts[r[1]] = counts.get(r[1], 0) + 1
    total_t = sum(r[3] for r in results)
    out.write("summary: %d cases: %s; %.1fs\n" % (
        len(results), ", ".join("%s %d" % (k, counts[k]) for k in
                                (OK, NON_STRICT, INFORMATIONAL, FAILED) if k in counts),
        total_t))
    return results


def make_ssl_context(insecure=False, cafile=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="ws://HOST:PORT[/prefix] or wss://... of a running server")
    ap.add_argument("--spawn", action="store_true",
                    help="start $WSRELAY_BIN with a suitable config instead of --url")
    ap.add_argument("--cases", help="comma-separated case ids or globs, e.g. '1.*,5.19,6.4.*'")
    ap.add_argument("--insecure", action="store_true", help="wss: do not verify the certificate")
    ap.add_argument("--cafile", help="wss: CA certificate(s) to verify the server with")
    ap.add_argument("--server-name", help="wss: SNI / host name to verify (default: URL host)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.list:
        for cid, desc, _r, _t in select(args.cases):
            print("%-8s %s" % (cid, desc))
        return 0
    if bool(args.url) == bool(args.spawn):
        ap.error("give exactly one of --url and --spawn")
    if not select(args.cases):
        ap.error("no case matches %r" % args.cases)
    daemon = None
    try:
        if args.spawn:
            import harness
            daemon = harness.Daemon(SPAWN_CONFIG)
            url = daemon.url("")
        else:
            url = args.url
        ctx = None
        if url.startswith("wss:"):
            ctx = make_ssl_context(args.insecure, args.cafile)
        target = Target(url, ctx, args.server_name)
        results = run_suite(target, args.cases, verbose=args.verbose)
    finally:
        if daemon is not None:
            rc = daemon.stop()
            problem = daemon.sanitizer_report()
            if rc != 0 or problem:
                sys.stderr.write("wsrelay exit status %s\n%s\n" % (rc, problem or ""))
            daemon.cleanup()
    return 1 if any(r[1] == FAILED for r in results) else 0


SPAWN_CONFIG = {"limits": {"max_message_bytes": 16 << 20, "send_queue_bytes": 64 << 20},
                "server": {"log_level": "notice"}}


if __name__ == "__main__":
    sys.exit(main())
