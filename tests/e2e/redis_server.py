# SPDX-License-Identifier: Apache-2.0
"""A throwaway redis-server for the tests that need one (test_cluster.py, the soak's cluster mode,
workers): Debian's /usr/bin/redis-server in its own temporary directory, bound to 127.0.0.1 on a
free port, without persistence; and a raw RESP connection (standard library only) for the tests'
own look at it: PING, PUBSUB CHANNELS, INFO. A missing redis-server is an error, not a skip: the
suites that use it are part of what CI must show."""

import os
import signal
import socket
import subprocess
import tempfile

import harness

REDIS_SERVER = "/usr/bin/redis-server"


class RespError(str):
    """An error reply (-ERR ..., -WRONGPASS ...) from Redis."""


class RespConnection:
    """One raw RESP connection to Redis (standard library only), for the tests' own look at it:
    PING, PUBSUB CHANNELS, INFO. Every read is bounded by `timeout`."""

    def __init__(self, port, password=None, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        if password is not None:
            reply = self.command("AUTH", password)
            if reply != "OK":
                self.close()
                raise RuntimeError("redis refused our AUTH: %r" % reply)

    def command(self, *args):
        wire = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            wire.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(wire))
        return self._reply()

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("redis closed the connection")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        i = self.buf.index(b"\r\n")
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._more()
            data = bytes(self.buf[:n])
            del self.buf[:n + 2]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnectionError("not a RESP reply: %r" % line)

    def close(self):
        self.sock.close()


class RedisServer:
    """A throwaway redis-server in its own temporary directory (or in `directory`, which the caller
    owns), bound to 127.0.0.1 on a free port, without persistence, in the foreground (its log:
    redis.log). start() returns once it answers PING; restart() starts it again on the same port
    (after kill()); cleanup() stops it and removes its own directory unless WSRELAY_E2E_KEEP is
    set."""

    ATTEMPTS = 5    # starts on "Address already in use" (the free port was taken meanwhile)

    def __init__(self, password=None, directory=None):
        if not os.access(REDIS_SERVER, os.X_OK):
            raise RuntimeError("%s not found (apt-get install redis-server)" % REDIS_SERVER)
        self.password = password
        self.own_dir = directory is None
        if self.own_dir:
            self.dir = tempfile.mkdtemp(prefix="wsrelay-redis-")
        else:
            self.dir = directory
            os.makedirs(directory, exist_ok=True)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.port = None
        try:
            self.start()
        except BaseException:
            self.cleanup()      # the caller gets no object to clean up
            raise

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    @property
    def endpoint(self):
        """How wsrelay names it in its log lines."""
        return "127.0.0.1:%d" % self.port

    def start(self, same_port=False):
        for _attempt in range(self.ATTEMPTS):
            port = self.port if same_port else harness.free_port()
            if same_port:
                harness.wait_for(lambda: port_bindable(port), 20,
                                 "port %d to be free for redis-server again" % port)
            log_from = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--daemonize", "no", "--dir", self.dir]
            if self.password is not None:
                args += ["--requirepass", self.password]
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, close_fds=True)
            got = harness.wait_for(lambda: self.ping_or_exit(port), 30,
                                   "redis-server on 127.0.0.1:%d to answer PING" % port,
                                   until=lambda v: v in ("PONG", "exited"))
            if got == "PONG":
                self.port = port
                return
            self.proc.wait(timeout=10)
            if "Address already in use" not in self.log()[log_from:]:
                break
        raise RuntimeError("redis-server did not start; its log:\n" + self.log()[-3000:])

    def ping_or_exit(self, port=None):
        if self.proc.poll() is not None:
            return "exited"
        try:
            c = RespConnection(port or self.port, self.password, timeout=2.0)
        except (OSError, RuntimeError) as e:
            return "%s: %s" % (type(e).__name__, e)
        try:
            return c.command("PING")
        except OSError as e:
            return "%s: %s" % (type(e).__name__, e)
        finally:
            c.close()

    def command(self, *args):
        """One command on a connection of its own (AUTH first when there is a password)."""
        c = RespConnection(self.port, self.password)
        try:
            return c.command(*args)
        finally:
            c.close()

    def channels(self, pattern="*"):
        return sorted(ch.decode() for ch in self.command("PUBSUB", "CHANNELS", pattern))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL, and wait for it to be gone."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def restart(self):
        self.start(same_port=True)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)      # a paused one cannot act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.own_dir and os.environ.get("WSRELAY_E2E_KEEP") is None:
            for name in os.listdir(self.dir):
                os.unlink(os.path.join(self.dir, name))
            os.rmdir(self.dir)


def port_bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as redis-server does
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
