# SPDX-License-Identifier: Apache-2.0
"""HTTP on the WebSocket port: the embedded chat page, /healthz, www_root static files and
traversal attempts, error statuses (400/404/405/426/431/505), keep-alive and pipelining."""

import os
import re
import shutil
import tempfile
import unittest

import harness
import wsclient

SECRET = b"TOPSECRET-do-not-serve-4242\n"

WWW_FILES = {
    "index.html": (b"<!doctype html><title>root index</title>\n", "text/html"),
    "style.css": (b"body { color: red }\n", "text/css"),
    "app.js": (b"console.log('hi');\n", ("text/javascript", "application/javascript")),
    "data.json": (b'{"a": 1}\n', "application/json"),
    "logo.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"/>\n', "image/svg+xml"),
    "pic.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png"),
    "notes.txt": (b"plain text\n", "text/plain"),
    "sub/index.html": (b"<!doctype html><title>sub index</title>\n", "text/html"),
    "sub/page.html": (b"<p>sub page</p>\n", "text/html"),
}


def req(method, path, version="HTTP/1.1", headers=None, host=True):
    lines = ["%s %s %s" % (method, path, version)]
    if host:
        lines.append("Host: test")
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class EmbeddedPageTest(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.d = self.start()

    def test_get_root_serves_chat_page(self):
        r = self.d.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("content-type", "").replace(" ", "").lower(),
                         "text/html;charset=utf-8")
        self.assertEqual(int(r.headers["content-length"]), len(r.body))
        self.assertIn(b"<html", r.body.lower())

    def test_head_root_has_headers_no_body(self):
        get = self.d.get("/")
        c = self.track(self.d.raw())
        # HEAD then GET /healthz on one connection: if HEAD sent a body, the second response
        # would not start right after the first header block.
        c.send_raw(req("HEAD", "/") + req("GET", "/healthz"))
        r1 = wsclient.read_http_response(c, head_request=True)
        self.assertEqual(r1.status, 200)
        self.assertEqual(r1.headers.get("content-length"), str(len(get.body)))
        self.assertTrue(r1.headers.get("content-type", "").startswith("text/html"))
        r2 = wsclient.read_http_response(c)
        self.assertEqual((r2.status, r2.body), (200, b"ok\n"))

    def test_chat_page_assets_are_served(self):
        # The page references its stylesheet, script and icon; they come from the same server.
        page = self.d.get("/").body.decode("utf-8", "replace")
        refs = re.findall(r'(?:src|href)="([^"#?:]+)"', page)
        self.assertTrue(refs, "the chat page references no assets?")
        for ref in refs:
            path = ref if ref.startswith("/") else "/" + ref
            with self.subTest(path):
                r = self.d.get(path)
                self.assertEqual(r.status, 200, path)
                self.assertGreater(len(r.body), 0)
                ext = path.rsplit(".", 1)[-1]
                want = {"css": "text/css", "js": ("text/javascript", "application/javascript"),
                        "svg": "image/svg+xml", "html": "text/html"}.get(ext)
                if want:
                    self.assertTrue(r.headers.get("content-type", "").startswith(want),
                                    "%s: %r" % (path, r.headers.get("content-type")))

    def test_healthz(self):
        r = self.d.get("/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))

    def test_unknown_path_404(self):
        for p in ("/nope", "/nope.html", "/healthz/x", "/index.htm"):
            with self.subTest(p):
                self.assertEqual(self.d.get(p).status, 404)

    def test_other_methods_405_with_allow(self):
        for m in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
            with self.subTest(m):
                raw = req(m, "/") if m not in ("POST", "PUT", "PATCH") else \
                    req(m, "/", headers={"Content-Length": "0"})
                r = self.d.http(raw)
                self.assertEqual(r.status, 405)
                allow = [t.strip() for t in r.headers.get("allow", "").split(",")]
                self.assertEqual(sorted(allow), ["GET", "HEAD"])

    def test_keep_alive_sequential(self):
        c = self.track(self.d.raw())
        for path in ("/healthz", "/", "/healthz", "/nope"):
            c.send_raw(req("GET", path))
            r = wsclient.read_http_response(c)
            self.assertEqual(r.status, 404 if path == "/nope" else 200, path)

    def test_keep_alive_pipelined_in_one_send(self):
        c = self.track(self.d.raw())
        c.send_raw(req("GET", "/healthz") + req("GET", "/") + req("HEAD", "/") +
                   req("GET", "/healthz"))
        rs = [wsclient.read_http_response(c), wsclient.read_http_response(c),
              wsclient.read_http_response(c, head_request=True), wsclient.read_http_response(c)]
        self.assertEqual([r.status for r in rs], [200, 200, 200, 200])
        self.assertEqual(rs[0].body, b"ok\n")
        self.assertIn(b"<html", rs[1].body.lower())
        self.assertEqual(rs[3].body, b"ok\n")

    def test_pipelined_request_then_upgrade(self):
        c = self.track(self.d.raw())
        c.send_raw(req("GET", "/healthz"))
        r = wsclient.read_http_response(c)
        self.assertEqual(r.status, 200)
        c.handshake("/after-http")
        c.send_text("upgraded")
        self.assertEqual(c.recv_data().text, "upgraded")

    def test_http10_closes_after_response(self):
        c = self.track(self.d.raw())
        c.send_raw(req("GET", "/healthz", version="HTTP/1.0", host=False))
        r = wsclient.read_http_response(c)
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        c.wait_eof(3.0)

    def test_connection_close_honoured(self):
        c = self.track(self.d.raw())
        c.send_raw(req("GET", "/healthz", headers={"Connection": "close"}))
        r = wsclient.read_http_response(c)
        self.assertEqual(r.status, 200)
        c.wait_eof(3.0)

    def test_http_version_505(self):
        for v in ("HTTP/2.0", "HTTP/1.2", "HTTP/3.0"):
            with self.subTest(v):
                self.assertEqual(self.d.http(req("GET", "/", version=v)).status, 505)

    def test_malformed_requests_400(self):
        bad = {
            "garbage": b"HELLO\r\n\r\n",
            "no version": b"GET /\r\nHost: x\r\n\r\n",
            "missing Host (1.1)": b"GET / HTTP/1.1\r\n\r\n",
            "two Hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "header without colon": b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
            "space before colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "control char in target": b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET with a body": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "GET chunked": b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"0\r\n\r\n",
        }
        for name, raw in bad.items():
            with self.subTest(name):
                r = self.d.http(raw)
                self.assertEqual(r.status, 400, name)

    def test_error_responses_close_connection(self):
        c = self.track(self.d.raw())
        c.send_raw(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
        r = wsclient.read_http_response(c)
        self.assertEqual(r.status, 505)
        c.wait_eof(3.0)

    def test_upgrade_bad_key_400(self):
        for key in ("abc", "", "AAAAAAAAAAAAAAAAAAAAAAAA=", "not base64 at all!!!!!=="):
            with self.subTest(key=key):
                r = self.d.http(req("GET", "/r", headers={
                    "Upgrade": "websocket", "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": key}))
                self.assertEqual(r.status, 400)

    def test_upgrade_missing_key_400(self):
        r = self.d.http(req("GET", "/r", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                  "Sec-WebSocket-Version": "13"}))
        self.assertEqual(r.status, 400)

    def test_upgrade_wrong_version_426(self):
        for v in ("8", "12", "14", None):
            with self.subTest(version=v):
                h = {"Upgrade": "websocket", "Connection": "Upgrade",
                     "Sec-WebSocket-Key": wsclient.make_key()}
                if v is not None:
                    h["Sec-WebSocket-Version"] = v
                r = self.d.http(req("GET", "/r", headers=h))
                if v is None:  # RFC 6455 §4.2.2: a missing version may also be a plain 400
                    self.assertIn(r.status, (400, 426))
                    continue
                self.assertEqual(r.status, 426)
                self.assertEqual(r.headers.get("sec-websocket-version"), "13")

    def test_upgrade_non_get_405(self):
        r = self.d.http(req("POST", "/r", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": wsclient.make_key(), "Content-Length": "0"}))
        self.assertEqual(r.status, 405)

    def test_upgrade_header_case_insensitive_and_lists(self):
        c = self.track(self.d.raw())
        key = wsclient.make_key()
        c.send_raw(("GET /ci HTTP/1.1\r\nhost: x\r\nUPGRADE: WebSocket\r\n"
                    "connection: keep-alive, Upgrade\r\nsec-websocket-version: 13\r\n"
                    "SEC-WEBSOCKET-KEY: %s\r\n\r\n" % key).encode())
        status, _r, hdrs, _ = wsclient.parse_http_head(c.read_http_head())
        self.assertEqual(status, 101)
        self.assertEqual(hdrs.get("sec-websocket-accept"), wsclient.accept_for(key))

    def test_upgrade_offers_are_not_accepted_blindly(self):
        # No extension is implemented and no subprotocol is configured: the 101 must not claim
        # any (RFC 6455 §4.2.2), and RSV1 (permessage-deflate) stays a protocol error.
        c = self.track(self.d.client("/offers", headers={
            "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
            "Sec-WebSocket-Protocol": "chat, superchat"}))
        self.assertNotIn("sec-websocket-extensions", c.response_headers)
        self.assertNotIn("sec-websocket-protocol", c.response_headers)
        c.send_frame(wsclient.OP_TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4)
        self.assertServerCloses(c, 1002)

    def test_header_too_large_431(self):
        r = self.d.http(req("GET", "/", headers={"X-Big": "a" * 9000}), timeout=5)
        self.assertEqual(r.status, 431)

    def test_too_many_headers_431(self):
        h = {"X-H%d" % i: "v" for i in range(70)}
        r = self.d.http(req("GET", "/", headers=h))
        self.assertEqual(r.status, 431)


class HealthzOffTest(harness.DaemonTestCase):

    def test_healthz_disabled(self):
        d = self.start({"server": {"healthz": False}})
        self.assertEqual(d.get("/healthz").status, 404)
        self.assertEqual(d.get("/").status, 200)


class WwwRootTest(harness.DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix="wsrelay-www-")
        cls.www = os.path.join(cls.base, "www")
        for rel, (content, _t) in WWW_FILES.items():
            p = os.path.join(cls.www, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(content)
        with open(os.path.join(cls.base, "secret.txt"), "wb") as f:
            f.write(SECRET)
        os.makedirs(os.path.join(cls.base, "outside"))
        with open(os.path.join(cls.base, "outside", "x.txt"), "wb") as f:
            f.write(SECRET)
        os.symlink(os.path.join(cls.base, "secret.txt"), os.path.join(cls.www, "link.txt"))
        os.symlink("../secret.txt", os.path.join(cls.www, "rel-link.txt"))
        os.symlink(os.path.join(cls.base, "outside"), os.path.join(cls.www, "outdir"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.d = self.start({"server": {"www_root": self.www}})

    def test_files_with_content_types(self):
        for rel, (content, ctype) in WWW_FILES.items():
            with self.subTest(rel):
                r = self.d.get("/" + rel)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, content)
                self.assertEqual(int(r.headers.get("content-length", -1)), len(content))
                ct = r.headers.get("content-type", "")
                wants = ctype if isinstance(ctype, tuple) else (ctype,)
                self.assertTrue(any(ct.startswith(w) for w in wants), "%s: %r" % (rel, ct))

    def test_directory_index(self):
        r = self.d.get("/")
        self.assertEqual((r.status, r.body), (200, WWW_FILES["index.html"][0]))
        r = self.d.get("/sub/")
        self.assertEqual((r.status, r.body), (200, WWW_FILES["sub/index.html"][0]))

    def test_head_on_file(self):
        r = self.d.http(req("HEAD", "/style.css"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("content-length"), str(len(WWW_FILES["style.css"][0])))
        self.assertEqual(r.body, b"")

    def test_query_string_ignored_for_files(self):
        r = self.d.get("/notes.txt?v=3")
        self.assertEqual((r.status, r.body), (200, WWW_FILES["notes.txt"][0]))

    def test_missing_file_404(self):
        self.assertEqual(self.d.get("/missing.html").status, 404)
        self.assertEqual(self.d.get("/sub/missing/").status, 404)

    def test_healthz_still_works(self):
        self.assertEqual(self.d.get("/healthz").body, b"ok\n")

    TRAVERSALS = [
        "/../secret.txt",
        "/../../../../../../etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/a%2f..%2f..%2fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/sub/../../secret.txt",
        "/./../secret.txt",
        "/....//secret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "//etc/passwd",
        "///etc/passwd",
        "/%2fetc%2fpasswd",
        "/link.txt",
        "/rel-link.txt",
        "/outdir/x.txt",
        "/secret.txt%00.html",
        "/index.html%00",
        "/%00",
        "/%2e%2e%00/secret.txt",
        "/%252e%252e/secret.txt",
        "/..%c0%afsecret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "http://test/../secret.txt",
    ]

    def test_traversal_never_escapes(self):
        for path in self.TRAVERSALS:
            with self.subTest(path):
                raw = ("GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path).encode("latin-1")
                data = b""
                c = self.d.raw()
                try:
                    c.send_raw(raw)
                    r = wsclient.read_http_response(c)
                    data = r.body
                    self.assertIn(r.status, (400, 403, 404), "%s -> %d" % (path, r.status))
                except wsclient.ConnectionClosed:
                    pass  # closing without serving is acceptable
                finally:
                    c.abort()
                self.assertNotIn(b"TOPSECRET", data)
                self.assertNotIn(b"root:", data)
        self.assertTrue(self.d.alive())

    def test_directory_without_index_is_not_listed(self):
        os.makedirs(os.path.join(self.www, "empty"), exist_ok=True)
        r = self.d.get("/empty/")
        self.assertIn(r.status, (403, 404))


if __name__ == "__main__":
    unittest.main()
