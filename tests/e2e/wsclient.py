# SPDX-License-Identifier: Apache-2.0
"""A small raw WebSocket (RFC 6455) client for the wsrelay end-to-end tests.

Standard library only. It is deliberately low level: tests must be able to send frames no sane
client would (wrong RSV bits, reserved opcodes, unmasked frames, lying length fields, oversize
control frames, arbitrary fragmentation), raw bytes, and to observe exactly what the server sends
back (every frame must be unmasked; a close frame must be followed by the server closing TCP).

Every socket operation is bounded by a timeout (default 5 s); a timeout raises `Timeout`.
"""

import base64
import hashlib
import os
import select
import socket
import ssl
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

OPCODE_NAMES = {OP_CONT: "cont", OP_TEXT: "text", OP_BINARY: "binary", OP_CLOSE: "close",
                OP_PING: "ping", OP_PONG: "pong"}

DEFAULT_TIMEOUT = 5.0


class WSError(Exception):
    """Something the server did that a test did not expect at the protocol level."""


class HandshakeError(WSError):
    def __init__(self, msg, status=None, headers=None, body=b""):
        super().__init__(msg)
        self.status = status
        self.headers = headers or {}
        self.body = body


class Timeout(WSError):
    """A bounded wait ran out."""


class ConnectionClosed(WSError):
    """The server closed (or reset) the TCP connection."""

    def __init__(self, msg="connection closed by peer", reset=False):
        super().__init__(msg)
        self.reset = reset


def mask_bytes(key, data):
    """XOR `data` with the 4-byte `key` repeated; fast for big payloads (one big-int XOR)."""
    n = len(data)
    if n == 0:
        return b""
    if n < 64:
        return bytes(b ^ key[i & 3] for i, b in enumerate(data))
    reps = key * (n // 4 + 1)
    a = int.from_bytes(data, "little")
    b = int.from_bytes(reps[:n], "little")
    return (a ^ b).to_bytes(n, "little")


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                 length_form=None, declared_length=None):
    """Build one frame.

    rsv: 3-bit value (RSV1 = 4, RSV2 = 2, RSV3 = 1). mask: False sends an unmasked (illegal from
    a client) frame. length_form: None (minimal), 7, 16 or 64 to force an encoding of the length.
    declared_length: put this length in the header instead of len(payload) (to lie).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    length = len(payload) if declared_length is None else declared_length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if length_form is None:
        length_form = 7 if length <= 125 else (16 if length <= 0xFFFF else 64)
    if length_form == 7:
        header = struct.pack("!BB", b0, mbit | length)
    elif length_form == 16:
        header = struct.pack("!BBH", b0, mbit | 126, length)
    elif length_form == 64:
        header = struct.pack("!BBQ", b0, mbit | 127, length)
    else:
        raise ValueError("length_form must be 7, 16 or 64")
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        return header + key + mask_bytes(key, payload)
    return header + bytes(payload)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload", "masked")

    def __init__(self, fin, rsv, opcode, payload, masked=False):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.payload, self.masked = payload, masked

    @property
    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self):
        return bytes(self.payload[2:])

    def __repr__(self):
        p = bytes(self.payload[:40])
        more = "..." if len(self.payload) > 40 else ""
        return "Frame(%s fin=%d rsv=%d len=%d %r%s)" % (
            OPCODE_NAMES.get(self.opcode, hex(self.opcode)), self.fin, self.rsv,
            len(self.payload), p, more)


class Message:
    """A whole message, or a close frame (opcode OP_CLOSE) met while waiting for one."""
    __slots__ = ("opcode", "data", "frames")

    def __init__(self, opcode, data, frames=1):
        self.opcode, self.data, self.frames = opcode, data, frames

    @property
    def is_close(self):
        return self.opcode == OP_CLOSE

    @property
    def close_code(self):
        return struct.unpack("!H", self.data[:2])[0] if len(self.data) >= 2 else None

    @property
    def close_reason(self):
        return bytes(self.data[2:])

    @property
    def text(self):
        return bytes(self.data).decode("utf-8")

    def __repr__(self):
        p = bytes(self.data[:40])
        return "Message(%s len=%d %r%s)" % (OPCODE_NAMES.get(self.opcode, hex(self.opcode)),
                                            len(self.data), p, "..." if len(self.data) > 40 else "")


def make_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def parse_http_head(raw):
    """Parse 'HTTP/1.1 101 ...\\r\\nName: v\\r\\n...' (without the blank line).
    Returns (status:int, reason:str, headers: dict lower-name -> value (last wins), header_list)."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise WSError("malformed status line %r" % lines[0])
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers, header_list = {}, []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
        header_list.append((name.strip(), value.strip()))
    return status, reason, headers, header_list


