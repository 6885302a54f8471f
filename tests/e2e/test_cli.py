# SPDX-License-Identifier: Apache-2.0
"""Command line and configuration: config errors (exit 2, FILE:LINE:COL: KEY: message),
--check-config, --listen (IPv4, IPv6, repeated, replaces the config), --version, --help, bad
options, bind failure (exit 1), log line format."""

import os
import re
import socket
import subprocess
import tempfile
import shutil
import unittest

import harness
import wsclient

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_CONFIG = os.path.normpath(os.path.join(HERE, "..", "..", "etc", "wsrelay", "wsrelay.toml"))


def empty_config():
    """A config file with nothing in it (all defaults), for tests about the command line."""
    fd, path = tempfile.mkstemp(prefix="wsrelay-empty-", suffix=".toml")
    os.close(fd)
    return path

# (name, config text, key regex (None: any), line of the error)
CONFIG_ERRORS = [
    ("wrong type", "[limits]\nmax_message_bytes = \"big\"\n", r"limits\.max_message_bytes", 2),
    ("wrong type (float)", "[limits]\n\nmax_connections = 1.5\n", r"limits\.max_connections", 3),
    ("unknown key", "[limits]\nmax_connections = 10\nbogus = 1\n", r"limits\.bogus", 3),
    ("unknown top-level table", "[server]\nlog_level = \"info\"\n[bogus]\nx = 1\n",
     r"bogus(\.x)?", None),
    ("unknown top-level key", "bogus = true\n", r"bogus", 1),
    ("bad duration", "[timeouts]\nidle_timeout = \"10 parsecs\"\n", r"timeouts\.idle_timeout", 2),
    ("duration without unit", "[timeouts]\nping_interval = \"30\"\n",
     r"timeouts\.ping_interval", 2),
    ("duration as integer", "[timeouts]\nclose_timeout = 5\n", r"timeouts\.close_timeout", 2),
    ("negative duration", "[timeouts]\nshutdown_timeout = \"-1s\"\n",
     r"timeouts\.shutdown_timeout", 2),
    ("negative size", "[limits]\nmax_connections = -1\n", r"limits\.max_connections", 2),
    ("bool as string", "[rooms]\necho = \"yes\"\n", r"rooms\.echo", 2),
    ("bad enum slow_consumer", "[limits]\nslow_consumer = \"maybe\"\n", r"limits\.slow_consumer",
     2),
    ("bad log level", "[server]\nlog_level = \"loud\"\n", r"server\.log_level", 2),
    ("origins not an array", "[limits]\nallowed_origins = \"https://x\"\n",
     r"limits\.allowed_origins", 2),
    ("listen without port", "[[listen]]\naddress = \"127.0.0.1\"\n",
     r"listen(\[0\])?\.address", 2),
    ("listen bad IPv4", "[[listen]]\naddress = \"300.1.1.1:80\"\n", r"listen(\[0\])?\.address", 2),
    ("listen port out of range", "[[listen]]\naddress = \"127.0.0.1:65536\"\n",
     r"listen(\[0\])?\.address", 2),
    ("listen IPv6 without brackets", "[[listen]]\naddress = \"::1:80\"\n",
     r"listen(\[0\])?\.address", 2),
    ("listen hostname", "[[listen]]\naddress = \"localhost:80\"\n", r"listen(\[0\])?\.address", 2),
    ("second listen bad", "[[listen]]\naddress = \"127.0.0.1:1\"\n\n[[listen]]\n"
     "address = \"127.0.0.1:x\"\n", r"listen(\[1\])?\.address", 5),
    ("room without path", "[[room]]\necho = false\n", r"room(\[0\])?(\.path)?", None),
    ("room unknown key", "[[room]]\npath = \"/a\"\ncolour = \"red\"\n", r"room(\[0\])?\.colour",
     3),
]


def expect_line(text, path, key_re, line):
    """The `FILE:LINE:COL: KEY: what` line (priority prefix allowed) or None."""
    pat = re.escape(path) + r":(\d+):(\d+): (" + key_re + r"): \S"
    for ln in text.splitlines():
        m = re.search(pat, ln)
        if m and (line is None or int(m.group(1)) == line):
            return m
    return None


class ConfigErrorTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wsrelay-cfg-")

    def tearDown(self):
        for f in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, f))
        os.rmdir(self.tmp)

    def write(self, text, name="wsrelay.toml"):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def check_error(self, text, key_re, line, name):
        path = self.write(text)
        r = harness.run_cli(["--check-config", "--config", path])
        self.assertEqual(r.returncode, 2, "%s: exit %d, stderr %r" % (name, r.returncode, r.stderr))
        m = expect_line(r.stderr, path, key_re, line)
        self.assertIsNotNone(m, "%s: want '%s:%s:COL: <%s>: ...' in stderr, got %r" % (
            name, path, line if line is not None else "N", key_re, r.stderr))
        self.assertGreaterEqual(int(m.group(2)), 1)
        return r

    def test_config_errors(self):
        for name, text, key_re, line in CONFIG_ERRORS:
            with self.subTest(name):
                self.check_error(text, key_re, line, name)

    def test_send_queue_smaller_than_message(self):
        text = "[limits]\nmax_message_bytes = 1048576\nsend_queue_bytes = 1000\n"
        path = self.write(text)
        r = harness.run_cli(["--check-config", "--config", path])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(expect_line(r.stderr, path, r"limits\.send_queue_bytes", 3) or
                        expect_line(r.stderr, path, r"limits\.max_message_bytes", 2), r.stderr)

    def test_send_queue_must_hold_one_whole_frame(self):
        # Documented: at least max_message_bytes + 14.
        bad = "[limits]\nmax_message_bytes = 100000\nsend_queue_bytes = 100013\n"
        path = self.write(bad)
        r = harness.run_cli(["--check-config", "--config", path])
        self.assertEqual(r.returncode, 2, r.stderr)
        ok = "[limits]\nmax_message_bytes = 100000\nsend_queue_bytes = 100014\n"
        r = harness.run_cli(["--check-config", "--config", self.write(ok, "ok.toml")])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_idle_timeout_must_exceed_ping_interval(self):
        text = "[timeouts]\nping_interval = \"30s\"\nidle_timeout = \"30s\"\n"
        path = self.write(text)
        r = harness.run_cli(["--check-config", "--config", path])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(expect_line(r.stderr, path, r"timeouts\.idle_timeout", 3) or
                        expect_line(r.stderr, path, r"timeouts\.ping_interval", 2), r.stderr)

    def test_syntax_errors(self):
        for name, text, line in [
            ("value with junk", "[limits]\nmax_message_bytes = 12 34\n", 2),
            ("unterminated table header", "# comment\n[limits\nmax_connections = 1\n", 2),
            ("unterminated string", "[server]\nwww_root = \"/srv\n", 2),
            ("duplicate key", "[rooms]\necho = true\necho = false\n", 3),
            ("duplicate table", "[rooms]\necho = true\n[rooms]\nmax_members = 1\n", 3),
        ]:
            with self.subTest(name):
                path = self.write(text)
                r = harness.run_cli(["--check-config", "--config", path])
                self.assertEqual(r.returncode, 2, "%s: %r" % (name, r.stderr))
                self.assertRegex(r.stderr, re.escape(path) + ":%d:" % line, name)

    def test_config_error_on_normal_start_exits_2(self):
        path = self.write("[limits]\nmax_message_bytes = \"big\"\n")
        p = subprocess.Popen([harness.binary(), "--config", path, "--listen", "127.0.0.1:0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.fail("wsrelay kept running with an invalid config")
        self.assertEqual(p.returncode, 2)
        self.assertIsNotNone(expect_line(err, path, r"limits\.max_message_bytes", 2), err)

    def test_missing_config_file(self):
        path = os.path.join(self.tmp, "does-not-exist.toml")
        r = harness.run_cli(["--check-config", "--config", path])
        self.assertIn(r.returncode, (1, 2), r.stderr)
        self.assertIn(path, r.stderr)

    def test_valid_full_config(self):
        text = harness.toml_dumps({
            "server": {"www_root": "", "log_level": "debug", "healthz": True},
            "listen": [{"address": "127.0.0.1:0"}, {"address": "[::1]:0"}],
            "limits": {"max_connections": 10, "max_header_bytes": 4096, "max_header_count": 32,
                       "max_message_bytes": 65536, "send_queue_bytes": 65550,
                       "slow_consumer": "drop", "allowed_origins": ["https://a.example"]},
            "timeouts": {"handshake_timeout": "250ms", "ping_interval": "5m",
                         "idle_timeout": "1h", "close_timeout": "2s",
                         "shutdown_timeout": "10s"},
            "rooms": {"echo": False, "max_members": 5},
            "room": [{"path": "/a", "echo": True, "max_members": 0}, {"path": "/b"}],
        })
        path = self.write(text)
        r = harness.run_cli(["--check-config", "--config", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("127.0.0.1:0", r.stdout)
        self.assertIn("[::1]:0", r.stdout)


class CliTest(unittest.TestCase):

    def test_check_repo_config(self):
        # The packaged file listens on 80 and 443 with Debian's snakeoil certificate; check it with
        # a certificate of our own in place of the snakeoil one (which this machine may lack).
        tmp = tempfile.mkdtemp(prefix="wsrelay-cli-")
        try:
            cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                           check=True, capture_output=True, timeout=60)
            with open(REPO_CONFIG) as f:
                text = f.read()
            self.assertIn("/etc/ssl/certs/ssl-cert-snakeoil.pem", text)
            text = text.replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", cert)
            text = text.replace("/etc/ssl/private/ssl-cert-snakeoil.key", key)
            path = os.path.join(tmp, "wsrelay.toml")
            with open(path, "w") as f:
                f.write(text)
            r = harness.run_cli(["--check-config", "--config", path])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("listen 0.0.0.0:80 (ws)", r.stdout)
            self.assertIn("listen 0.0.0.0:443 (wss)", r.stdout)
            # Without the certificate files the check fails and names the file.
            if not os.path.exists("/etc/ssl/certs/ssl-cert-snakeoil.pem"):
                r = harness.run_cli(["--check-config", "--config", REPO_CONFIG])
                self.assertEqual(r.returncode, 2)
                self.assertIn("ssl-cert-snakeoil.pem", r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_check_config_embedded_defaults(self):
        if os.path.exists("/etc/wsrelay/wsrelay.toml"):
            self.skipTest("/etc/wsrelay/wsrelay.toml exists; defaults would not be embedded")
        r = harness.run_cli(["--check-config"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("127.0.0.1:8080", r.stdout)

    def setUp(self):
        self.empty = empty_config()
        self.addCleanup(os.unlink, self.empty)

    def test_check_config_with_listen(self):
        r = harness.run_cli(["--check-config", "--config", self.empty,
                             "--listen", "127.0.0.1:9", "--listen", "[::1]:0"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("127.0.0.1:9", r.stdout)
        self.assertIn("[::1]:0", r.stdout)
        self.assertNotIn("127.0.0.1:8080", r.stdout, "--listen replaces configured listeners")

    def test_bad_listen_arguments(self):
        for a in ("127.0.0.1", "127.0.0.1:", ":80", "[::1]", "::1:80", "127.0.0.1:65536",
                  "localhost:80", "1.2.3:80", "[::1:80", "127.0.0.1:-1", "127.0.0.1:8o"):
            with self.subTest(a):
                r = harness.run_cli(["--check-config", "--config", self.empty, "--listen", a])
                self.assertEqual(r.returncode, 2, "--listen %s: %r" % (a, r.stderr))
                self.assertTrue(r.stderr.strip(), "no message for --listen %s" % a)

    def test_version(self):
        r = harness.run_cli(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.strip(), r"^wsrelay \d+\.\d+\.\d+\S*$")

    def test_help(self):
        r = harness.run_cli(["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        for opt in ("--config", "--listen", "--check-config", "--version", "--help"):
            self.assertIn(opt, r.stdout)

    def test_bad_options_exit_2_with_usage(self):
        for args in (["--bogus"], ["-x"], ["--config"], ["--listen"], ["stray-argument"]):
            with self.subTest(args):
                try:
                    r = harness.run_cli(args, timeout=5)
                except subprocess.TimeoutExpired as e:
                    self.fail("%s: still running after 5s instead of exiting 2 (stderr %r)" % (
                        args, e.stderr))
                self.assertEqual(r.returncode, 2, "%s: %r" % (args, r.stderr))
                self.assertIn("--config", r.stderr, "usage expected on stderr")
                self.assertEqual(r.stdout, "")


class ListenTest(harness.DaemonTestCase):

    def echo_ok(self, host, port):
        c = self.track(wsclient.WSClient(host, port, "/l"))
        c.send_text("x")
        self.assertEqual(c.recv_data().text, "x")

    def test_listen_ipv4(self):
        d = self.start(activation=False)
        self.echo_ok(d.host, d.port)

    @unittest.skipUnless(harness.ipv6_available(), "no IPv6 loopback")
    def test_listen_ipv6(self):
        port = harness.free_port("::1")
        d = self.start(activation=False, listen=["[::1]:%d" % port])
        self.echo_ok("::1", port)
        self.assertEqual(d.get("/healthz").body, b"ok\n")

    def test_listen_repeated(self):
        p1, p2 = harness.free_port(), harness.free_port()
        d = self.start(activation=False, listen=["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2])
        self.echo_ok("127.0.0.1", p1)
        self.echo_ok("127.0.0.1", p2)

    def test_listen_replaces_configured(self):
        cfg_port, cli_port = harness.free_port(), harness.free_port()
        d = self.start({"listen": [{"address": "127.0.0.1:%d" % cfg_port}]}, activation=False,
                       listen=["127.0.0.1:%d" % cli_port])
        self.echo_ok("127.0.0.1", cli_port)
        s = socket.socket()
        s.settimeout(2)
        try:
            with self.assertRaises(OSError, msg="configured listener must not be bound"):
                s.connect(("127.0.0.1", cfg_port))
        finally:
            s.close()

    def test_configured_listener_without_activation(self):
        port = harness.free_port()
        d = self.start({"listen": [{"address": "127.0.0.1:%d" % port}]}, activation=False,
                       listen=[])
        d.port = port
        d.wait_listening()
        self.echo_ok("127.0.0.1", port)

    def test_bind_failure_exits_1(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        empty = empty_config()
        self.addCleanup(os.unlink, empty)
        try:
            p = subprocess.Popen([harness.binary(), "--config", empty, "--listen",
                                  "127.0.0.1:%d" % port], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            try:
                _out, err = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                self.fail("wsrelay kept running although its port is taken")
            self.assertEqual(p.returncode, 1, err)
            self.assertIn(str(port), err)
        finally:
            s.close()

    def test_log_lines_have_priority_prefix(self):
        d = self.start({"server": {"log_level": "debug"}})
        c = self.connect(d, "/log")
        c.send_text("x")
        c.recv_data()
        c.close()
        d.get("/healthz")
        bad = self.track(d.raw())
        bad.send_raw(b"GET / HTTP/9.9\r\n\r\n")
        bad.wait_eof(3)
        self.assertEqual(d.stop(), 0)
        lines = [ln for ln in d.stderr().splitlines() if ln.strip()]
        self.assertTrue(lines, "nothing logged at debug level")
        for ln in lines:
            self.assertRegex(ln, r"^<[0-7]>", "log line without journald priority prefix")
        # Connections are logged with the peer and the room (PRODUCT.md: Behaviour).
        self.assertTrue(any("127.0.0.1" in ln and "/log" in ln for ln in lines),
                        "no log line names the peer and the room:\n" + "\n".join(lines))

    def test_log_level_err_is_quiet(self):
        d = self.start({"server": {"log_level": "err"}})
        c = self.connect(d, "/q")
        c.close()
        self.assertEqual(d.stop(), 0)
        for ln in d.stderr().splitlines():
            if ln.strip():
                self.assertRegex(ln, r"^<[0-3]>", "line below 'err' at log_level=err")


if __name__ == "__main__":
    unittest.main()
