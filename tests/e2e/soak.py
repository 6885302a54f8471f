#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""wsrelay soak test: one daemon, thousands of connections, nothing lost.

One wsrelay is started the way systemd starts it, with two passed sockets ("plain" for ws:// and
http://, "tls" for wss:// and https://, a throwaway CA from test_tls.Pki) and short timeouts.
For `--duration` seconds:

* well-behaved clients (`--good`, a few hundred, in `--rooms` rooms, over ws and wss; some join
  late, some leave early, some only listen) send sequence-numbered messages of 16 B to 60 KiB,
  text and binary, and read everything, answering pings;
  About a third of them negotiate permessage-deflate (several window sizes) and send some of
  their messages compressed, so rooms mix compressed and plain members;
* a second process (this file with --role abuse, so the CPU work is spread over two cores) runs
  the rest: a pool of lurkers that join, idle and leave; short-lived clients that join, send,
  check their echo and leave; bursts of big messages into the busiest rooms; and misbehaving
  clients -- garbage requests and frames (also bad compressed data and a decompression bomb),
  handshakes and frames that stall half-way, consumers that stop reading in the busiest rooms,
  floods, TCP resets at every stage (connect, request, after the 101, mid-frame,
  mid-fragmented message, while the server writes, mid-close, mid-TLS-handshake) and abandoned
  TLS handshakes;
* a thread polls GET /healthz every 0.5 s on a fresh connection (every 4th one over TLS) and
  samples the daemon's RSS and open file descriptors.

Tokens ([auth], issue #18): the last TOKEN_ROOMS rooms (/r45../r49 by default, never a busy one)
need a signed token; the others stay open. Keys are made for the run (an HS256 secret, an
Ed25519 key; an RSA public key sits in the public_key_file too). Every client of a token room --
well-behaved, lurker, short-lived, burst, misbehaving -- carries a valid token (HS256 or EdDSA,
minted with python3-jwt, in the query or in `Authorization: Bearer`); a well-behaved listen-only
client there gets `publish: false`; every 4th well-behaved client of an open room brings a valid
token too (verified, logged). The abuse process also makes hostile attempts: no token, a forged
signature, a wrong secret, an expired token, alg "none", alg confusion (HS256 keyed with the RSA
public key PEM), a token for another room, a forged token on an open room. Each must be refused
before any 101 with the status (401/403) and error_description the spec gives, and TCP closed
(Connection: close); one admitted is a failure. Afterwards wsrelay_auth_refusals_total (missing,
invalid, forbidden; summed over the instances) must equal what the abuse process counted, and no
log may contain the secret or a hostile token's signature.

Then every well-behaved client finishes its close handshake and everything is checked:

* delivery: for every sender S and every other well-behaved client X of its room, what X
  received from S is one contiguous run of sequence numbers, in order, each exactly once; it
  includes every message S sent after X's 101 arrived and S's own echo arrived before X sent
  its close frame (both facts order the server's broadcast against X's membership, so the rule
  holds without any timing assumption); each sender got its own echo of every message from
  seq 0; payloads, opcodes and rooms are as sent (nothing crosses rooms);
* no well-behaved client (good, lurker, short-lived) was ever closed by the server: it only ever
  sees the close frame that answers its own, with its own code;
* misbehaving clients got what the protocol says (400/408/426/431, close 1002/1007/1008/1009/
  1001, TLS failure, EOF within handshake_timeout or idle_timeout plus slack) -- each mismatch
  is reported;
* /healthz answered 200 "ok" within 1 s every time; the daemon stayed alive;
* afterwards the open-fd count returns exactly to its value before the first client (bounded
  wait), RSS to within --rss-slack-mib of its value after the warm-up (default 8 MiB, see
  below), and /metrics shows 0 WebSocket connections and 0 rooms;
* the log has no line at err or worse and no sanitizer report; SIGTERM then exits 0;
* every hostile token attempt was refused (see Tokens above), and the refusal counters agree.

RSS: the baseline is taken after the warm-up (15% of the run, 8-20 s), while the full mix is
running, when the allocator has grown to the steady state's working set (~900 connections, TLS
sessions, zlib state, full queues of non-readers). After every client has left, RSS must not
exceed it by more than the slack: memory kept per connection would show as growth over the
~5000 connections that come and go after the warm-up (8 MiB is under 2 KiB each; a leaked TLS
session is 30-60 KiB), while the allocator's fragmentation after the peak measured 0.4-1.2 MiB.
An ASan build keeps freed memory in quarantine (up to 256 MiB): there the figure is reported,
not checked; fds are checked exactly and LeakSanitizer checks the heap at exit.

Cluster mode (--cluster): the same run over two wsrelay instances, A and B, that share their rooms
through a throwaway redis-server ([cluster] redis = "redis://127.0.0.1:PORT", no persistence).
The clients start once both instances' links are up (/metrics: wsrelay_cluster_link_up 1) and
are spread over both: the well-behaved clients of a room alternate between A and B, every other
client picks one at random. The rules above hold for every pair of well-behaved clients, on the
same instance or not; what differs across instances is when a message must be there:

* start: a member on B is certain to get A's messages only once B's subscription to the room's
  channel has reached Redis, which the 101 does not tell (B subscribes at the end of the loop
  turn in which the room got its first member on B). So a member's cross-instance start is the
  arrival of its first message from the other instance sent after its 101 arrived: Redis had
  the subscription when it handled that message, and handles later PUBLISHes after it. Messages
  sent before are allowed, not required. To keep this from excusing a subscription that never
  comes, the start is at most SLACK_S after the 101: a member that joined earlier must have
  every cross-instance message sent from then on;
* end: an echo says that the sender's instance has published the message, not that the other
  instance has delivered it. So before its close, a member waits (bounded, CROSS_DRAIN_S) until
  it has every cross-instance message of its room that had been echoed when it decided to
  close; those are required, later ones are not;
* each instance is checked as one daemon is (fds, RSS, /healthz, /metrics, log, exit status),
  and also: its link is still up, nothing was dropped for remote members
  (wsrelay_cluster_messages_dropped_total 0, no reconnect: Redis was never down), it received
  messages from the other instance, and it has no channel left subscribed after the run.

Standalone:  WSRELAY_BIN=build/src/wsrelay /usr/bin/python3 tests/e2e/soak.py --duration 600
(--help for the mix; --cluster for two instances and Redis). Exit status 0 when every check
passed, 1 otherwise. test_soak.py runs it for CTest, with --duration from WSRELAY_SOAK_SECONDS
(default 120; cluster mode: WSRELAY_SOAK_CLUSTER_SECONDS, default 60) and the plan's random seed
from WSRELAY_SOAK_SEED (default: the time; the summary prints it).
"""

import argparse
import asyncio
import base64
import json
import os
import random
import re
import resource
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import jwt  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

import harness  # noqa: E402
import tokens  # noqa: E402
import wsclient  # noqa: E402
from redis_server import RedisServer  # noqa: E402
from wsclient import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT  # noqa: E402

KiB = 1 << 10
MiB = 1 << 20

# The daemon's configuration. Short timeouts so stalled clients are cut within the run; a rate
# limit well above what well-behaved clients send (about 1 message/s) and well below a flood.
LIMITS = {"max_connections": 20000, "max_connections_per_ip": 0,
          "message_rate": 50, "message_burst": 100, "rate_limit_action": "close",
          "max_message_bytes": 64 * KiB, "send_queue_bytes": 256 * KiB,
          "slow_consumer": "close", "max_header_bytes": 8192, "max_header_count": 64}
TIMEOUTS = {"handshake_timeout": "2s", "ping_interval": "4s", "idle_timeout": "10s",
            "close_timeout": "2s", "shutdown_timeout": "5s"}
HANDSHAKE_S, IDLE_S, CLOSE_S = 2.0, 10.0, 2.0
MAX_GOOD_PAYLOAD = 60000            # < max_message_bytes
BUSY_ROOMS = 5                      # rooms /r0../r4 carry big messages: non-readers go there
SLACK_S = 6.0                       # how late a server-side timeout may be observed under load
CROSS_DRAIN_S = 20.0                # cluster: how long a member waits for the other instance's
                                    # messages before its close (a wait, not a sleep)
# permessage-deflate offers of the clients that compress (wsrelay always answers with no context
# takeover both ways; a room mixes windows of 10, 12 and 15 bits and uncompressed members).
DEFLATE_OFFERS = ["permessage-deflate",
                  "permessage-deflate; client_max_window_bits",
                  "permessage-deflate; server_max_window_bits=10",
                  "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
                  "permessage-deflate; server_no_context_takeover; client_no_context_takeover"]

TOKEN_ROOMS = 5                     # the last rooms need a token ([[room]] auth = "token")
HOSTILE_TOKENS = {                  # variant -> (status, error_description, refusal counter)
    "missing": (401, "no token", "missing"),
    "forged": (401, "bad signature", "invalid"),
    "wrong-secret": (401, "bad signature", "invalid"),
    "expired": (401, "token expired", "invalid"),
    "alg-none": (401, "unsupported algorithm", "invalid"),
    "alg-confusion": (401, "bad signature", "invalid"),
    "other-room": (403, "room not allowed", "forbidden"),
    "open-room-forged": (401, "bad signature", "invalid"),
}
NO_TOKEN = ""                       # upgrade_request(token=NO_TOKEN): none, even in a token room


def token_rooms(rooms):
    """The token rooms among /r0../r{rooms-1}: the last TOKEN_ROOMS, never a busy one."""
    return ["/r%d" % i for i in range(max(BUSY_ROOMS, rooms - TOKEN_ROOMS), rooms)]


class SoakTokens:
    """The run's keys ([auth]) and the tokens made with them. The main process makes the keys in
    `directory` (create=True); the abuse process (--auth-dir) loads the same files."""

    def __init__(self, directory, rooms, create=False):
        self.dir = directory
        self.rooms = token_rooms(rooms)
        self.hmac_file = os.path.join(directory, "hmac.secret")
        self.ed_file = os.path.join(directory, "ed25519.key")
        self.rsa_file = os.path.join(directory, "rsa-public.pem")
        self.pub_file = os.path.join(directory, "public.pem")
        if create:
            os.makedirs(directory, exist_ok=True)
            ed, rsa = tokens.ed25519_pair(), tokens.rsa_pair()
            for path, data in (
                    (self.hmac_file, os.urandom(32).hex() + "\n"),
                    (self.ed_file, ed.private_key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption())),
                    (self.rsa_file, rsa.public_pem),
                    (self.pub_file, ed.public_pem + rsa.public_pem)):
                with open(path, "wb") as f:
                    f.write(data if isinstance(data, bytes) else data.encode())
        with open(self.hmac_file) as f:
            self.secret = f.readline().rstrip("\n")
        with open(self.ed_file, "rb") as f:
            self.ed = serialization.load_pem_private_key(f.read(), password=None)
        with open(self.rsa_file, "rb") as f:
            self.rsa_public_pem = f.read()
        self.minted = 0

    def needs(self, path):
        return path.split("?", 1)[0] in self.rooms

    def mint(self, room, sub, publish=True, exp=None):
        """A valid token for `room`, HS256 and EdDSA in turn."""
        c = tokens.claims(sub, [room], ttl=24 * 3600)
        if not publish:
            c["publish"] = False
        if exp is not None:
            c["exp"] = exp
        self.minted += 1
        if self.minted % 2:
            return jwt.encode(c, self.secret, algorithm="HS256")
        return jwt.encode(c, self.ed, algorithm="EdDSA")

    def hostile(self, variant, rng, open_room):
        """-> (room, token or NO_TOKEN) for one of HOSTILE_TOKENS."""
        room = rng.choice(self.rooms)
        sub = "mallory-%d" % rng.getrandbits(20)
        if variant == "missing":
            return room, NO_TOKEN
        if variant == "forged":
            return room, tokens.resign_garbage(self.mint(room, sub))
        if variant == "wrong-secret":
            return room, jwt.encode(tokens.claims(sub, [room]), os.urandom(32).hex(),
                                           algorithm="HS256")
        if variant == "expired":
            return room, self.mint(room, sub, exp=tokens.now() - 3600)
        if variant == "alg-none":
            return room, tokens.alg_none(tokens.claims(sub, [room]))
        if variant == "alg-confusion":
            return room, tokens.hs256_by_hand(tokens.claims(sub, [room]), self.rsa_public_pem)
        if variant == "other-room":
            other = rng.choice([r for r in self.rooms if r != room] or ["/elsewhere"])
            return room, self.mint(other, sub)
        return open_room, tokens.resign_garbage(self.mint(open_room, sub))


# The run's SoakTokens in this process (main and abuse), or None: upgrade_request() gives every
# request for a token room a valid token unless told otherwise.
TOKENS = None


# ---------------------------------------------------------------- small shared helpers
def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def settled_fd_count(pid, timeout=30.0):
    """fd_count once it holds still for 0.2 s (an sd_notify datagram, for one, briefly opens a
    socket right after the READY=1 the harness waits for)."""
    seen = {"count": None, "since": 0.0}

    def held():
        now, n = time.monotonic(), fd_count(pid)
        if n != seen["count"]:
            seen.update(count=n, since=now)
        return n, round(now - seen["since"], 2)

    return harness.wait_for(held, timeout, "wsrelay's fd count to hold still for 0.2 s "
                            "(count, seconds held)", until=lambda r: r[1] >= 0.2)[0]


def is_asan(pid):
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()
    except OSError:
        return False


def raise_nofile(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def client_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True
    return ctx


def client_hello(ctx):
    """The bytes of a real ClientHello (Python's TLS client through a MemoryBIO)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, declared_length=None):
    return wsclient.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask,
                                 declared_length=declared_length)


def upgrade_request(path, host="localhost", extra_headers=(), version="13", token=None,
                    via=None):
    """token: put in the query (via "query") or in Authorization: Bearer (via "header"); None:
    a valid one of TOKENS if the room needs one; NO_TOKEN: none at all."""
    if token is None and TOKENS is not None and TOKENS.needs(path):
        token = TOKENS.mint(path.split("?", 1)[0], "soak")
        via = via or ("header" if TOKENS.minted % 3 == 0 else "query")
    if token:
        if via == "header":
            extra_headers = list(extra_headers) + ["Authorization: Bearer " + token]
        else:
            path += ("&" if "?" in path else "?") + "token=" + token
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % host, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key,
             "Sec-WebSocket-Version: %s" % version] + list(extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


class ProtocolError(Exception):
    pass


class Closed(Exception):
    """EOF or reset from the server."""

    def __init__(self, how):
        super().__init__(how)
        self.how = how


def parse_frames(buf):
    """Whole server frames at the front of bytearray `buf` (consumed from it):
    [(fin, opcode, payload, rsv1)]. A masked frame or RSV2/RSV3 is a protocol error."""
    out = []
    pos, n = 0, len(buf)
    while n - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        ln, hl = b1 & 0x7F, 2
        if ln == 126:
            if n - pos < 4:
                break
            ln, hl = (buf[pos + 2] << 8) | buf[pos + 3], 4
        elif ln == 127:
            if n - pos < 10:
                break
            ln, hl = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
        if b1 & 0x80:
            raise ProtocolError("server sent a masked frame")
        if b0 & 0x30:
            raise ProtocolError("server frame with RSV2/RSV3 bits")
        if ln > 64 * MiB:
            raise ProtocolError("server frame of %d bytes" % ln)
        if n - pos < hl + ln:
            break
        out.append((bool(b0 & 0x80), b0 & 0x0F, bytes(buf[pos + hl:pos + hl + ln]),
                    bool(b0 & 0x40)))
        pos += hl + ln
    if pos:
        del buf[:pos]
    return out


def inflate(data):
    """RFC 7692 §7.2.2: a message is a raw deflate stream without its final empty block; no
    context takeover (wsrelay always agrees to none), so each message is inflated alone. A
    window of 15 bits decodes any smaller window."""
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(data + b"\x00\x00\xff\xff", 16 * MiB)
    except zlib.error as e:
        raise ProtocolError("server sent bad compressed data: %s" % e)
    if d.unconsumed_tail:
        raise ProtocolError("compressed message inflates to more than 16 MiB")
    return out


def deflate(data, window_bits=15):
    """One message compressed on its own (client_no_context_takeover)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -max(9, window_bits))
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


class Assembler:
    """Reassembles data messages from frames (inflating compressed ones when permessage-deflate
    was agreed); returns [(opcode, payload)], control frames as (opcode, payload) too, in
    arrival order."""

    def __init__(self, deflate=False):
        self.deflate = deflate
        self.op, self.parts, self.compressed = None, [], False
        self.compressed_count = 0

    def feed(self, frames):
        out = []
        for fin, op, payload, rsv1 in frames:
            if op >= 8:
                if not fin or len(payload) > 125 or rsv1:
                    raise ProtocolError("bad control frame from server")
                out.append((op, payload))
                continue
            if op == OP_CONT:
                if self.op is None:
                    raise ProtocolError("continuation with nothing to continue")
                if rsv1:
                    raise ProtocolError("RSV1 on a continuation frame (RFC 7692 §6.1)")
            else:
                if self.op is not None:
                    raise ProtocolError("new message inside a fragmented one")
                if rsv1 and not self.deflate:
                    raise ProtocolError("RSV1 without permessage-deflate")
                self.op, self.compressed = op, rsv1
            self.parts.append(payload)
            if fin:
                data = b"".join(self.parts)
                if self.compressed:
                    data = inflate(data)
                    self.compressed_count += 1
                out.append((self.op, data))
                self.op, self.parts, self.compressed = None, [], False
        return out


def close_code_of(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


class Skimmer:
    """Follows the server's frame boundaries without copying data payloads (for lurkers, which
    read everything but look only at control frames). feed() returns the control frames."""

    def __init__(self):
        self.skip = 0
        self.buf = bytearray()

    def feed(self, data):
        if self.skip >= len(data):
            self.skip -= len(data)
            return []
        self.buf += memoryview(data)[self.skip:]
        self.skip = 0
        buf, pos, ctrl = self.buf, 0, []
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln, hl = b1 & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hl = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hl = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if b1 & 0x80 or b0 & 0x70:
                raise ProtocolError("masked or RSV frame from the server")
            if b0 & 0x0F >= 8:
                if n - pos < hl + ln:
                    break
                ctrl.append((b0 & 0x0F, bytes(buf[pos + hl:pos + hl + ln])))
                pos += hl + ln
            elif n - pos >= hl + ln:
                pos += hl + ln
            else:
                self.skip = hl + ln - (n - pos)
                pos = n
        del buf[:pos]
        return ctrl


class Conn:
    """One asyncio-streams connection (TCP or TLS) with a receive buffer."""

    def __init__(self, reader, writer, sock):
        self.r, self.w, self.sock = reader, writer, sock
        self.buf = bytearray()
        self.asm = Assembler()
        self.deflate = None

    @classmethod
    async def open(cls, host, port, ctx=None, src=None, rcvbuf=None, timeout=10.0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setblocking(False)
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if src:
                # Spread clients over 127.0.0.x so ephemeral ports (and TIME_WAIT) never run out;
                # the port is chosen at connect time, per destination.
                s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
                s.bind((src, 0))
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(timeout):
                await loop.sock_connect(s, (host, port))
                r, w = await asyncio.open_connection(
                    sock=s, ssl=ctx, server_hostname="localhost" if ctx else None,
                    ssl_handshake_timeout=timeout if ctx else None, limit=1 << 20)
        except BaseException:
            s.close()
            raise
        return cls(r, w, s)

    def write(self, data):
        self.w.write(data)

    async def drain(self, timeout=10.0):
        async with asyncio.timeout(timeout):
            await self.w.drain()

    async def fill(self, n=262144):
        try:
            data = await self.r.read(n)
        except (ConnectionResetError, BrokenPipeError):
            raise Closed("reset")
        except ssl.SSLError as e:
            raise Closed("tls error: %s" % e.reason)
        except OSError as e:
            raise Closed("error: %s" % e)
        if not data:
            raise Closed("eof")
        self.buf += data

    async def read_http_head(self, timeout=10.0):
        async with asyncio.timeout(timeout):
            while True:
                i = self.buf.find(b"\r\n\r\n")
                if i >= 0:
                    head = bytes(self.buf[:i])
                    del self.buf[:i + 4]
                    return head
                if len(self.buf) > 65536:
                    raise ProtocolError("HTTP head too long")
                await self.fill()

    async def upgrade(self, path, timeout=10.0, extensions=None, token=None, via=None):
        """The opening handshake; `extensions` is a Sec-WebSocket-Extensions offer; token/via
        as for upgrade_request(). Sets self.deflate to the window bits we must compress with if
        permessage-deflate was agreed, else None."""
        req, key = upgrade_request(path, extra_headers=(
            ["Sec-WebSocket-Extensions: " + extensions] if extensions else []),
            token=token, via=via)
        self.write(req)
        head = await self.read_http_head(timeout)
        status, _reason, headers, _ = wsclient.parse_http_head(head)
        if status != 101:
            raise ProtocolError("upgrade to %s: %r" % (path, head[:80]))
        if headers.get("sec-websocket-accept") != wsclient.accept_for(key):
            raise ProtocolError("bad Sec-WebSocket-Accept %r" % headers.get("sec-websocket-accept"))
        agreed = headers.get("sec-websocket-extensions")
        self.deflate = None
        if agreed:
            params = [p.strip() for p in agreed.split(";")]
            if not extensions or params[0] != "permessage-deflate":
                raise ProtocolError("extension %r agreed, %r offered" % (agreed, extensions))
            self.deflate = 15
            for p in params[1:]:
                if p.startswith("client_max_window_bits="):
                    self.deflate = int(p.split("=", 1)[1])
        self.asm = Assembler(self.deflate is not None)

    async def next_messages(self):
        """At least one message or control frame (blocks); raises Closed at EOF."""
        while True:
            frames = parse_frames(self.buf)
            if frames:
                msgs = self.asm.feed(frames)
                if msgs:
                    return msgs
            await self.fill()

    async def read_to_eof(self, timeout):
        """Discard input until EOF/reset; returns (how, bytes_read) or ("timeout", n)."""
        n = len(self.buf)
        self.buf.clear()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        data = await self.r.read(262144)
                    except (ConnectionResetError, BrokenPipeError):
                        return "reset", n
                    except ssl.SSLError:
                        return "reset", n
                    except OSError:
                        return "reset", n
                    if not data:
                        return "eof", n
                    n += len(data)
        except TimeoutError:
            return "timeout", n

    def rst(self):
        """Drop the connection with a TCP RST (SO_LINGER 0, then close)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.w.transport.abort()

    def fin(self):
        """Close without a close handshake (FIN)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.w.transport.abort()

    def abort(self):
        self.w.transport.abort()


# ---------------------------------------------------------------- payloads of good clients
_TXT = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_" * 1100)
_BIN = bytes(range(256)) * 300


def good_payload(sid, seq, ts, size):
    """Sender id, seq and send time, then `size` bytes of filler that depend on seq. Even seqs
    are text (ASCII), odd ones binary (every byte value)."""
    head = b"G|%d|%d|%.6f|%d|" % (sid, seq, ts, size)
    if seq % 2 == 0:
        o = seq % 64
        return OP_TEXT, head + _TXT[o:o + size]
    o = seq % 256
    return OP_BINARY, head + _BIN[o:o + size]


def check_good_payload(op, data):
    """-> (sid, seq, ts) or raises ProtocolError."""
    try:
        _g, sid, seq, ts, size, filler = data.split(b"|", 5)
        sid, seq, ts, size = int(sid), int(seq), float(ts), int(size)
    except ValueError:
        raise ProtocolError("malformed good message %r" % data[:60])
    want_op, want = good_payload(sid, seq, ts, size)
    if op != want_op or len(filler) != size or data != want:
        raise ProtocolError("message sid=%d seq=%d corrupted (opcode %d, %d bytes)" % (
            sid, seq, op, len(data)))
    return sid, seq, ts


# ---------------------------------------------------------------- well-behaved clients
class Good:
    """One well-behaved client: joins its room at join_at, sends (unless listen_only) until
    leave_at or the end, then waits for the echo of its last message and closes with 1000.
    `inst` is the instance it connects to (cluster mode; always 0 with one daemon)."""

    def __init__(self, run, gid, room, tls, join_at, leave_at, listen_only, offer, inst=0):
        self.run, self.gid, self.room, self.tls, self.inst = run, gid, room, tls, inst
        self.offer = offer      # permessage-deflate offer, or None
        self.join_at, self.leave_at, self.listen_only = join_at, leave_at, listen_only
        self.sent = []          # send time of each seq
        self.echo = []          # arrival time of the echo of each seq
        self.rx = {}            # sender id -> [first seq, last seq, count]
        self.joined = None      # time the 101 had arrived (membership certain from then on)
        self.close_sent = None  # time our close frame was written
        self.close_reply = None
        # Cluster mode (see the module docstring): arrival of the first message from the other
        # instance that was sent after our 101; the time we decided to close (the end of the
        # cross-instance messages we must have); deliveries that came from the other instance.
        self.xready = None
        self.drain_at = None
        self.cross_received = 0
        self.rx_event = asyncio.Event()     # set whenever messages (or the end) arrive
        self.errors = []
        self.conn = None
        self.echo_done = asyncio.Event()
        self.got_close = asyncio.Event()
        self.closed_how = None
        self.received = 0
        self.rx_bytes = 0
        self.pings = 0
        self.done = False
        # A token ([auth]): in a token room always (publish: false for a listen-only client),
        # in an open room every 4th client; None: none.
        self.token = None
        if TOKENS is not None and (TOKENS.needs(room) or gid % 4 == 0):
            self.token = TOKENS.mint(room, "good-%d" % gid, publish=not listen_only)

    def error(self, msg):
        if len(self.errors) < 10:
            self.errors.append("good %d (%s %s): %s" % (self.gid, "wss" if self.tls else "ws",
                                                      self.room, msg))

    def __repr__(self):
        return "good %d" % self.gid

    async def main(self):
        run = self.run
        try:
            await asyncio.sleep(max(0.0, self.join_at - (time.monotonic() - run.t0)))
            if run.stopping.is_set():
                return
            plain, tls = run.ports[self.inst]
            self.conn = await Conn.open("127.0.0.1", tls if self.tls else plain,
                                        run.ctx if self.tls else None)
            await self.conn.upgrade(self.room, extensions=self.offer, token=self.token,
                                    via="header" if self.gid % 2 else "query")
            self.joined = time.monotonic()
            if self.offer and self.conn.deflate is None:
                self.error("permessage-deflate offered (%r) but not agreed" % self.offer)
            reader = asyncio.create_task(self.receive())
            if not self.listen_only:
                await self.send_loop()
            else:
                await self.wait_leave()
            await self.finish(reader)
        except asyncio.CancelledError:
            self.error("cancelled (the run's time ran out)")
            raise
        except (Closed, ProtocolError, OSError, TimeoutError, ssl.SSLError) as e:
            self.error("%s: %s" % (type(e).__name__, e))
        finally:
            self.done = True
            self.run.echoes_complete(self)     # never hold up the others' close
            if self.conn:
                self.conn.abort()

    async def wait_leave(self):
        if self.leave_at is not None:
            delay = self.leave_at - (time.monotonic() - self.run.t0)
            try:
                await asyncio.wait_for(self.run.stopping.wait(), max(0.0, delay))
            except TimeoutError:
                pass
        else:
            await self.run.stopping.wait()

    async def send_loop(self):
        run, rng = self.run, self.run.rng
        busy = int(self.room[2:]) < BUSY_ROOMS
        end = self.leave_at
        while not run.stopping.is_set():
            if end is not None and time.monotonic() - run.t0 >= end:
                break
            try:
                await asyncio.wait_for(run.stopping.wait(), rng.uniform(0.4, 1.6))
                break
            except TimeoutError:
                pass
            if self.got_close.is_set():
                return
            x = rng.random()
            if busy and x < 0.5:
                size = rng.randint(8 * KiB, 32 * KiB)
            elif x < 0.8:
                size = rng.randint(16, 200)
            elif x < 0.95:
                size = rng.randint(200, 4000)
            else:
                size = rng.randint(4000, MAX_GOOD_PAYLOAD)
            seq = len(self.sent)
            ts = time.monotonic()
            op, payload = good_payload(self.gid, seq, ts, size)
            self.sent.append(ts)
            run.sent_msgs += 1
            run.sent_bytes += len(payload)
            if self.conn.deflate is not None and rng.random() < 0.6:
                run.sent_compressed += 1
                self.conn.write(frame(op, deflate(payload, self.conn.deflate), rsv=4))
            else:
                self.conn.write(frame(op, payload))
            await self.conn.drain(15.0)

    async def receive(self):
        run = self.run
        c = self.conn
        try:
            while True:
                self.rx_event.set()
                for op, data in await c.next_messages():
                    now = time.monotonic()
                    if op == OP_PING:
                        self.pings += 1
                        c.write(frame(OP_PONG, data))
                        continue
                    if op == OP_PONG:
                        continue
                    if op == OP_CLOSE:
                        self.close_reply = close_code_of(data)
                        self.got_close.set()
                        self.echo_done.set()
                        if self.close_sent is None:
                            self.error("closed by the server: code %r reason %r" % (
                                self.close_reply, data[2:60]))
                        return
                    if op not in (OP_TEXT, OP_BINARY):
                        self.error("unexpected opcode %d" % op)
                        continue
                    self.rx_bytes += len(data)
                    if not data.startswith(b"G|"):
                        continue        # lurkers', short-lived clients' and floods' messages
                    sid, seq, ts = check_good_payload(op, data)
                    self.received += 1
                    run.latency(now - ts)
                    if sid == self.gid:
                        if seq != len(self.echo):
                            self.error("echo of seq %d arrived, expected %d" % (
                                seq, len(self.echo)))
                        else:
                            self.echo.append(now)
                            if len(self.echo) == len(self.sent):
                                self.echo_done.set()
                        continue
                    if run.cluster and 0 <= sid < len(run.goods) and \
                            run.goods[sid].inst != self.inst:
                        self.cross_received += 1
                        if self.xready is None and ts > self.joined:
                            self.xready = now
                    st = self.rx.get(sid)
                    if st is None:
                        self.rx[sid] = [seq, seq, 1]
                    else:
                        if seq != st[1] + 1:
                            self.error("from %d: seq %d after %d (%s)" % (
                                sid, seq, st[1], "duplicate/reordered" if seq <= st[1] else
                                "%d lost" % (seq - st[1] - 1)))
                        st[1] = seq
                        st[2] += 1
        except Closed as e:
            self.closed_how = e.how
            if self.close_sent is None:
                self.error("connection %s by the server before any close frame" % e.how)
            elif self.close_reply is None:
                self.error("connection %s before the close frame answering ours" % e.how)
        except ProtocolError as e:
            self.error("protocol: %s" % e)
        finally:
            self.got_close.set()
            self.echo_done.set()
            self.rx_event.set()

    async def finish(self, reader):
        """Wait for our own echoes, (at the end of the run) for everyone else's, then close."""
        if len(self.echo) < len(self.sent):
            self.echo_done.clear()
            if len(self.echo) < len(self.sent):
                try:
                    await asyncio.wait_for(self.echo_done.wait(), 20.0)
                except TimeoutError:
                    pass
            if len(self.echo) < len(self.sent) and not self.got_close.is_set():
                self.error("only %d of %d echoes arrived within 20 s" % (
                    len(self.echo), len(self.sent)))
        if self.leave_at is None or self.run.stopping.is_set():
            # The end of the run: close only once every sender has all its echoes, so messages
            # sent until the end count for every member (see Run.check_delivery).
            self.run.echoes_complete(self)
            await self.run.close_now.wait()
        if self.got_close.is_set():
            return
        await self.drain_cross()
        if self.got_close.is_set():
            return
        self.close_sent = time.monotonic()
        self.conn.write(frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
        try:
            await asyncio.wait_for(self.got_close.wait(), 15.0)
        except TimeoutError:
            self.error("no close frame within 15 s after ours")
            reader.cancel()
            return
        if self.close_reply != 1000 and self.closed_how is None:
            self.error("our close 1000 was answered with %r" % self.close_reply)
        how, _n = await self.conn.read_to_eof(CLOSE_S + SLACK_S)
        if how == "timeout":
            self.error("server kept TCP open after the close handshake")

    def cross_missing(self):
        """The senders on the other instance of which a message the delivery rule requires has
        not arrived yet (Run.must_seqs; contiguity is checked as messages arrive)."""
        out = []
        for s in self.run.by_room[self.room]:
            if s.inst != self.inst:
                must = self.run.must_seqs(self, s)
                st = self.rx.get(s.gid)
                if must and (st is None or st[1] < must[-1]):
                    out.append(s)
        return out

    async def drain_cross(self):
        """Cluster mode, before our close: the echoes of the other instance's senders say only
        that their instance published those messages; wait (bounded) until ours has delivered
        them. A shortfall is not reported here: check_delivery() finds it."""
        if not self.run.cluster:
            return
        self.drain_at = time.monotonic()
        deadline = self.drain_at + CROSS_DRAIN_S
        while not self.got_close.is_set() and self.cross_missing():
            self.rx_event.clear()
            try:
                await asyncio.wait_for(self.rx_event.wait(), deadline - time.monotonic())
            except TimeoutError:
                return


# ---------------------------------------------------------------- health and resource sampler
def diagnose(pid):
    """State, CPU time and stack of a daemon that stopped answering (gdb if installed)."""
    out = []
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        out.append("state %s, CPU %.2f s" % (st[0], daemon_cpu_s(pid)))
        time.sleep(1.0)
        out.append("CPU 1 s later %.2f s" % daemon_cpu_s(pid))
        with open("/proc/%d/wchan" % pid) as f:
            out.append("wchan %s" % f.read())
    except OSError as e:
        out.append(str(e))
    if shutil.which("gdb"):
        try:
            r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "bt"],
                               capture_output=True, text=True, timeout=60)
            out.append("\n".join(l for l in r.stdout.splitlines() if l.startswith("#")))
        except (OSError, subprocess.TimeoutExpired) as e:
            out.append("gdb: %s" % e)
    return "\n".join(out)