class WSClient:
    """One TCP (or TLS) connection to the server, speaking raw RFC 6455.

    Typical use:
        c = WSClient("127.0.0.1", port, "/room")   # connects and does the opening handshake
        c.send_text("hi"); m = c.recv_message(); c.close()
    """

    def __init__(self, host, port, path="/", timeout=DEFAULT_TIMEOUT, headers=None, origin=None,
                 ssl_context=None, server_hostname=None, rcvbuf=None, sndbuf=None,
                 handshake=True, family=None, request_extra=b""):
        self.host, self.port, self.path = host, port, path
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.sock = None
        self.pings = []        # payloads of pings received (and skipped) by recv_message
        self.pongs = []        # payloads of pongs received (and skipped) by recv_message
        self.response_headers = {}
        self._connect(rcvbuf, sndbuf, family)
        if handshake:
            self.handshake(path, headers=headers, origin=origin, extra=request_extra)

    # ---- connection ----
    def _connect(self, rcvbuf, sndbuf, family):
        if family is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf is not None:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(self.timeout)
            s.connect((self.host, self.port))
            if self.ssl_context is not None:
                s = self.ssl_context.wrap_socket(
                    s, server_hostname=self.server_hostname or self.host)
        except BaseException:
            s.close()
            raise
        self.sock = s

    def fileno(self):
        return self.sock.fileno()

    def handshake(self, path=None, headers=None, origin=None, extra=b"", key=None):
        """Send the upgrade request and check the 101 answer. Bytes after the response stay
        buffered for recv_frame(). `extra` is sent in the same write, after the request (e.g. a
        first frame, to check the server keeps eagerly sent data)."""
        path = self.path if path is None else path
        key = key or make_key()
        lines = ["GET %s HTTP/1.1" % path,
                 "Host: %s:%d" % (self.host if ":" not in self.host else "[%s]" % self.host,
                                  self.port),
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append("Origin: %s" % origin)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        req = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.send_raw(req + extra)
        head = self.read_http_head()
        status, reason, hdrs, _ = parse_http_head(head)
        self.response_headers = hdrs
        if status != 101:
            body = self._read_body_best_effort(hdrs)
            raise HandshakeError("expected 101, got %d %s" % (status, reason), status, hdrs, body)
        if hdrs.get("upgrade", "").lower() != "websocket":
            raise HandshakeError("101 without 'Upgrade: websocket'", status, hdrs)
        if "upgrade" not in [t.strip().lower() for t in hdrs.get("connection", "").split(",")]:
            raise HandshakeError("101 without 'Connection: Upgrade'", status, hdrs)
        if hdrs.get("sec-websocket-accept") != accept_for(key):
            raise HandshakeError("bad Sec-WebSocket-Accept %r (want %r)" % (
                hdrs.get("sec-websocket-accept"), accept_for(key)), status, hdrs)
        return hdrs

    def _read_body_best_effort(self, hdrs):
        try:
            n = int(hdrs.get("content-length", "0"))
            return self.recv_exact(n, timeout=1.0)
        except (WSError, ValueError, OSError):
            return bytes(self.buf)

    def read_http_head(self, timeout=None, limit=65536):
        """Read up to and including CRLFCRLF; return the head without the blank line."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > limit:
                raise WSError("HTTP response head longer than %d bytes" % limit)
            self._fill(deadline)

    # ---- raw I/O ----
    def send_raw(self, data):
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise Timeout("send of %d bytes timed out" % len(data))
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ConnectionClosed("send failed: %s" % e, reset=True)

    def send_chopped(self, data, chop, delay=0.0):
        """Send `data` in writes of `chop` bytes (TCP_NODELAY is on), optionally sleeping."""
        for i in range(0, len(data), chop):
            self.send_raw(data[i:i + chop])
            if delay:
                time.sleep(delay)

    def _fill(self, deadline, max_bytes=1 << 20):
        """Receive more bytes into self.buf, or raise Timeout / ConnectionClosed."""
        if self.eof:
            raise ConnectionClosed(reset=self.reset)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("timed out waiting for data")
        # An SSL socket may hold decrypted bytes poll() does not see. (poll, not select: a test
        # may hold more than FD_SETSIZE sockets.)
        if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            p = select.poll()
            p.register(self.sock, select.POLLIN)
            if not p.poll(max(1, int(remaining * 1000 + 0.999))):
                raise Timeout("timed out waiting for data")
        try:
            # poll() said readable, so recv() does not block on a plain socket; the socket's
            # own timeout (set once at connect, shared with a concurrent sender thread) bounds
            # a TLS read that waits for the rest of a record.
            data = self.sock.recv(max_bytes)
        except socket.timeout:
            raise Timeout("timed out waiting for data")
        except ssl.SSLWantReadError:
            return
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError) as e:
            self.eof, self.reset = True, True
            raise ConnectionClosed("connection reset: %s" % e, reset=True)
        if not data:
            self.eof = True
            raise ConnectionClosed()
        self.buf += data

    def recv_exact(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            self._fill(deadline, max(65536, min(1 << 22, n - len(self.buf))))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_some(self, timeout=None):
        """Whatever arrives next (at least one byte), or raise Timeout / ConnectionClosed."""
        if not self.buf:
            self._fill(time.monotonic() + (self.timeout if timeout is None else timeout))
        out = bytes(self.buf)
        self.buf.clear()
        return out

    # ---- frames ----
    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                   length_form=None, declared_length=None):
        self.send_raw(encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask,
                                   mask_key=mask_key, length_form=length_form,
                                   declared_length=declared_length))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def send_pong(self, payload=b""):
        self.send_frame(OP_PONG, payload)

    def send_close(self, code=1000, reason=b""):
        """Send a close frame (code None: empty payload). Ignores a peer that already went away."""
        try:
            self.send_frame(OP_CLOSE, close_payload(code, reason))
        except ConnectionClosed:
            pass

    def send_fragmented(self, opcode, payload, fragment_size):
        chunks = [payload[i:i + fragment_size] for i in range(0, len(payload), fragment_size)]
        if not chunks:
            chunks = [b""]
        out = bytearray()
        for i, ch in enumerate(chunks):
            out += encode_frame(opcode if i == 0 else OP_CONT, ch, fin=(i == len(chunks) - 1))
        self.send_raw(bytes(out))

    def recv_frame(self, timeout=None):
        """Next frame from the server. Raises WSError if the server masked it (RFC 6455 §5.1)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < 2:
            self._fill(deadline)
        b0, b1 = self.buf[0], self.buf[1]
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        hl = 2
        if n == 126:
            hl = 4
        elif n == 127:
            hl = 10
        if masked:
            hl += 4
        while len(self.buf) < hl:
            self._fill(deadline)
        if n == 126:
            n = struct.unpack_from("!H", self.buf, 2)[0]
        elif n == 127:
            n = struct.unpack_from("!Q", self.buf, 2)[0]
        if masked:
            raise WSError("server sent a masked frame (RFC 6455 §5.1 forbids it)")
        if n > (1 << 31):
            raise WSError("server frame length %d is absurd" % n)
        while len(self.buf) < hl + n:
            self._fill(deadline, max(65536, min(1 << 22, hl + n - len(self.buf))))
        payload = bytes(self.buf[hl:hl + n])
        del self.buf[:hl + n]
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload, masked)

    def recv_message(self, timeout=None, auto_pong=False, return_control=False):
        """Next whole data message, reassembled. Pings/pongs are recorded in self.pings /
        self.pongs and skipped (a ping is answered only with auto_pong=True), unless
        return_control=True, in which case they are returned as Message(OP_PING/OP_PONG). A close
        frame is returned as Message(OP_CLOSE, payload). The timeout covers the whole message."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        opcode, parts, nframes = None, [], 0
        while True:
            f = self.recv_frame(timeout=max(0.0, deadline - time.monotonic()))
            if f.rsv:
                raise WSError("server frame with RSV bits %d: %r" % (f.rsv, f))
            if f.opcode >= 0x8:
                if not f.fin:
                    raise WSError("server sent a fragmented control frame %r" % f)
                if len(f.payload) > 125:
                    raise WSError("server control frame too long %r" % f)
                if f.opcode == OP_CLOSE:
                    return Message(OP_CLOSE, f.payload)
                if f.opcode == OP_PING:
                    self.pings.append(f.payload)
                    if auto_pong:
                        self.send_pong(f.payload)
                    if return_control:
                        return Message(OP_PING, f.payload)
                    continue
                if f.opcode == OP_PONG:
                    self.pongs.append(f.payload)
                    if return_control:
                        return Message(OP_PONG, f.payload)
                    continue
                raise WSError("server sent reserved control opcode %r" % f)
            if f.opcode == OP_CONT:
                if opcode is None:
                    raise WSError("server sent a continuation with nothing to continue")
            elif f.opcode in (OP_TEXT, OP_BINARY):
                if opcode is not None:
                    raise WSError("server started a new message inside a fragmented one")
                opcode = f.opcode
            else:
                raise WSError("server sent reserved data opcode %r" % f)
            parts.append(f.payload)
            nframes += 1
            if f.fin:
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                if opcode == OP_TEXT:
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise WSError("server sent invalid UTF-8 in a text message: %s" % e)
                return Message(opcode, data, nframes)

    def recv_data(self, timeout=None, auto_pong=False):
        """Next data message; raises WSError if a close frame comes instead."""
        m = self.recv_message(timeout=timeout, auto_pong=auto_pong)
        if m.is_close:
            raise WSError("expected a data message, got close code=%r reason=%r" % (
                m.close_code, m.close_reason))
        return m

    def expect_silence(self, duration):
        """Assert no frame arrives within `duration` seconds (pings/pongs count too)."""
        try:
            f = self.recv_frame(timeout=duration)
        except Timeout:
            return
        raise WSError("expected silence, received %r" % f)

    def expect_close(self, timeout=None, skip_data=True, auto_pong=False):
        """Wait for the server's close frame; returns (code, reason, skipped_messages).
        Data messages before it are collected (or raise if skip_data=False)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        skipped = []
        while True:
            m = self.recv_message(timeout=max(0.0, deadline - time.monotonic()),
                                  auto_pong=auto_pong)
            if m.is_close:
                return m.close_code, m.close_reason, skipped
            if not skip_data:
                raise WSError("expected close, got %r" % m)
            skipped.append(m)

    def wait_eof(self, timeout=None):
        """Wait until the server closes TCP (EOF or reset), discarding any bytes. Returns the
        discarded bytes. Raises Timeout if the connection is still open."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        junk = bytearray(self.buf)
        self.buf.clear()
        while True:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                return bytes(junk)
            junk += self.buf
            self.buf.clear()

    def close(self, code=1000, reason=b"", timeout=None):
        """Close handshake initiated by us: send close, wait for the server's close (skipping
        data), then for the server to close TCP. Returns the server's (code, reason)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self.send_close(code, reason)
        rcode, rreason, _ = self.expect_close(timeout=max(0.0, deadline - time.monotonic()))
        self.wait_eof(timeout=max(0.0, deadline - time.monotonic()))
        self.abort()
        return rcode, rreason

    def answer_close(self, code, reason=b""):
        """After the server's close frame: echo it (RFC 6455 §5.5.1) if the socket is still up."""
        self.send_close(code, reason)

    def abort(self, rst=False):
        """Drop the TCP connection without a close handshake (rst=True: send a RST)."""
        if self.sock is None:
            return
        try:
            if rst:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass
        self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()