class Monitor(threading.Thread):
    """GET /healthz every 0.5 s on a fresh connection (every 4th over TLS), each bounded by
    1 s; samples RSS and fds; notices the daemon dying."""

    def __init__(self, daemon, plain_port, tls_port, ca, t0):
        super().__init__(daemon=True)
        self.d, self.plain_port, self.tls_port = daemon, plain_port, tls_port
        self.ctx = client_context(ca)
        self.t0 = t0
        self.stop = threading.Event()
        self.polls = 0
        self.failures = []
        self.max_latency = 0.0
        self.rss_peak = 0
        self.fd_peak = 0
        self.died = None
        self.diagnosis = None      # what the daemon was doing when it stopped answering

    def poll_once(self, tls):
        t = time.monotonic()
        deadline = t + 1.0
        raw = socket.create_connection(("127.0.0.1", self.tls_port if tls else self.plain_port),
                                       timeout=1.0)
        s = raw
        try:
            if tls:
                s = self.ctx.wrap_socket(raw, server_hostname="localhost")
            s.settimeout(max(0.01, deadline - time.monotonic()))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = s.recv(4096)
                except ssl.SSLZeroReturnError:
                    chunk = b""
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data and data.endswith(b"ok\n"):
                    break
        finally:
            s.close()
            raw.close()
        elapsed = time.monotonic() - t
        if not data.startswith(b"HTTP/1.1 200") or not data.endswith(b"\r\n\r\nok\n"):
            raise RuntimeError("answer %r" % data[:80])
        return elapsed

    def run(self):
        n = streak = 0
        while not self.stop.is_set():
            t_next = time.monotonic() + 0.5
            tls = n % 4 == 3
            n += 1
            # Read the daemon's sd_notify datagrams (STATUS= every 5 s) as systemd would: the
            # harness reads them only in wait_notify(), and an unread socket fills up after ~10
            # datagrams, after which the daemon blocks in sendmsg() (see test_faults.py).
            self.d.poll_notify(0)
            if not self.d.alive():
                self.died = "wsrelay exited with %r at t=%.1fs" % (
                    self.d.proc.poll(), time.monotonic() - self.t0)
                return
            try:
                el = self.poll_once(tls)
                self.max_latency = max(self.max_latency, el)
                if el > 1.0:
                    raise RuntimeError("took %.2fs" % el)
                streak = 0
            except Exception as e:  # noqa: BLE001 -- every kind of failure is a finding
                streak += 1
                if len(self.failures) < 20:
                    self.failures.append("healthz%s at t=%.1fs: %s: %s" % (
                        " (https)" if tls else "", time.monotonic() - self.t0,
                        type(e).__name__, e))
                if streak == 3 and self.diagnosis is None:
                    self.diagnosis = diagnose(self.d.pid)
            self.polls += 1
            self.rss_peak = max(self.rss_peak, rss_kib(self.d.pid))
            self.fd_peak = max(self.fd_peak, fd_count(self.d.pid))
            self.stop.wait(max(0.0, t_next - time.monotonic()))