def http_request(host, port, raw, timeout=DEFAULT_TIMEOUT, ssl_context=None, server_hostname=None):
    """Send raw request bytes on a new connection and read until the server closes (or timeout).
    Returns all bytes received."""
    c = WSClient(host, port, handshake=False, timeout=timeout, ssl_context=ssl_context,
                 server_hostname=server_hostname)
    try:
        c.send_raw(raw)
        return c.wait_eof(timeout)
    finally:
        c.abort()


class HttpResponse:
    def __init__(self, status, reason, headers, header_list, body):
        self.status, self.reason, self.headers, self.header_list, self.body = (
            status, reason, headers, header_list, body)

    def __repr__(self):
        return "HttpResponse(%d %s, %r, body=%r)" % (self.status, self.reason, self.headers,
                                                   self.body[:80])


def read_http_response(client, head_request=False, timeout=None):
    """Read one HTTP response (Content-Length framed, or until EOF if absent) from a WSClient."""
    head = client.read_http_head(timeout=timeout)
    status, reason, headers, hl = parse_http_head(head)
    body = b""
    if head_request or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in headers:
        body = client.recv_exact(int(headers["content-length"]), timeout=timeout)
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = _read_chunked(client, timeout)
    else:
        body = client.wait_eof(timeout)
    return HttpResponse(status, reason, headers, hl, body)


def _read_chunked(client, timeout):
    out = bytearray()
    while True:
        line = _read_line(client, timeout)
        size = int(line.split(b";")[0], 16)
        if size == 0:
            while _read_line(client, timeout):
                pass
            return bytes(out)
        out += client.recv_exact(size, timeout=timeout)
        client.recv_exact(2, timeout=timeout)


def _read_line(client, timeout):
    deadline = time.monotonic() + (client.timeout if timeout is None else timeout)
    while b"\r\n" not in client.buf:
        client._fill(deadline)
    i = client.buf.find(b"\r\n")
    line = bytes(client.buf[:i])
    del client.buf[:i + 2]
    return line