# ---------------------------------------------------------------- the run (main process)
class Run:
    def __init__(self, args, daemons, ca):
        self.args = args
        self.daemons = daemons          # one, or instances A and B in cluster mode
        self.cluster = len(daemons) > 1
        self.ca = ca
        self.ctx = client_context(ca)
        self.ports = [(d.ports["plain"], d.ports["tls"]) for d in daemons]
        self.rng = random.Random(args.seed)
        self.failures = []
        self.sent_msgs = self.sent_bytes = self.sent_compressed = 0
        self.lat_max = 0.0
        self.lat_n = 0
        self.lat_hist = [0] * 64       # log2 buckets of milliseconds/16
        self.t0 = None
        self.goods = []
        self.by_room = {}
        self.waiting_close = set()

    def label(self, i):
        """How the log and the summary name instance i: "" with one daemon, "A " / "B "."""
        return "%s " % "AB"[i] if self.cluster else ""

    def latency(self, s):
        self.lat_n += 1
        if s > self.lat_max:
            self.lat_max = s
        b = 0
        v = int(s * 16000)
        while v > 0 and b < 63:
            v >>= 1
            b += 1
        self.lat_hist[b] += 1

    def lat_percentile(self, p):
        need = self.lat_n * p
        acc = 0
        for b, n in enumerate(self.lat_hist):
            acc += n
            if acc >= need and n:
                return (1 << b) / 16000.0
        return 0.0

    def echoes_complete(self, g):
        self.waiting_close.discard(g)
        if not self.waiting_close:
            self.close_now.set()

    def plan_goods(self):
        a, rng, D = self.args, self.rng, self.args.duration
        goods = []
        for gid in range(a.good):
            room = "/r%d" % (gid % a.rooms)
            tls = rng.random() < 0.4
            late = rng.random() < 0.25
            join_at = rng.uniform(0.1, 0.6) * D if late else rng.uniform(0.0, 2.0)
            leave_at = None
            if rng.random() < 0.1:
                leave_at = max(join_at + 5.0, rng.uniform(0.5, 0.9) * D)
                if leave_at > D - 2.0:
                    leave_at = None
            listen_only = rng.random() < 0.15
            offer = rng.choice(DEFLATE_OFFERS) if rng.random() < 0.35 else None
            # Cluster mode: a room's members alternate between the instances (gid // rooms
            # counts the members of a room), so every room spans both.
            inst = (gid // a.rooms) % len(self.daemons)
            goods.append(Good(self, gid, room, tls, join_at, leave_at, listen_only, offer, inst))
        return goods

    async def abuse_process(self):
        cmd = [sys.executable, os.path.abspath(__file__), "--role", "abuse",
               "--duration", str(self.args.duration), "--seed", str(self.args.seed + 1),
               "--rooms", str(self.args.rooms),
               "--plain-port", *[str(p) for p, _t in self.ports],
               "--tls-port", *[str(t) for _p, t in self.ports], "--ca", self.ca,
               "--rate", str(self.args.rate), "--lurkers", str(self.args.lurkers),
               "--auth-dir", TOKENS.dir]
        p = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(p.communicate(), self.args.duration + 120)
        except TimeoutError:
            p.kill()
            await p.wait()
            return {"failures": ["abuse process did not finish within duration + 120 s"]}
        lines = out.decode(errors="replace").strip().splitlines()
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            return {"failures": ["abuse process exited %s without a report; stderr:\n%s" % (
                p.returncode, err.decode(errors="replace")[-3000:])]}

    async def main(self):
        a = self.args
        self.stopping = asyncio.Event()
        self.close_now = asyncio.Event()
        self.t0 = time.monotonic()
        self.goods = self.plan_goods()
        for g in self.goods:
            self.by_room.setdefault(g.room, []).append(g)
        self.waiting_close = {g for g in self.goods if g.leave_at is None}
        abuse = asyncio.create_task(self.abuse_process())
        tasks = [asyncio.create_task(g.main()) for g in self.goods]
        await asyncio.sleep(a.warmup)
        self.rss_warm = [rss_kib(d.pid) for d in self.daemons]
        self.fd_warm = [fd_count(d.pid) for d in self.daemons]
        self.log("warm-up done: " + "; ".join(
            "%sRSS %d KiB, %d fds" % (self.label(i), self.rss_warm[i], self.fd_warm[i])
            for i in range(len(self.daemons))))
        while time.monotonic() - self.t0 < a.duration:
            await asyncio.sleep(min(10.0, a.duration - (time.monotonic() - self.t0)))
            self.log("t=%.0fs: %d good messages sent, " % (
                time.monotonic() - self.t0, self.sent_msgs) + "; ".join(
                "%sRSS %d KiB, %d fds" % (self.label(i), rss_kib(d.pid), fd_count(d.pid))
                for i, d in enumerate(self.daemons)))
        self.stopping.set()
        # Goods that never joined (or already failed) must not hold up the close barrier.
        for g in self.goods:
            if g.joined is None or g.done:
                self.echoes_complete(g)
        try:
            await asyncio.wait_for(self.close_now.wait(), 40.0)
        except TimeoutError:
            self.failures.append("well-behaved clients still waiting for echoes 40 s after the "
                                 "end: %s" % sorted(self.waiting_close, key=lambda g: g.gid)[:10])
            self.close_now.set()
        # Closing takes up to CROSS_DRAIN_S (cluster mode) + 15 s for the close frame + the
        # time to EOF; bounded so that a hung client is reported, not waited for.
        done, pending = await asyncio.wait(tasks, timeout=CROSS_DRAIN_S + 40.0)
        for t in pending:
            t.cancel()
        if pending:
            self.failures.append("%d well-behaved clients did not finish closing" % len(pending))
            await asyncio.wait(pending, timeout=5.0)
        self.abuse = await abuse
        self.t_end = time.monotonic()

    def log(self, msg):
        print("[soak %6.1fs] %s" % (time.monotonic() - (self.t0 or time.monotonic()), msg),
              file=sys.stderr, flush=True)

    # ---- checks ----
    def must_seqs(self, x, s):
        """The seqs of sender S that well-behaved member X must have received (S is not X).
        Same instance: sent after X's 101 arrived (so the server had X as a member when it read
        them) and echoed to S before X sent its close frame (so the server had broadcast them
        before it read X's close). Across instances (cluster mode): sent after X's
        cross-instance start and echoed before X decided to close (the module docstring says
        why)."""
        if s.inst == x.inst:
            start = x.joined
            end = x.close_sent if x.close_sent is not None else float("inf")
        else:
            start = min(x.xready if x.xready is not None else float("inf"), x.joined + SLACK_S)
            end = next((t for t in (x.drain_at, x.close_sent) if t is not None), float("inf"))
        return [k for k in range(len(s.echo)) if s.sent[k] > start and s.echo[k] < end]

    def check_delivery(self):
        by_room = self.by_room
        errors = []
        self.expected_min = self.expected_cross = 0
        for g in self.goods:
            errors.extend(g.errors)
            if g.joined is None:
                if not g.errors and g.join_at < self.args.duration:
                    errors.append("good %d never joined" % g.gid)
                continue
            if len(g.echo) != len(g.sent):
                errors.append("good %d: %d echoes of %d messages" % (
                    g.gid, len(g.echo), len(g.sent)))
            room_ids = {s.gid for s in by_room[g.room]}
            for sid in g.rx:
                if sid not in room_ids:
                    errors.append("good %d (%s) received messages of good %d from room %s" % (
                        g.gid, g.room, sid, self.goods[sid].room))
            for s in by_room[g.room]:
                if s is g or not s.sent:
                    continue
                must = self.must_seqs(g, s)
                st = g.rx.get(s.gid)
                if st and st[1] >= len(s.sent):
                    errors.append("good %d got seq %d from %d, which sent only %d" % (
                        g.gid, st[1], s.gid, len(s.sent)))
                if not must:
                    continue
                self.expected_min += len(must)
                cross = ""
                if s.inst != g.inst:
                    self.expected_cross += len(must)
                    cross = " (%s on %s, %s on %s; cross-instance start %s after its 101)" % (
                        g.gid, "AB"[g.inst], s.gid, "AB"[s.inst], "%.3f s" % (
                            g.xready - g.joined) if g.xready is not None else "never seen")
                if st is None:
                    errors.append("good %d got nothing from %d, missed seqs %d..%d%s" % (
                        g.gid, s.gid, must[0], must[-1], cross))
                elif st[0] > must[0] or st[1] < must[-1]:
                    errors.append("good %d got seqs %d..%d from %d, must have %d..%d%s" % (
                        g.gid, st[0], st[1], s.gid, must[0], must[-1], cross))
        return errors


def make_config(pki, redis_url=None, auth=None):
    cfg = {"server": {"log_level": "info"},
           "listen": [{"address": "127.0.0.1:{port}", "name": "plain", "metrics": True},
                      {"address": "127.0.0.1:{port}", "name": "tls", "tls": True}],
           "tls": {"certificate": pki.A.cert, "private_key": pki.A.key},
           "limits": dict(LIMITS), "timeouts": dict(TIMEOUTS), "rooms": {"echo": True},
           "deflate": {"enabled": True, "min_bytes": 256}}
    if redis_url:
        cfg["cluster"] = {"redis": redis_url}
    if auth is not None:
        cfg["auth"] = {"default": "open", "hmac_secret_file": auth.hmac_file,
                       "public_key_file": auth.pub_file}
        cfg["room"] = [{"path": r, "auth": "token"} for r in auth.rooms]
    return cfg


def metric(text, sample):
    m = re.search(r"^%s (\S+)$" % re.escape(sample), text, re.M)
    return float(m.group(1)) if m else None


def fetch_metrics(port):
    raw = wsclient.http_request("127.0.0.1", port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                b"Connection: close\r\n\r\n", timeout=5)
    return raw.decode(errors="replace")


class Report:
    def __init__(self):
        self.failures = []
        self.lines = []

    def say(self, fmt, *a):
        self.lines.append(fmt % a if a else fmt)

    @property
    def text(self):
        return "\n".join(self.lines)


def run(binary=None, duration=120.0, good=300, rooms=50, rate=25.0, lurkers=600, seed=None,
        warmup=None, rss_slack_mib=8.0, out=sys.stderr, cluster=False):
    """Run the soak (cluster=True: two instances sharing rooms through Redis); returns a Report
    (failures empty on success)."""
    from test_tls import MultiSocketDaemon, Pki   # certificates; two named passed sockets
    if binary:
        os.environ["WSRELAY_BIN"] = binary
    seed = int(time.time()) if seed is None else seed
    args = argparse.Namespace(duration=float(duration), good=good, rooms=rooms, rate=rate,
                              lurkers=lurkers, seed=seed,
                              warmup=warmup if warmup is not None else min(
                                  20.0, max(8.0, 0.15 * duration)))
    rep = Report()
    nofile = raise_nofile()
    if nofile < 4096:
        # Each process holds up to ~lurkers + 400 connections; keep clear of a low hard limit.
        args.lurkers = max(50, min(args.lurkers, nofile // 2 - 250))
        print("RLIMIT_NOFILE is %d: %d lurkers" % (nofile, args.lurkers), file=out)
    tmp = tempfile.mkdtemp(prefix="wsrelay-soak-")
    pki = Pki(tmp)
    pki.A = pki.leaf("server", ["DNS:localhost", "IP:127.0.0.1"])
    redis = None
    daemons = []
    global TOKENS
    try:
        TOKENS = SoakTokens(os.path.join(tmp, "auth"), args.rooms, create=True)
        if cluster:
            redis = RedisServer(directory=os.path.join(tmp, "redis"))
        config = make_config(pki, redis.url if redis else None, TOKENS)
        for _i in range(2 if cluster else 1):
            daemons.append(MultiSocketDaemon(config))
        return _run(rep, args, daemons, redis, pki, nofile, rss_slack_mib, out)
    finally:
        TOKENS = None
        for d in daemons:
            d.kill()
        keep = rep.failures or os.environ.get("WSRELAY_E2E_KEEP") is not None
        for d in daemons:
            if keep:
                print("daemon config and log kept in %s" % d.tmp, file=out, flush=True)
            else:
                d.cleanup()
        if redis is not None:
            redis.cleanup()
        if keep and redis is not None:
            print("redis log kept in %s" % redis.log_path, file=out, flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def cluster_link_up(port):
    return metric(fetch_metrics(port), "wsrelay_cluster_link_up")


def _run(rep, args, daemons, redis, pki, nofile, rss_slack_mib, out):
    cluster = redis is not None
    auth_secret, auth_rooms = TOKENS.secret, set(TOKENS.rooms)
    if cluster:
        # The clients start once both links are up: nothing is published while a link is down.
        for i, d in enumerate(daemons):
            harness.wait_for(lambda: cluster_link_up(d.ports["plain"]), 30,
                             "wsrelay %s's redis link to be up (wsrelay_cluster_link_up)" % "AB"[i],
                             until=lambda v: v == 1, ignore=(wsclient.WSError, OSError))
    pids = [d.pid for d in daemons]
    fd_base = [settled_fd_count(pid) for pid in pids]
    rss_base = [rss_kib(pid) for pid in pids]
    asan = is_asan(pids[0])
    r = Run(args, daemons, pki.ca)
    for i, d in enumerate(daemons):
        r.log("wsrelay %spid %d (%s), ws :%d, wss :%d, RLIMIT_NOFILE %d, seed %d; baseline %d fds, "
              "RSS %d KiB" % (r.label(i), d.pid, "ASan" if asan else "plain build", r.ports[i][0],
                              r.ports[i][1], nofile, args.seed, fd_base[i], rss_base[i]))
    if cluster:
        r.log("redis-server pid %d on %s" % (redis.proc.pid, redis.url))
    mons = [Monitor(d, r.ports[i][0], r.ports[i][1], pki.ca, time.monotonic())
            for i, d in enumerate(daemons)]
    for mon in mons:
        mon.start()
    cpu0 = os.times()
    asyncio.run(r.main())
    delivery_errors = r.check_delivery()

    # ---- the daemons after everyone left ----
    t = time.monotonic()
    fd_end, fd_wait = [], []
    for pid, base in zip(pids, fd_base):
        n = fd_count(pid)
        while n != base and time.monotonic() - t < IDLE_S + CLOSE_S + 2 * SLACK_S:
            time.sleep(0.2)
            n = fd_count(pid)
        fd_end.append(n)
        fd_wait.append(time.monotonic() - t)
    # RSS once the last client is gone. Memory goes back as it is freed, in the loop turn that
    # closes the fds: no fixed wait, but a bounded poll until it is within the limit (a failure
    # is reported below with the figures). Under ASan the figure is reported, not checked.
    slack_kib = int(rss_slack_mib * 1024)
    rss_end = []
    for i, pid in enumerate(pids):
        v = rss_kib(pid)
        if not asan:
            try:
                v = harness.wait_for(lambda: rss_kib(pid), 10, "RSS within %d KiB of its value "
                                     "after the warm-up" % slack_kib,
                                     until=lambda kib: kib <= r.rss_warm[i] + slack_kib)
            except AssertionError:
                v = rss_kib(pid)
        rss_end.append(v)
    for mon in mons:
        mon.stop.set()
    for mon in mons:
        mon.join(5)
    metrics = []
    for i, d in enumerate(daemons):
        m = None
        try:
            m = fetch_metrics(r.ports[i][0])
            if cluster and metric(m, "wsrelay_cluster_subscribed_rooms") != 0:
                # The last UNSUBSCRIBE's answer comes from Redis after the last member left.
                m = harness.wait_for(lambda: fetch_metrics(r.ports[i][0]), 10,
                                     "wsrelay %s to have no redis channel subscribed" % "AB"[i],
                                     until=lambda t: metric(
                                         t, "wsrelay_cluster_subscribed_rooms") == 0)
        except AssertionError:
            m = fetch_metrics(r.ports[i][0])
        except (wsclient.WSError, OSError) as e:
            rep.failures.append("GET /metrics of wsrelay %safter the run: %s" % (r.label(i), e))
        metrics.append(m)
    cpu1 = os.times()
    alive = [d.alive() for d in daemons]
    cpu_daemon = [daemon_cpu_s(pid) for pid in pids]
    redis_alive = redis.proc.poll() is None if cluster else True
    rc = [d.stop(timeout=15.0) for d in daemons]
    logs = [d.stderr() for d in daemons]
    sans = [d.sanitizer_report() for d in daemons]

    # ---- verdicts ----
    ab = r.abuse
    rep.failures += r.failures
    rep.failures += delivery_errors[:40]
    if len(delivery_errors) > 40:
        rep.failures.append("... and %d more delivery errors" % (len(delivery_errors) - 40))
    rep.failures += ["abuse: " + f for f in ab.get("failures", [])]
    bad_lines = []
    for i, mon in enumerate(mons):
        name = "wsrelay " + r.label(i)
        rep.failures += [r.label(i) + f for f in mon.failures]
        if mon.diagnosis:
            rep.failures.append("%sstopped answering /healthz; at that time:\n%s" % (
                name, mon.diagnosis))
        if mon.died or not alive[i]:
            rep.failures.append(r.label(i) + mon.died if mon.died else
                                "%sdied during the run" % name)
        if mon.polls < args.duration / 0.5 * 0.8:
            rep.failures.append("%s: only %d health polls in %.0f s" % (
                name.strip(), mon.polls, args.duration))
        if fd_end[i] != fd_base[i]:
            rep.failures.append("%shas %d open fds %.0f s after the last client left; %d before "
                                "the first one" % (name, fd_end[i], fd_wait[i], fd_base[i]))
        if rss_end[i] > r.rss_warm[i] + slack_kib and not asan:
            rep.failures.append("%sRSS %d KiB after the run, %d KiB after the warm-up: grew by "
                                "%d KiB (> %d KiB)" % (r.label(i), rss_end[i], r.rss_warm[i],
                                                      rss_end[i] - r.rss_warm[i], slack_kib))
        if metrics[i] is not None:
            want = [("wsrelay_websocket_connections", 0), ("wsrelay_rooms", 0),
                    ("wsrelay_connections", 1)]
            if cluster:
                # Redis was never down: the link stayed up, nothing was dropped for the other
                # instance's members, and no channel outlives the rooms.
                want += [("wsrelay_cluster_link_up", 1),
                         ("wsrelay_cluster_messages_dropped_total", 0),
                         ("wsrelay_cluster_reconnects_total", 0),
                         ("wsrelay_cluster_subscribed_rooms", 0)]
            for sample, value in want:
                v = metric(metrics[i], sample)
                if v != value:
                    rep.failures.append("/metrics of %safter the run: %s = %r, expected %d" % (
                        name, sample, v, value))
            if cluster and not metric(metrics[i], "wsrelay_cluster_messages_received_total"):
                rep.failures.append("/metrics of %safter the run: no message from the other "
                                    "instance (wsrelay_cluster_messages_received_total %r)" % (
                                        name, metric(metrics[i],
                                                     "wsrelay_cluster_messages_received_total")))
        lines = logs[i].splitlines()
        bad = [l for l in lines if re.match(r"^<[0-3]>", l)]
        bad_lines.append(bad)
        if bad:
            rep.failures.append("%s%d log lines at err or worse, e.g.:\n  %s" % (
                r.label(i), len(bad), "\n  ".join(bad[:10])))
        # With Redis up all along, the link has nothing to warn about (an outage, a full
        # output buffer, an envelope it could not decode).
        cluster_warnings = [l for l in lines if re.match(r"^<[0-4]>cluster:", l)]
        if cluster_warnings:
            rep.failures.append("%s%d cluster warnings in the log, e.g.:\n  %s" % (
                r.label(i), len(cluster_warnings), "\n  ".join(cluster_warnings[:10])))
        if sans[i]:
            rep.failures.append("%ssanitizer report:\n%s" % (r.label(i), sans[i]))
        if rc[i] != 0:
            rep.failures.append("%sSIGTERM after the run: exit status %r" % (r.label(i), rc[i]))
    if not redis_alive:
        rep.failures.append("redis-server exited during the run; its log:\n" + redis.log()[-3000:])
    # Tokens: the daemons counted exactly the refusals the abuse process saw, and no log holds
    # the secret or a hostile token's signature.
    refused = {"missing": 0, "invalid": 0, "forbidden": 0}
    for variant, (status, _reason, counter) in HOSTILE_TOKENS.items():
        refused[counter] += ab.get("kinds", {}).get("token/" + variant, {}).get(
            "refused-%d" % status, 0)
    counted = {}
    if all(m is not None for m in metrics):
        for reason in refused:
            sample = 'wsrelay_auth_refusals_total{reason="%s"}' % reason
            counted[reason] = int(sum(metric(m, sample) or 0 for m in metrics))
        if counted != refused:
            rep.failures.append("wsrelay_auth_refusals_total %r (summed over the instances), the "
                                "abuse process saw %r refused" % (counted, refused))
    secrets = [(auth_secret, "the HMAC secret")] + [(sig, "a hostile token's signature")
                                                    for sig in ab.get("token_sigs", [])]
    for i in range(len(daemons)):
        leaked = [what for s, what in secrets if s and s in logs[i]]
        if leaked:
            rep.failures.append("%slog contains %s" % (r.label(i), ", ".join(sorted(set(leaked)))))

    # ---- summary ----
    goods = r.goods
    joined = [g for g in goods if g.joined is not None]
    rep.say("wsrelay soak: %.0f s, seed %d, %s build, %d rooms%s", args.duration, args.seed,
            "ASan" if asan else "normal", args.rooms,
            ", cluster of 2 instances (A, B) through redis-server" if cluster else "")
    rep.say("well-behaved: %d clients (%d ws, %d wss; %d joined late, %d left early, %d listen "
            "only%s)", len(joined), sum(not g.tls for g in joined), sum(g.tls for g in joined),
            sum(g.join_at > 5 for g in joined), sum(g.leave_at is not None for g in joined),
            sum(g.listen_only for g in joined),
            "; %d on A, %d on B" % (sum(g.inst == 0 for g in joined),
                                    sum(g.inst == 1 for g in joined)) if cluster else "")
    rep.say("  messages sent %d (%.1f MB), deliveries received %d incl. echoes (%d required by the "
            "delivery rule), pings answered %d", r.sent_msgs, r.sent_bytes / 1e6, r.lat_n,
            r.expected_min + sum(len(g.sent) for g in joined), sum(g.pings for g in joined))
    if cluster:
        starts = sorted(g.xready - g.joined for g in joined if g.xready is not None)
        rep.say("  across instances: %d deliveries received (%d required by the delivery rule); "
                "first one sent after the 101 came %.0f ms after it (median), max %.0f ms (%d of "
                "%d members got one)", sum(g.cross_received for g in joined), r.expected_cross,
                starts[len(starts) // 2] * 1000 if starts else 0,
                starts[-1] * 1000 if starts else 0, len(starts), len(joined))
    deflaters = [g for g in joined if g.conn is not None and g.conn.deflate is not None]
    rx_compressed = sum(g.conn.asm.compressed_count for g in deflaters)
    rep.say("  permessage-deflate: %d clients; %d messages sent compressed, %d received "
            "compressed", len(deflaters), r.sent_compressed, rx_compressed)
    if deflaters and not rx_compressed:
        rep.failures.append("%d clients agreed on permessage-deflate, none got a compressed "
                            "message" % len(deflaters))
    rep.say("  latency send->receive: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
            r.lat_percentile(0.5) * 1000, r.lat_percentile(0.99) * 1000, r.lat_max * 1000)
    rep.say("tokens: %d well-behaved clients with one (%d in the %d token rooms, %d of them "
            "publish: false); hostile attempts refused: %s; wsrelay_auth_refusals_total %s",
            sum(g.token is not None for g in joined),
            sum(g.token is not None and g.room in auth_rooms for g in joined), len(auth_rooms),
            sum(g.token is not None and g.room in auth_rooms and g.listen_only for g in joined),
            refused, counted or "n/a")
    rep.say("other connections (abuse process): %d in all", ab.get("total", 0))
    for kind, outcomes in sorted(ab.get("kinds", {}).items()):
        rep.say("  %-36s %5d  %s", kind, sum(outcomes.values()),
                ", ".join("%s %d" % kv for kv in sorted(outcomes.items())))
    for i, mon in enumerate(mons):
        w = "wsrelay " + r.label(i)
        rep.say("%shealthz: %d polls, slowest %.0f ms, %d failures", r.label(i), mon.polls,
                mon.max_latency * 1000, len(mon.failures))
        rep.say("%sfds: %d at start, %d after warm-up (under load), peak %d, %d at the end "
                "(after %.1f s)", w, fd_base[i], r.fd_warm[i], mon.fd_peak, fd_end[i], fd_wait[i])
        rep.say("%sRSS: %d KiB at start, %d after warm-up (under load), peak %d, %d at the end "
                "(%+d KiB vs warm-up, limit +%d%s)", w, rss_base[i], r.rss_warm[i], mon.rss_peak,
                rss_end[i], rss_end[i] - r.rss_warm[i], slack_kib,
                ", not enforced under ASan" if asan else "")
        m = metrics[i]
        if m:
            rep.say("%s/metrics: accepted %d, upgrades %d, TLS handshakes %d (failed %d), "
                    "messages in %d / out %d, closes 1000 %d, 1001 %d, 1002 %d, 1006 %d, 1007 %d, "
                    "1008 %d, 1009 %d, HTTP errors 400 %d, 408 %d, 426 %d, 431 %d",
                    w, *[int(metric(m, s) or 0) for s in (
                        "wsrelay_connections_accepted_total", "wsrelay_websocket_upgrades_total",
                        "wsrelay_tls_handshakes_total", "wsrelay_tls_handshake_failures_total",
                        "wsrelay_messages_received_total", "wsrelay_messages_sent_total",
                        'wsrelay_closes_total{code="1000"}', 'wsrelay_closes_total{code="1001"}',
                        'wsrelay_closes_total{code="1002"}', 'wsrelay_closes_total{code="1006"}',
                        'wsrelay_closes_total{code="1007"}', 'wsrelay_closes_total{code="1008"}',
                        'wsrelay_closes_total{code="1009"}',
                        'wsrelay_http_errors_total{status="400"}',
                        'wsrelay_http_errors_total{status="408"}',
                        'wsrelay_http_errors_total{status="426"}',
                        'wsrelay_http_errors_total{status="431"}')])
            if cluster:
                rep.say("%scluster: published %d messages in %d PUBLISH, received %d from the "
                        "other instance, dropped %d, reconnects %d, link up %d", w,
                        *[int(metric(m, s) or 0) for s in (
                            "wsrelay_cluster_messages_published_total",
                            "wsrelay_cluster_publishes_total",
                            "wsrelay_cluster_messages_received_total",
                            "wsrelay_cluster_messages_dropped_total",
                            "wsrelay_cluster_reconnects_total", "wsrelay_cluster_link_up")])
    ab_cpu = ab.get("cpu_s", 0.0)
    rep.say("CPU: driver %.1f s, abuse process %.1f s, wsrelay %s s, over %.0f s of wall time",
            (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), ab_cpu,
            " + ".join("%.1f" % c for c in cpu_daemon), r.t_end - r.t0)
    for i in range(len(daemons)):
        lines = logs[i].splitlines()
        rep.say("%slog: %d lines, %d warnings, %d at err or worse; exit status after SIGTERM %r",
                r.label(i), len(lines), sum(l.startswith("<4>") for l in lines),
                len(bad_lines[i]), rc[i])
    rep.say("result: %s", "PASS" if not rep.failures else "FAIL (%d)" % len(rep.failures))
    if rep.failures:
        rep.say("failures:\n- " + "\n- ".join(rep.failures))
    print(rep.text, file=out, flush=True)
    return rep


def daemon_cpu_s(pid):
    """User + system CPU seconds of a live process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return -1.0


# ---------------------------------------------------------------- the abuse process
class Abuse:
    """Everything that is not a sequence-numbered good client. Each client is one coroutine with
    bounded waits; `outcome` names what happened; a result the protocol does not allow is a
    failure."""

    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.ctx = client_context(a.ca)
        self.hello = client_hello(self.ctx)
        self.kinds = {}
        self.failures = []
        self.total = 0
        self.uid = 0
        self.live = set()
        self.bomb = None
        self.token_sigs = []    # signatures of hostile tokens: never in the daemon's log

    # -- bookkeeping --
    def count(self, kind, outcome):
        d = self.kinds.setdefault(kind, {})
        d[outcome] = d.get(outcome, 0) + 1

    def fail(self, kind, msg):
        if len(self.failures) < 60:
            self.failures.append("%s: %s" % (kind, msg))
        self.count(kind, "FAILED")

    def src(self):
        return "127.0.0.%d" % self.rng.randint(2, 250)

    def room(self, busy=False, quiet=False):
        """A room of the good clients (a busy one, or with quiet=True one without big
        messages), or one that exists only for this client."""
        if busy:
            return "/r%d" % self.rng.randrange(BUSY_ROOMS)
        if self.rng.random() < 0.2:
            self.uid += 1
            return "/tmp-%d" % self.uid
        return "/r%d" % self.rng.randrange(BUSY_ROOMS if quiet else 0, self.a.rooms)

    async def open(self, tls, rcvbuf=None, raw_tls=False):
        # Cluster mode: each client connects to an instance chosen at random.
        n = len(self.a.plain_port)
        i = self.rng.randrange(n) if n > 1 else 0
        port = self.a.tls_port[i] if (tls or raw_tls) else self.a.plain_port[i]
        return await Conn.open("127.0.0.1", port, self.ctx if tls and not raw_tls else None,
                               src=self.src(), rcvbuf=rcvbuf)

    async def expect_close(self, c, timeout, answer=True):
        """Read (skipping data, answering nothing) until a close frame: -> (code, t) or raises
        Closed / TimeoutError."""
        async with asyncio.timeout(timeout):
            while True:
                for op, data in await c.next_messages():
                    if op == OP_CLOSE:
                        if answer:
                            c.write(frame(OP_CLOSE, data[:2]))
                        return close_code_of(data), time.monotonic()

    # -- well-behaved, short-lived --
    async def lurker(self, life):
        """Joins, reads everything (following frame boundaries, not parsing payloads), answers
        pings, and leaves after `life` seconds: with a close handshake, a FIN or a RST."""
        kind = "lurker"
        tls = self.rng.random() < 0.4
        c = await self.open(tls)
        sk = Skimmer()

        async def read_some():
            """-> the close code if the server's close frame arrived, else None."""
            c.buf.clear()
            await c.fill()
            for op, data in sk.feed(bytes(c.buf)):
                if op == OP_PING:
                    c.write(frame(OP_PONG, data))
                elif op == OP_CLOSE:
                    return close_code_of(data) or 1005
            return None

        try:
            await c.upgrade(self.room())
            if c.buf:
                sk.feed(bytes(c.buf))
            end = time.monotonic() + life
            while time.monotonic() < end:
                try:
                    async with asyncio.timeout(end - time.monotonic()):
                        code = await read_some()
                except TimeoutError:
                    break
                if code is not None:
                    return self.fail(kind, "closed by the server with %d while well-behaved" % code)
            how = self.rng.choice(["close", "close", "close", "fin", "rst"])
            if how == "close":
                c.write(frame(OP_CLOSE, struct.pack("!H", 1000)))
                try:
                    async with asyncio.timeout(10.0):
                        code = None
                        while code is None:
                            code = await read_some()
                except TimeoutError:
                    return self.fail(kind, "no close frame within 10 s after ours")
                if code != 1000:
                    return self.fail(kind, "our close 1000 answered with %d" % code)
                rest, _n = await c.read_to_eof(CLOSE_S + SLACK_S)
                if rest == "timeout":
                    return self.fail(kind, "TCP still open after the close handshake")
                return self.count(kind, "closed-1000")
            if how == "fin":
                c.fin()
            else:
                c.rst()
            self.count(kind, how)
        except Closed as e:
            self.fail(kind, "connection %s by the server while well-behaved" % e.how)
        finally:
            c.abort()

    async def short(self):
        """Joins a room, sends 0-3 messages, waits for their echoes, leaves properly."""
        kind = "short-lived"
        tls = self.rng.random() < 0.4
        c = await self.open(tls)
        try:
            offer = self.rng.choice(DEFLATE_OFFERS) if self.rng.random() < 0.3 else None
            await c.upgrade(self.room(), extensions=offer)
            n = self.rng.randint(0, 3)
            tag = b"C|%d|" % self.rng.getrandbits(48)
            for i in range(n):
                data = tag + b"%d|" % i + b"s" * self.rng.randint(0, 3000)
                if c.deflate is not None and self.rng.random() < 0.5:
                    c.write(frame(OP_TEXT if i % 2 else OP_BINARY, deflate(data, c.deflate), rsv=4))
                else:
                    c.write(frame(OP_TEXT if i % 2 else OP_BINARY, data))
            got = 0
            async with asyncio.timeout(15.0):
                while got < n:
                    for op, data in await c.next_messages():
                        if op == OP_PING:
                            c.write(frame(OP_PONG, data))
                        elif op == OP_CLOSE:
                            return self.fail(kind, "closed by the server with %r" % (
                                close_code_of(data),))
                        elif op in (OP_TEXT, OP_BINARY) and data.startswith(tag):
                            if data[len(tag):].split(b"|", 1)[0] != b"%d" % got:
                                return self.fail(kind, "echo out of order")
                            got += 1
            if self.rng.random() < 0.8:
                c.write(frame(OP_CLOSE, struct.pack("!H", 1000)))
                code, _t = await self.expect_close(c, 15.0, answer=False)
                if code != 1000:
                    return self.fail(kind, "close 1000 answered with %r" % code)
                how, _n = await c.read_to_eof(CLOSE_S + SLACK_S)
                if how == "timeout":
                    return self.fail(kind, "TCP open after the close handshake")
                self.count(kind, "close")
            else:
                c.fin()
                self.count(kind, "fin")
        except TimeoutError:
            self.fail(kind, "echo not back within 15 s")
        except Closed as e:
            self.fail(kind, "connection %s by the server" % e.how)
        finally:
            c.abort()

    async def burst(self, room=None, count=40, min_size=16 * KiB):
        """Well-behaved too: sends `count` messages of min_size..60 KiB, 20 per second (within
        message_rate), into a busy room, reading everything, and checks its echoes. The room's
        readers keep up; a non-reader there has its queue overflow (close 1008) once the
        server's socket buffer (up to 4 MiB) and its send queue are full."""
        kind = "burst"
        tls = self.rng.random() < 0.4
        c = await self.open(tls)
        try:
            await c.upgrade(room or self.room(busy=True))
            tag = b"B|%d|" % self.rng.getrandbits(48)
            sizes = [self.rng.randint(min_size, MAX_GOOD_PAYLOAD) for _ in range(count)]

            async def send():
                for i, n in enumerate(sizes):
                    c.write(frame(OP_BINARY, tag + b"%d|" % i + _BIN[:n]))
                    await c.drain(15.0)
                    await asyncio.sleep(0.05)

            sender = asyncio.create_task(send())
            got = 0
            try:
                async with asyncio.timeout(30.0):
                    while got < len(sizes):
                        for op, data in await c.next_messages():
                            if op == OP_PING:
                                c.write(frame(OP_PONG, data))
                            elif op == OP_CLOSE:
                                return self.fail(kind, "closed by the server with %r" % (
                                    close_code_of(data),))
                            elif op == OP_BINARY and data.startswith(tag):
                                want = tag + b"%d|" % got + _BIN[:sizes[got]]
                                if data != want:
                                    return self.fail(kind, "echo %d wrong or out of order" % got)
                                got += 1
            finally:
                sender.cancel()
            c.write(frame(OP_CLOSE, struct.pack("!H", 1000)))
            code, _t = await self.expect_close(c, 15.0, answer=False)
            if code != 1000:
                return self.fail(kind, "close 1000 answered with %r" % code)
            self.count(kind, "echoed-all")
        except TimeoutError:
            self.fail(kind, "echoes not back within 30 s")
        except Closed as e:
            self.fail(kind, "connection %s by the server" % e.how)
        finally:
            c.abort()

    async def http(self):
        kind = "http"
        tls = self.rng.random() < 0.4
        c = await self.open(tls)
        try:
            c.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = bytearray()
            async with asyncio.timeout(10.0):
                while True:
                    try:
                        await c.fill()
                    except Closed:
                        break
                    data += c.buf
                    c.buf.clear()
            if data.count(b"HTTP/1.1 200 ") != 3:
                return self.fail(kind, "3 pipelined requests: %r" % bytes(data[:200]))
            self.count(kind, "ok")
        except TimeoutError:
            self.fail(kind, "no EOF within 10 s after Connection: close")
        finally:
            c.abort()

    # -- misbehaving --
    async def garbage(self):
        kind = "garbage"
        v = self.rng.choice(["http-binary", "http-bad-line", "http-huge-header", "http-version-8",
                             "ws-unmasked", "ws-rsv", "ws-opcode", "ws-utf8", "ws-too-big",
                             "ws-long-ping", "ws-orphan-cont", "tls-garbage", "wss-unmasked",
                             "wss-utf8", "ws-deflate-corrupt", "ws-deflate-bomb",
                             "wss-deflate-bad-utf8"])
        tls = v.startswith("wss")
        c = await self.open(tls, raw_tls=v.startswith("tls"))
        kind = "garbage/" + v
        try:
            if v.startswith("http") or v.startswith("tls"):
                want = {"http-binary": rb"^HTTP/1\.1 4\d\d ",
                        "http-bad-line": rb"^HTTP/1\.1 (4\d\d|505) ",
                        "http-huge-header": rb"^HTTP/1\.1 431 ",
                        "http-version-8": rb"^HTTP/1\.1 426 ",
                        "tls-garbage": rb"^$"}[v]
                if v == "http-binary":
                    c.write(b"\x00\x01\x02" + bytes(self.rng.getrandbits(8) for _ in range(200))
                            .replace(b"\r", b"").replace(b"\n", b"") + b"\r\n\r\n")
                elif v == "http-bad-line":
                    c.write(b"BREW /pot HTCPCP/1.0 extra\r\nHost: x\r\n\r\n")
                elif v == "http-huge-header":
                    c.write(b"GET /r0 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
                elif v == "http-version-8":
                    c.write(upgrade_request(self.room(), version="8")[0])
                else:
                    c.write(b"\x16\x03\x01\x00\x10" + os.urandom(16) + b"\x00\xffgarbage" * 20)
                t = time.monotonic()
                data = bytearray()
                try:
                    async with asyncio.timeout(HANDSHAKE_S + SLACK_S):
                        while True:
                            await c.fill()
                            data += c.buf
                            c.buf.clear()
                except Closed:
                    pass
                except TimeoutError:
                    return self.fail(kind, "still open %.1f s later (got %r)" % (
                        time.monotonic() - t, bytes(data[:80])))
                if v == "tls-garbage":
                    if data[:1] not in (b"", b"\x15"):   # nothing, or a TLS alert
                        return self.fail(kind, "answered %r" % bytes(data[:40]))
                elif not re.match(want, bytes(data)):
                    return self.fail(kind, "answered %r" % bytes(data[:80]))
                return self.count(kind, "refused")
            await c.upgrade(self.room(),
                            extensions="permessage-deflate" if "deflate" in v else None)
            if "deflate" in v and c.deflate is None:
                return self.fail(kind, "permessage-deflate not agreed")
            want = {"ws-utf8": 1007, "wss-utf8": 1007, "ws-too-big": 1009,
                    "ws-deflate-corrupt": 1007, "ws-deflate-bomb": 1009,
                    "wss-deflate-bad-utf8": 1007}.get(v, 1002)
            if v == "ws-deflate-corrupt":
                c.write(frame(OP_BINARY, b"\xff\xfe not deflate \x00\x01" * 4, rsv=4))
            elif v == "ws-deflate-bomb":
                if self.bomb is None:
                    self.bomb = deflate(b"\0" * (4 * MiB))     # ~4 KB that inflate to 4 MiB
                c.write(frame(OP_BINARY, self.bomb, rsv=4))
            elif v == "wss-deflate-bad-utf8":
                c.write(frame(OP_TEXT, deflate(b"fine so far " * 100 + b"\xc3\x28"), rsv=4))
            elif v.endswith("unmasked"):
                c.write(frame(OP_TEXT, b"unmasked", mask=False))
            elif v == "ws-rsv":
                c.write(frame(OP_TEXT, b"rsv", rsv=4))
            elif v == "ws-opcode":
                c.write(frame(3, b"reserved"))
            elif v.endswith("utf8"):
                c.write(frame(OP_TEXT, b"ok so far \xff\xfe not utf-8"))
            elif v == "ws-too-big":
                c.write(frame(OP_BINARY, b"x" * 1000, declared_length=1 * MiB))
            elif v == "ws-long-ping":
                c.write(frame(OP_PING, b"p" * 126))
            else:
                c.write(frame(OP_CONT, b"orphan"))
            try:
                code, _t = await self.expect_close(c, 10.0)
            except TimeoutError:
                return self.fail(kind, "no close frame within 10 s")
            if code != want:
                return self.fail(kind, "close %r, expected %d" % (code, want))
            how, _n = await c.read_to_eof(CLOSE_S + SLACK_S)
            if how == "timeout":
                return self.fail(kind, "TCP open after the close handshake")
            self.count(kind, "closed-%d" % code)
        except Closed as e:
            self.fail(kind, "connection %s without the expected answer" % e.how)
        finally:
            c.abort()

    async def stall_handshake(self):
        v = self.rng.choice(["tcp-silent", "partial-request", "partial-request-wss", "tls-silent",
                             "tls-partial-hello", "tls-hello-only"])
        kind = "stall-handshake/" + v
        t_before = time.monotonic()
        c = await self.open(v.endswith("wss"), raw_tls=v.startswith("tls"))
        try:
            if v.startswith("partial-request"):
                c.write(b"GET /r1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: webs")
            elif v == "tls-partial-hello":
                c.write(self.hello[:50])
            elif v == "tls-hello-only":
                c.write(self.hello)
            t_sent = time.monotonic()
            data = bytearray()
            try:
                async with asyncio.timeout(HANDSHAKE_S + SLACK_S):
                    while True:
                        await c.fill()
                        data += c.buf
                        c.buf.clear()
            except Closed:
                pass
            except TimeoutError:
                return self.fail(kind, "still open %.1f s after the last byte (handshake_timeout "
                                 "%.0f s)" % (time.monotonic() - t_sent, HANDSHAKE_S))
            elapsed = time.monotonic() - t_before
            if elapsed < HANDSHAKE_S - 0.1:
                return self.fail(kind, "closed after %.2f s, before handshake_timeout" % elapsed)
            if v.startswith("partial-request") and not data.startswith(b"HTTP/1.1 408 "):
                return self.fail(kind, "expected 408, got %r" % bytes(data[:60]))
            if v == "tcp-silent" and data:
                return self.fail(kind, "got %r" % bytes(data[:60]))
            self.count(kind, "timed-out")
        finally:
            c.abort()

    async def stall_midframe(self):
        v = self.rng.choice(["header", "payload", "fragment", "payload-rst"])
        kind = "stall-midframe/" + v
        tls = self.rng.random() < 0.4
        c = await self.open(tls)
        try:
            await c.upgrade(self.room())
            whole = frame(OP_TEXT, b"m" * 1000)
            if v == "header":
                c.write(whole[:1])
            elif v == "fragment":
                c.write(frame(OP_TEXT, b"first part", fin=False) + frame(OP_CONT, b"x" * 500)[:100])
            else:
                c.write(whole[:300])
            t_last = time.monotonic()
            if v == "payload-rst":
                await asyncio.sleep(self.rng.uniform(0.2, 6.0))
                c.rst()
                return self.count(kind, "reset")
            # No pong for the server's pings: idle_timeout closes us with 1001.
            try:
                code, t = await self.expect_close(c, IDLE_S + SLACK_S + 2, answer=False)
            except TimeoutError:
                return self.fail(kind, "not closed %.0f s after the last byte (idle_timeout %.0f s)"
                                 % (time.monotonic() - t_last, IDLE_S))
            if code != 1001:
                return self.fail(kind, "close %r, expected 1001 (idle)" % code)
            if t - t_last < IDLE_S - 0.2:
                return self.fail(kind, "closed %.1f s after the last byte, before idle_timeout" % (
                    t - t_last))
            how, _n = await c.read_to_eof(CLOSE_S + SLACK_S)
            if how == "timeout":
                return self.fail(kind, "TCP open close_timeout after an unanswered close")
            self.count(kind, "closed-1001")
        except Closed as e:
            self.fail(kind, "connection %s before the idle close" % e.how)
        finally:
            c.abort()

    async def nonreader(self):
        """Stops reading in a busy room (4 KiB receive buffer), but sends a pong every 3 s so
        that it is not idle: its send queue fills up. Later it either resets, or reads what it
        was sent: whole messages, each sender's in order with none skipped, then (if the server
        gave up on it) close 1008 (queue full) or 1001, or just EOF/RST (the server dropped it
        after close_timeout with part of its queue unsent)."""
        v = self.rng.choice(["rst", "drain"])
        kind = "non-reader/" + v
        tls = self.rng.random() < 0.4
        c = await self.open(tls, rcvbuf=4096)
        try:
            room = self.room(busy=True)
            await c.upgrade(room)
            if self.rng.random() < 0.5:
                # ~3.3 MB more into its room: enough to overflow its queue within idle_timeout
                # (else input backpressure makes it look idle, and it is closed with 1001).
                self.spawn(self.burst, room, 64, 40 * KiB)
            hold_end = time.monotonic() + self.rng.uniform(4.0, 16.0)
            while time.monotonic() < hold_end:
                await asyncio.sleep(min(3.0, max(0.0, hold_end - time.monotonic())))
                if c.w.transport.is_closing():
                    break
                c.write(frame(OP_PONG, b"not reading"))
            if v == "rst":
                c.rst()
                return self.count(kind, "reset")
            last = {}
            outcome = None
            try:
                async with asyncio.timeout(20.0):
                    while outcome is None:
                        for op, data in await c.next_messages():
                            if op == OP_CLOSE:
                                outcome = "closed-%r" % close_code_of(data)
                                if close_code_of(data) not in (1001, 1008):
                                    return self.fail(kind, outcome)
                                break
                            if op in (OP_TEXT, OP_BINARY) and data.startswith(b"G|"):
                                sid, seq, _ts = check_good_payload(op, data)
                                if sid in last and seq != last[sid] + 1:
                                    return self.fail(kind, "from %d: seq %d after %d" % (
                                        sid, seq, last[sid]))
                                last[sid] = seq
            except Closed as e:
                outcome = "dropped-" + e.how
            except TimeoutError:
                outcome = "still-open"
            self.count(kind, outcome)
        except ProtocolError as e:
            self.fail(kind, str(e))
        except Closed as e:
            self.fail(kind, "connection %s during the upgrade" % e.how)
        finally:
            c.abort()

    async def flood(self):
        v = self.rng.choice(["messages", "messages", "fragments", "pings"])
        kind = "flood/" + v
        tls = self.rng.random() < 0.4
        c = await self.open(tls)
        try:
            await c.upgrade(self.room(busy=False, quiet=True))
            if v == "messages":
                # 400 in one go, far past message_burst: close 1008.
                c.write(b"".join(frame(OP_TEXT, b"F|%d" % i) for i in range(400)))
                try:
                    code, _t = await self.expect_close(c, 10.0)
                except TimeoutError:
                    return self.fail(kind, "no close within 10 s of a 400-message burst")
                if code != 1008:
                    return self.fail(kind, "close %r, expected 1008" % code)
                how, _n = await c.read_to_eof(CLOSE_S + SLACK_S)
                if how == "timeout":
                    return self.fail(kind, "TCP open after the close")
                return self.count(kind, "closed-1008")
            if v == "fragments":
                # One 40 KB message in 2000 fragments: legal, relayed whole (one message).
                body = b"F|frag|" + b"f" * 40000
                parts = [body[i:i + 20] for i in range(0, len(body), 20)]
                c.write(b"".join(frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == len(parts) - 1)
                                 for i, p in enumerate(parts)))
                async with asyncio.timeout(10.0):
                    done = False
                    while not done:
                        for op, data in await c.next_messages():
                            if op == OP_CLOSE:
                                return self.fail(kind, "closed with %r" % close_code_of(data))
                            if data == body:
                                done = True
                c.write(frame(OP_CLOSE, struct.pack("!H", 1000)))
                code, _t = await self.expect_close(c, 10.0, answer=False)
                if code != 1000:
                    return self.fail(kind, "close %r" % code)
                return self.count(kind, "echoed-whole")
            # 3000 pings without reading: control frames are not rate-limited, but the server
            # stops reading from a peer that does not read its pongs. Then reset.
            c.write(b"".join(frame(OP_PING, b"ping%d" % i) for i in range(3000)))
            await asyncio.sleep(self.rng.uniform(0.5, 3.0))
            c.rst()
            self.count(kind, "reset")
        except TimeoutError:
            self.fail(kind, "no answer within 10 s")
        except Closed as e:
            self.fail(kind, "connection %s unexpectedly" % e.how)
        finally:
            c.abort()

    async def reset(self):
        v = self.rng.choice(["after-connect", "mid-request", "after-101", "mid-frame",
                             "mid-fragmented", "while-receiving", "mid-close", "http-mid-response",
                             "tls-mid-handshake", "wss-after-101", "wss-mid-frame",
                             "wss-while-receiving"])
        kind = "reset/" + v
        tls = v.startswith("wss")
        small = v.endswith("receiving") or v == "http-mid-response"
        c = await self.open(tls, rcvbuf=4096 if small else None, raw_tls=v.startswith("tls"))
        try:
            if v == "after-connect":
                pass
            elif v == "mid-request":
                c.write(upgrade_request("/r2")[0][:40])
            elif v == "http-mid-response":
                c.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
                await asyncio.sleep(0.05)
            elif v == "tls-mid-handshake":
                c.write(self.hello)
                async with asyncio.timeout(5.0):
                    await c.fill(100)        # part of the ServerHello flight
            else:
                await c.upgrade(self.room(busy=v.endswith("receiving")))
                if v.endswith("mid-frame"):
                    c.write(frame(OP_BINARY, os.urandom(5000))[:2000])
                elif v == "mid-fragmented":
                    c.write(frame(OP_TEXT, b"part one ", fin=False) + frame(OP_CONT, b"two")[:4])
                elif v == "mid-close":
                    c.write(frame(OP_CLOSE, struct.pack("!H", 1000)))
                elif v.endswith("receiving"):
                    await asyncio.sleep(self.rng.uniform(0.5, 3.0))
                    try:
                        async with asyncio.timeout(1.0):
                            await c.fill(3000)
                    except TimeoutError:
                        pass
            await asyncio.sleep(self.rng.uniform(0.0, 0.05))
            c.rst()
            self.count(kind, "reset")
        except (TimeoutError, Closed) as e:
            self.fail(kind, "before the reset: %s" % e)
        finally:
            c.abort()

    async def tls_abandon(self):
        v = self.rng.choice(["connect-fin", "hello-fin", "hello-read-fin", "handshake-fin",
                             "handshake-rst", "hello-rst"])
        kind = "tls-abandon/" + v
        full = v.startswith("handshake")
        c = await self.open(full, raw_tls=not full)
        try:
            if v.startswith("hello"):
                c.write(self.hello)
            if v == "hello-read-fin":
                async with asyncio.timeout(5.0):
                    await c.fill(50)
            await asyncio.sleep(self.rng.uniform(0.0, 0.1))
            if v.endswith("rst"):
                c.rst()
            else:
                c.fin()
            self.count(kind, "abandoned")
        except (TimeoutError, Closed) as e:
            self.fail(kind, "before abandoning: %s" % e)
        finally:
            c.abort()

    async def token(self):
        """A hostile token attempt (HOSTILE_TOKENS): refused before any 101 with the status
        and error_description the spec gives, then TCP closed (Connection: close). Admitted is
        the worst failure there is."""
        v = self.rng.choice(sorted(HOSTILE_TOKENS))
        kind = "token/" + v
        status, reason, _counter = HOSTILE_TOKENS[v]
        open_room = self.rng.choice([r for r in ("/r%d" % i for i in range(self.a.rooms))
                                     if r not in TOKENS.rooms])
        room, tok = TOKENS.hostile(v, self.rng, open_room)
        sig = tok.rpartition(".")[2] if tok else ""
        if len(sig) >= 16 and len(self.token_sigs) < 200:
            self.token_sigs.append(sig)
        c = await self.open(self.rng.random() < 0.4)
        try:
            req, _key = upgrade_request(room, token=tok, via=self.rng.choice(["query", "header"]))
            c.write(req)
            head = await c.read_http_head(10.0)
            got, _r, headers, _ = wsclient.parse_http_head(head)
            if got == 101:
                return self.fail(kind, "ADMITTED (101) to %s" % room)
            error = "invalid_request" if v == "missing" else (
                "insufficient_scope" if status == 403 else "invalid_token")
            www = 'Bearer realm="wsrelay", error="%s", error_description="%s"' % (error, reason)
            if got != status or headers.get("www-authenticate") != www:
                return self.fail(kind, "refused with %d %r, expected %d %r" % (
                    got, headers.get("www-authenticate"), status, www))
            how, _n = await c.read_to_eof(HANDSHAKE_S + SLACK_S)
            if how == "timeout":
                return self.fail(kind, "TCP still open after the %d (Connection: close)" % got)
            self.count(kind, "refused-%d" % got)
        except TimeoutError:
            self.fail(kind, "no answer within 10 s")
        except Closed as e:
            self.fail(kind, "connection %s without an answer" % e.how)
        finally:
            c.abort()

    # -- driver --
    def spawn(self, coro_fn, *args):
        t = asyncio.create_task(self.guarded(coro_fn, *args))
        self.live.add(t)
        t.add_done_callback(self.live.discard)

    async def guarded(self, coro_fn, *args):
        self.total += 1
        name = coro_fn.__name__
        try:
            async with asyncio.timeout(60.0):
                await coro_fn(*args)
        except TimeoutError:
            self.fail(name, "client did not finish within 60 s")
        except (OSError, ssl.SSLError, ProtocolError, Closed) as e:
            self.fail(name, "%s: %s" % (type(e).__name__, e))

    async def lurker_pool(self, end):
        """Keeps about `lurkers` lurkers connected until `end`, each for 5-40 s."""
        live = set()
        ramp = self.a.lurkers / 5.0          # connect the pool over ~5 s
        while time.monotonic() < end:
            while len(live) < self.a.lurkers and time.monotonic() < end:
                life = min(self.rng.uniform(5.0, 40.0), end - time.monotonic())
                t = asyncio.create_task(self.guarded(self.lurker, max(0.5, life)))
                live.add(t)
                t.add_done_callback(live.discard)
                await asyncio.sleep(1.0 / ramp)
            await asyncio.sleep(0.2)
        if live:
            await asyncio.wait(live, timeout=60.0)

    async def main(self):
        a = self.a
        t0 = time.monotonic()
        end = t0 + a.duration
        pool = asyncio.create_task(self.lurker_pool(end))
        # Relative weights of what is started at `rate` per second.
        kinds = [(self.short, 26), (self.burst, 2), (self.http, 5), (self.garbage, 12),
                 (self.stall_handshake, 9), (self.stall_midframe, 5), (self.nonreader, 4),
                 (self.flood, 5), (self.reset, 22), (self.tls_abandon, 10), (self.token, 6)]
        fns = [k for k, _w in kinds]
        weights = [w for _k, w in kinds]
        # Misbehaving and short-lived clients at `rate` per second (Poisson), capped at 400 open.
        # The last ones start IDLE_S + 10 s before the end, so they are gone when it comes.
        stop_spawning = end - (IDLE_S + 10.0)
        while time.monotonic() < stop_spawning:
            await asyncio.sleep(self.rng.expovariate(a.rate))
            if len(self.live) >= 400:
                continue
            self.spawn(self.rng.choices(fns, weights)[0])
        if self.live:
            _done, pending = await asyncio.wait(set(self.live), timeout=IDLE_S + 40.0)
            for t in pending:
                t.cancel()
        await pool
        return {"total": self.total, "kinds": self.kinds, "failures": self.failures,
                "cpu_s": sum(os.times()[:2]), "token_sigs": self.token_sigs}


def abuse_main(a):
    global TOKENS
    TOKENS = SoakTokens(a.auth_dir, a.rooms)
    raise_nofile()
    result = asyncio.run(Abuse(a).main())
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- command line
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float,
                   default=float(os.environ.get("WSRELAY_SOAK_SECONDS", "120")))
    p.add_argument("--bin", help="wsrelay binary (default: $WSRELAY_BIN)")
    p.add_argument("--good", type=int, default=300, help="well-behaved sequence-numbered clients")
    p.add_argument("--rooms", type=int, default=50)
    p.add_argument("--rate", type=float, default=25.0,
                   help="misbehaving and short-lived clients started per second")
    p.add_argument("--lurkers", type=int, default=600, help="lurkers kept connected")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--warmup", type=float, default=None, help="seconds before the RSS baseline")
    p.add_argument("--rss-slack-mib", type=float, default=8.0)
    p.add_argument("--cluster", action="store_true",
                   help="two wsrelay instances sharing rooms through a redis-server started for "
                   "the run; clients spread over both")
    # internal: the abuse process (one port per instance)
    p.add_argument("--role", default="main", choices=["main", "abuse"], help=argparse.SUPPRESS)
    p.add_argument("--plain-port", type=int, nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--tls-port", type=int, nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--ca", help=argparse.SUPPRESS)
    p.add_argument("--auth-dir", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.role == "abuse":
        return abuse_main(a)
    if a.bin is None and not os.environ.get("WSRELAY_BIN"):
        p.error("give --bin or set WSRELAY_BIN")
    rep = run(a.bin, a.duration, a.good, a.rooms, a.rate, a.lurkers, a.seed, a.warmup,
              a.rss_slack_mib, cluster=a.cluster)
    return 0 if not rep.failures else 1


if __name__ == "__main__":
    sys.exit(main())
