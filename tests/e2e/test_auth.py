# SPDX-License-Identifier: Apache-2.0
"""Access control (issue #18, the shared spec in notes/auth-spec.md): signed tokens for rooms,
listen-only members, expiring connections, key rotation on SIGHUP, the user in the log, and the
HTTP API for backends (also through [cluster]).

Tokens are minted here (tokens.py): HS256 with Debian's python3-jwt and with the openssl command
(`openssl dgst -mac HMAC`), RS256 / ES256 / EdDSA with PyJWT against a public_key_file, EdDSA
with `openssl pkeyutl -sign -rawin` and a key from `openssl genpkey`; hostile ones (alg "none",
an HS256 token keyed with the public key PEM, a flipped signature byte) by hand. Keys are made
per run in a temporary directory.

Every refusal is checked whole: status, the exact WWW-Authenticate header, the text/plain body,
Connection: close and the server closing TCP, and the one info line
`conn=N peer=ADDR room=/x token refused: <reason>: <status>`. After every test the daemons' logs
must not contain any token a test sent (nor its signature), the HMAC secret or an API key.

Waits are on conditions (a message, a close frame, a log line, a metric, READY=1 after
RELOADING=1), bounded; "nothing was relayed" is shown by a marker sent afterwards arriving first,
never by waiting for silence. Loopback only; the cluster test starts its own redis-server."""

import http.client
import json
import os
import re
import signal
import subprocess
import time
import unittest

import harness
import soak
import test_systemd
import test_tls
import tokens
import wsclient
from redis_server import RedisServer
from wsclient import OP_BINARY, OP_PONG, OP_TEXT

KEYS = None

API_KEY = "api-key-one-7f3c9a0e5b"
API_KEY_2 = "api-key-two-c41d88a2e6"

# The error_description of an invalid token: the spec's list.
REASONS = ("malformed token", "token too large", "unsupported algorithm",
           "no key for the algorithm", "bad signature", "token expired", "token not valid yet",
           "wrong audience", "wrong issuer", "bad claims")


def setUpModule():
    global KEYS
    KEYS = tokens.Keys()


def tearDownModule():
    if KEYS is not None:
        KEYS.remove()


class Refusal:
    """A handshake that did not get its 101."""

    def __init__(self, status, headers, body, client, port):
        self.status, self.headers, self.body, self.client, self.port = (
            status, headers, body, client, port)

    def __repr__(self):
        return "Refusal(%s, %r, %r)" % (self.status, self.headers, self.body)


class ApiResponse:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "ApiResponse(%d, %r, %r)" % (self.status, self.headers, self.body[:200])


def round_trip(c, payload=b"sync"):
    """Ping/pong: afterwards the server has handled everything c sent before, and c is open."""
    c.send_ping(payload)
    m = c.recv_message(return_control=True, timeout=10)
    assert (m.opcode, m.data) == (OP_PONG, payload), m


class AuthCase(harness.DaemonTestCase):
    """Daemons with [auth], tokens remembered so that tearDown() can check that no log holds one
    (nor the HMAC secret, nor an API key)."""

    def setUp(self):
        super().setUp()
        self._secrets = {KEYS.hmac_secret: "the HMAC secret", API_KEY: "an API key",
                         API_KEY_2: "an API key"}
        self._redis = []

    def tearDown(self):
        leaks = []
        try:
            for d in self._daemons:
                try:
                    log = d.stderr()
                except AssertionError:
                    continue
                for s, what in self._secrets.items():
                    if s and s in log:
                        line = next(l for l in log.splitlines() if s in l)
                        leaks.append("%s is in wsrelay's log: %r" % (what, line[:300]))
        finally:
            try:
                super().tearDown()
            finally:
                for r in self._redis:
                    r.cleanup()
        if leaks:
            self.fail("secrets in the log:\n" + "\n".join(leaks[:10]))

    def remember(self, token, what="a token"):
        """Neither the token nor its signature may ever show up in a log."""
        self._secrets[token] = what
        sig = token.rpartition(".")[2]
        if len(sig) >= 16:
            self._secrets[sig] = what + "'s signature"

    def secret_file(self, name, secret):
        self._secrets[secret] = "a secret from " + name
        return KEYS.write(name, secret + "\n")

    # ---- daemons ----
    def start_auth(self, auth=None, rooms=None, extra=None):
        """A daemon whose rooms need a token by default (keys: KEYS.hmac_file, KEYS.pub_file),
        with /metrics on its listener. auth: merged over [auth] (None deletes a key)."""
        a = harness.merge({"default": "token", "hmac_secret_file": KEYS.hmac_file,
                           "public_key_file": KEYS.pub_file}, auth or {})
        cfg = {"listen": [{"address": "127.0.0.1:{port}", "metrics": True}], "auth": a}
        if rooms:
            cfg["room"] = rooms
        return self.start(harness.merge(cfg, extra or {}))

    def reload(self, d):
        """SIGHUP and wait until it is done: READY=1 after RELOADING=1."""
        d.send_signal(signal.SIGHUP)
        d.wait_notify("RELOADING=1", timeout=30)
        d.wait_notify("READY=1", timeout=30)

    def wait_log(self, d, predicate, what, timeout=20.0):
        return test_tls.wait_log(d, predicate, what, timeout)

    def metrics(self, d, port=None):
        c = self.track(wsclient.WSClient(d.host, port or d.port, handshake=False))
        c.send_raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = wsclient.read_http_response(c)
        c.abort()
        self.assertEqual(r.status, 200, r)
        return test_systemd.Metrics(r.body.decode("utf-8"))

    # ---- handshakes ----
    def attempt(self, d, path, token=None, via="query", headers=None, port=None):
        """Upgrade to `path` with `token` in the query (via="query") or in
        `Authorization: Bearer` (via="header"). Returns the WSClient on 101, else a Refusal."""
        c = self.track(wsclient.WSClient(d.host, port or d.port, handshake=False))
        local_port = c.sock.getsockname()[1]
        hdrs = dict(headers or {})
        if token is not None:
            self.remember(token)
            if via == "query":
                path += ("&" if "?" in path else "?") + "token=" + token
            else:
                hdrs["Authorization"] = "Bearer " + token
        try:
            c.handshake(path, headers=hdrs)
        except wsclient.HandshakeError as e:
            return Refusal(e.status, e.headers, e.body, c, local_port)
        return c

    def admit(self, d, path, token=None, via="query", **kw):
        r = self.attempt(d, path, token, via, **kw)
        if isinstance(r, Refusal):
            self.fail("%s (token via %s): expected 101, got %d %r %r" % (
                path, via, r.status, r.headers.get("www-authenticate"), r.body))
        return r

    def refuse(self, d, path, token, status, reason, via="query", room=None, **kw):
        """The handshake is refused before any 101, exactly as the spec says; returns the
        Refusal."""
        assert reason in REASONS + ("no token", "room not allowed"), reason   # the spec's words
        r = self.attempt(d, path, token, via, **kw)
        where = "%s (token via %s)" % (room or path, via)
        if not isinstance(r, Refusal):
            self.fail("%s: admitted (101), expected %d %r" % (where, status, reason))
        error = "invalid_request" if reason == "no token" else (
            "insufficient_scope" if status == 403 else "invalid_token")
        # Every part is checked and every mismatch reported at once.
        wrong = []

        def want(what, got, expected):
            if got != expected:
                wrong.append("%s: %r, expected %r" % (what, got, expected))

        want("status", r.status, status)
        want("WWW-Authenticate", r.headers.get("www-authenticate"),
             'Bearer realm="wsrelay", error="%s", error_description="%s"' % (error, reason))
        want("body", r.body, ("%d %s: %s\n" % (
            status, "Unauthorized" if status == 401 else "Forbidden", reason)).encode())
        want("Content-Type", r.headers.get("content-type", "").split(";")[0].strip(),
             "text/plain")
        want("Connection", r.headers.get("connection", "").lower(), "close")
        try:
            r.client.wait_eof(timeout=5)
        except wsclient.Timeout:
            wrong.append("TCP still open 5 s after the response")
        room = room or path.split("?", 1)[0]
        pat = re.compile(r"^<6>conn=\d+ peer=127\.0\.0\.1:%d room=%s token refused: %s: %d$" % (
            r.port, re.escape(room), re.escape(reason), status))
        try:
            self.wait_log(d, pat.search, "the refusal line %s" % pat.pattern, timeout=10)
        except AssertionError:
            tag = "peer=127.0.0.1:%d " % r.port
            wrong.append("no log line %s; the lines for that peer: %r" % (
                pat.pattern, [l for l in d.stderr().splitlines() if tag in l]))
        else:
            tag = "peer=127.0.0.1:%d " % r.port
            lines = [l for l in d.stderr().splitlines() if tag in l and "token refused" in l]
            want("refusal lines for the peer", len(lines), 1)
        if wrong:
            self.fail("%s, refused with %r:\n  %s" % (where, r, "\n  ".join(wrong)))
        return r

    def assertRelays(self, sender, receivers, text):
        sender.send_text(text)
        for c in receivers:
            self.assertEqual(c.recv_data(timeout=10).text, text)


# ---------------------------------------------------------------- tokens for rooms
class TokenRoomTest(AuthCase):

    def test_hs256_in_query_and_in_bearer_header(self):
        d = self.start_auth()
        t = KEYS.hs256(tokens.claims("alice", ["/private"]))
        q = self.admit(d, "/private", t, "query")
        h = self.admit(d, "/private", t, "header")
        # Percent-decoded, among other parameters.
        enc = self.admit(d, "/private?x=1&token=" + t.replace(".", "%2E").replace("-", "%2D") +
                         "&y=%20")
        self.remember(t)
        self.assertRelays(q, [q, h, enc], "members all")
        # The query parameter wins over the header.
        self.admit(d, "/private?token=" + t, headers={"Authorization": "Bearer not-a-token"})
        self.refuse(d, "/private?token=not-a-token", None, 401, "malformed token",
                    headers={"Authorization": "Bearer " + t})

    def test_rs256_es256_eddsa_against_public_key_file(self):
        d = self.start_auth({"hmac_secret_file": None})
        members = []
        for pair in (KEYS.rsa, KEYS.ec, KEYS.ed):
            with self.subTest(pair.alg):
                t = pair.mint(tokens.claims("user-" + pair.alg, ["/keys"]))
                members.append(self.admit(d, "/keys", t, "query"))
                members.append(self.admit(d, "/keys", t, "header"))
        self.assertRelays(members[0], members, "signed three ways")
        # Keys the daemon does not have.
        for pair in (KEYS.other_rsa, KEYS.other_ec):
            with self.subTest("unknown " + pair.alg):
                self.refuse(d, "/keys", pair.mint(tokens.claims("mallory", ["/keys"])), 401,
                            "bad signature")

    def test_tokens_signed_by_the_openssl_command(self):
        pub = KEYS.write("openssl-pub.pem", KEYS.ed_openssl.public_pem)
        d = self.start_auth({"public_key_file": pub})
        c = tokens.claims("olga", ["/ossl"])
        a = self.admit(d, "/ossl", tokens.openssl_hs256(c, KEYS.hmac_secret))
        b = self.admit(d, "/ossl", tokens.openssl_eddsa(c, KEYS.ed_openssl.private_pem_path),
                       via="header")
        e = self.admit(d, "/ossl", KEYS.ed_openssl.mint(c))    # PyJWT with openssl's key
        self.assertRelays(b, [a, b, e], "openssl-signed")
        # openssl's HMAC with another secret.
        self.refuse(d, "/ossl", tokens.openssl_hs256(c, "some other secret"), 401,
                    "bad signature")

    def test_missing_token(self):
        d = self.start_auth()
        self.refuse(d, "/private", None, 401, "no token")
        self.refuse(d, "/private?tok=x&tokens=y", None, 401, "no token")
        # Not a bearer token: no token.
        self.refuse(d, "/private", None, 401, "no token",
                    headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})

    def test_bad_signature(self):
        d = self.start_auth()
        c = tokens.claims("alice", ["/private"])
        self.refuse(d, "/private", tokens.resign_garbage(KEYS.hs256(c)), 401, "bad signature")
        self.refuse(d, "/private", KEYS.hs256(c, secret="not the secret"), 401, "bad signature",
                    via="header")
        self.refuse(d, "/private", tokens.resign_garbage(KEYS.ec.mint(c)), 401, "bad signature")
        self.refuse(d, "/private", tokens.resign_garbage(KEYS.ed.mint(c)), 401, "bad signature")
        # Claims changed after signing (a signature of other claims).
        good = KEYS.hs256(c)
        other = KEYS.hs256(tokens.claims("alice", ["/*"]))
        spliced = good.rsplit(".", 2)[0] + "." + other.split(".")[1] + "." + good.split(".")[2]
        self.refuse(d, "/private", spliced, 401, "bad signature")

    def test_expired_and_leeway(self):
        d = self.start_auth({"leeway": "30s"})
        now = tokens.now()
        # Expired 10 s ago: inside the 30 s leeway.
        self.admit(d, "/private", KEYS.hs256(tokens.claims("late", ["/private"], exp=now - 10)))
        self.refuse(d, "/private", KEYS.hs256(tokens.claims("later", ["/private"], exp=now - 120)),
                    401, "token expired")
        self.refuse(d, "/private", KEYS.ec.mint(tokens.claims("later", ["/private"],
                                                                exp=now - 3600)),
                    401, "token expired", via="header")

    def test_not_valid_yet(self):
        d = self.start_auth({"leeway": "30s"})
        now = tokens.now()
        self.admit(d, "/private", KEYS.hs256(tokens.claims("early", ["/private"], nbf=now + 10)))
        self.refuse(d, "/private", KEYS.hs256(tokens.claims("too-early", ["/private"],
                                                            nbf=now + 600)),
                    401, "token not valid yet")

    def test_audience_and_issuer(self):
        d = self.start_auth({"audience": "wsrelay-e2e", "issuer": "https://issuer.e2e.test"})
        ok = {"aud": "wsrelay-e2e", "iss": "https://issuer.e2e.test"}

        def tok(**over):
            return KEYS.hs256(tokens.claims("aud-user", ["/private"], **dict(ok, **over)))

        self.admit(d, "/private", tok())
        self.admit(d, "/private", tok(aud=["someone-else", "wsrelay-e2e"]))   # aud contains it
        self.refuse(d, "/private", tok(aud="someone-else"), 401, "wrong audience")
        self.refuse(d, "/private", tok(aud=["a", "b"]), 401, "wrong audience")
        self.refuse(d, "/private", tok(aud=None), 401, "wrong audience")
        self.refuse(d, "/private", tok(iss="https://evil.test"), 401, "wrong issuer")
        self.refuse(d, "/private", tok(iss=None), 401, "wrong issuer")

    def test_alg_none(self):
        d = self.start_auth()
        c = tokens.claims("mallory", ["/private"])
        self.refuse(d, "/private", tokens.alg_none(c), 401, "unsupported algorithm")
        self.refuse(d, "/private", tokens.alg_none(c), 401, "unsupported algorithm",
                    via="header")
        # "none" with a signature after all, and another alg the daemon does not do.
        self.refuse(d, "/private", tokens.alg_none(c) + "c2lnbmF0dXJl", 401,
                    "unsupported algorithm")
        self.refuse(d, "/private", tokens.hs256_by_hand(c, KEYS.hmac_secret, header={
            "alg": "HS512", "typ": "JWT"}), 401, "unsupported algorithm")

    def test_alg_confusion(self):
        """An HS256 token whose HMAC key is the public key PEM the daemon has: with only
        public_key_file configured there is no HS256 key at all; with both, the HS256 key is the
        secret, and the PEM is not it."""
        c = tokens.claims("mallory", ["/private"])
        d = self.start_auth({"hmac_secret_file": None})
        for pem in (KEYS.rsa.public_pem, KEYS.ec.public_pem, KEYS.ed.public_pem,
                    KEYS.rsa.public_pem + KEYS.ec.public_pem + KEYS.ed.public_pem):
            self.refuse(d, "/private", tokens.hs256_by_hand(c, pem), 401,
                        "no key for the algorithm")
        d2 = self.start_auth()
        self.refuse(d2, "/private", tokens.hs256_by_hand(c, KEYS.rsa.public_pem), 401,
                    "bad signature")

    def test_garbage_tokens(self):
        d = self.start_auth()
        for t in ("garbage", "a.b", "a.b.c.d", "...", "%%%",
                  tokens.b64url(b"not json") + "." + tokens.b64url_json({"sub": "x"}) + ".AAAA",
                  tokens.b64url_json(["HS256"]) + "." + tokens.b64url_json({"sub": "x"}) + ".AA"):
            with self.subTest(t):
                self.refuse(d, "/private", t, 401, "malformed token", via="header")
        # Signed, but the claims are not what they must be.
        for bad in ({"exp": "tomorrow"}, {"nbf": [1]}, {"rooms": "/private"},
                    {"rooms": ["/private", 7]}, {"publish": "yes"}, {"sub": 42}):
            with self.subTest(bad):
                c = tokens.claims("bob", ["/private"])
                c.update(bad)
                self.refuse(d, "/private", KEYS.hs256(c), 401, "bad claims")

    def test_rooms_claim(self):
        d = self.start_auth()
        self.refuse(d, "/other", KEYS.hs256(tokens.claims("alice", ["/private"])), 403,
                    "room not allowed")
        self.refuse(d, "/private/sub", KEYS.hs256(tokens.claims("alice", ["/private"])), 403,
                    "room not allowed")
        self.refuse(d, "/private", KEYS.hs256(tokens.claims("alice", [])), 403,
                    "room not allowed", via="header")
        team = KEYS.hs256(tokens.claims("tess", ["/team/*"]))
        for room in ("/team/a", "/team/a/b", "/team/x-y"):
            with self.subTest(room):
                self.admit(d, room, team)
        for room in ("/team", "/teams/a", "/teamx", "/other/team/a"):
            with self.subTest(room):
                self.refuse(d, room, team, 403, "room not allowed")
        every = KEYS.hs256(tokens.claims("root", ["/*"]))
        for room in ("/anything", "/deep/down/here", "/private"):
            with self.subTest(room):
                self.admit(d, room, every, via="header")
        several = KEYS.hs256(tokens.claims("sam", ["/one", "/two/*"]))
        self.admit(d, "/one", several)
        self.admit(d, "/two/x", several)
        self.refuse(d, "/two", several, 403, "room not allowed")

    def test_open_rooms(self):
        # Token by default, one open room.
        d = self.start_auth(rooms=[{"path": "/lobby", "auth": "open"}])
        anon = self.admit(d, "/lobby")
        named = self.admit(d, "/lobby", KEYS.hs256(tokens.claims("visitor", ["/elsewhere"])))
        self.assertRelays(anon, [anon, named], "open to all")
        self.refuse(d, "/lobby", "garbage", 401, "malformed token")
        self.refuse(d, "/lobby", KEYS.hs256(tokens.claims("x", ["/lobby"], exp=tokens.now() - 600)),
                    401, "token expired", via="header")
        self.refuse(d, "/lobby", tokens.alg_none(tokens.claims("x", ["/lobby"])), 401,
                    "unsupported algorithm")
        self.refuse(d, "/private", None, 401, "no token")
        # Open by default, one token room.
        d2 = self.start_auth({"default": "open"}, rooms=[{"path": "/vip", "auth": "token"}])
        self.admit(d2, "/anywhere")
        self.refuse(d2, "/vip", None, 401, "no token")
        self.refuse(d2, "/vip", KEYS.hs256(tokens.claims("v", ["/anywhere"])), 403,
                    "room not allowed")
        self.admit(d2, "/vip", KEYS.hs256(tokens.claims("v", ["/vip"])))
        self.refuse(d2, "/anywhere", tokens.resign_garbage(KEYS.hs256(tokens.claims("v"))), 401,
                    "bad signature")

    def test_open_rooms_without_keys_ignore_tokens(self):
        d = self.start({"room": [{"path": "/x", "echo": True}]})
        a = self.admit(d, "/x", "garbage")
        b = self.admit(d, "/x", tokens.alg_none(tokens.claims("m", ["/x"])), via="header")
        self.assertRelays(a, [a, b], "tokens ignored")
        self.assertNotIn("token refused", d.stderr())

    def test_refusal_metrics(self):
        d = self.start_auth()
        for _ in range(2):
            self.refuse(d, "/private", None, 401, "no token")
        self.refuse(d, "/private", "garbage", 401, "malformed token")
        self.refuse(d, "/private", tokens.alg_none(tokens.claims()), 401, "unsupported algorithm")
        self.refuse(d, "/private", KEYS.hs256(tokens.claims(exp=tokens.now() - 999)), 401,
                    "token expired")
        self.refuse(d, "/other", KEYS.hs256(tokens.claims()), 403, "room not allowed")
        self.admit(d, "/private", KEYS.hs256(tokens.claims()))
        m = self.metrics(d)
        self.assertEqual(m.types.get("wsrelay_auth_refusals_total"), "counter")
        got = {r: m["wsrelay_auth_refusals_total", "reason", r]
               for r in ("missing", "invalid", "forbidden")}
        self.assertEqual(got, {"missing": 2, "invalid": 3, "forbidden": 1})

    def test_tokens_never_logged_even_at_debug(self):
        d = self.start_auth(extra={"server": {"log_level": "debug"}})
        good = KEYS.hs256(tokens.claims("dora", ["/private"]))
        a = self.admit(d, "/private", good)
        b = self.admit(d, "/private", KEYS.ec.mint(tokens.claims("dora", ["/private"])),
                       via="header")
        self.assertRelays(a, [a, b], "debug")
        self.refuse(d, "/private", tokens.resign_garbage(good), 401, "bad signature")
        self.refuse(d, "/elsewhere", good, 403, "room not allowed", via="header")
        # The chat page's own URL carries the token too: its request line (debug) names the path.
        self.assertEqual(d.get("/?token=" + good).status, 200)
        self.wait_log(d, lambda l: "GET / -> 200" in l, "the page request's debug line")
        a.close()
        b.close()
        self.wait_log(d, lambda l: "user=dora" in l and "closed" in l, "a close line")
        # tearDown() checks the log for every token, signature and secret.


# ---------------------------------------------------------------- the user in the log
class UserLogTest(AuthCase):

    def test_connect_and_close_lines_carry_the_sub(self):
        d = self.start_auth(rooms=[{"path": "/lobby", "auth": "open"}])
        c = self.admit(d, "/private", KEYS.hs256(tokens.claims("alice", ["/private"])))
        port = c.sock.getsockname()[1]
        line = self.wait_log(d, lambda l: "peer=127.0.0.1:%d " % port in l and "connected" in l,
                             "the connect line")
        self.assertRegex(line, r"^<6>conn=\d+ peer=127\.0\.0\.1:%d room=/private user=alice "
                               r"connected, \d+ open$" % port)
        anon = self.admit(d, "/lobby")
        aport = anon.sock.getsockname()[1]
        aline = self.wait_log(d, lambda l: "peer=127.0.0.1:%d " % aport in l and "connected" in l,
                              "the anonymous connect line")
        self.assertNotIn("user=", aline)
        self.assertEqual(c.close(), (1000, b""))
        close = self.wait_log(d, lambda l: "peer=127.0.0.1:%d " % port in l and "closed" in l,
                              "the close line")
        self.assertRegex(close, r"\buser=alice\b")
        self.assertRegex(close, r"closed code=1000\b")
        # An open room with a token: the sub is logged too.
        v = self.admit(d, "/lobby", KEYS.ed.mint(tokens.claims("victor", ["/nowhere"])))
        vport = v.sock.getsockname()[1]
        vline = self.wait_log(d, lambda l: "peer=127.0.0.1:%d " % vport in l and "connected" in l,
                              "the connect line of a token holder in an open room")
        self.assertRegex(vline, r" room=/lobby user=victor connected, \d+ open$")


# ---------------------------------------------------------------- listen-only members
class ListenOnlyTest(AuthCase):

    def members(self, d, room="/stage"):
        listener = self.admit(d, room, KEYS.hs256(tokens.claims("lena", [room], publish=False)))
        talker = self.admit(d, room, KEYS.hs256(tokens.claims("tom", [room], publish=True)),
                            via="header")
        other = self.admit(d, room, KEYS.hs256(tokens.claims("olaf", [room])))
        return listener, talker, other

    def test_listen_only_member_is_closed_1008(self):
        d = self.start_auth()
        listener, talker, other = self.members(d)
        round_trip(listener)                                    # pings are answered
        self.assertRelays(talker, [listener, talker, other], "for everyone")   # it listens
        listener.send_text("from the listener")
        code, reason, _ = self.assertServerCloses(listener, 1008)
        self.assertEqual(reason, b"listen only")
        # A marker sent after the close arrives first: the listener's message went nowhere.
        self.assertRelays(other, [talker, other], "marker")
        # Binary too.
        listener2 = self.admit(d, "/stage", KEYS.ec.mint(tokens.claims("lea", ["/stage"],
                                                                        publish=False)))
        listener2.send_binary(b"\x00\x01 binary from a listener")
        _code, reason, _ = self.assertServerCloses(listener2, 1008)
        self.assertEqual(reason, b"listen only")
        self.assertRelays(talker, [talker, other], "marker 2")
        self.wait_log(d, lambda l: "user=lena" in l and "closed code=1008" in l,
                      "the close line of the listen-only member")

    def test_listen_only_drop(self):
        d = self.start_auth({"listen_only_action": "drop"})
        listener, talker, other = self.members(d)
        m0 = self.metrics(d)
        listener.send_text("dropped text")
        listener.send_binary(b"dropped binary")
        listener.send_fragmented(OP_TEXT, b"dropped in fragments", 5)
        round_trip(listener)        # handled, and still open
        self.assertRelays(talker, [listener, talker, other], "marker")
        round_trip(listener, b"still here")
        m1 = self.metrics(d)
        self.assertEqual(m1["wsrelay_messages_dropped_total", "reason", "listen_only"], 3)
        self.assertEqual(m1["wsrelay_websocket_connections"], 3)
        self.assertEqual(m0["wsrelay_websocket_connections"], 3)
        self.assertRelays(other, [listener, talker, other], "the listener still gets messages")
        self.assertEqual(listener.close(), (1000, b""))

    def test_publish_false_applies_in_open_rooms(self):
        d = self.start_auth({"default": "open"})
        listener = self.admit(d, "/open", KEYS.hs256(tokens.claims("lu", ["/x"], publish=False)))
        talker = self.admit(d, "/open")
        self.assertRelays(talker, [listener, talker], "hello")
        listener.send_text("nope")
        _code, reason, _ = self.assertServerCloses(listener, 1008)
        self.assertEqual(reason, b"listen only")
        self.assertRelays(talker, [talker], "marker")


# ---------------------------------------------------------------- expiring connections
class ExpireTest(AuthCase):

    def test_check_config_accepts_leeway_0s(self):
        d = self.start_auth({"leeway": "0s", "expire_connections": True})
        r = harness.run_cli(["--check-config", "--config", d.config_path])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_connection_closed_when_its_token_expires(self):
        d = self.start_auth({"expire_connections": True, "leeway": "0s"})
        exp = tokens.now() + 3
        short = self.admit(d, "/private", KEYS.hs256(tokens.claims("shorty", ["/private"],
                                                                   ttl=None, exp=exp)))
        forever = self.admit(d, "/private", KEYS.hs256(tokens.claims("eve", ["/private"],
                                                                     ttl=None)))
        later = self.admit(d, "/private", KEYS.hs256(tokens.claims("lars", ["/private"],
                                                                   ttl=3600)))
        self.assertRelays(forever, [short, forever, later], "before")
        # Checked at least once a second: closed within exp + 1 s (plus slack for a loaded
        # machine), never before exp.
        try:
            code, reason, _skipped = short.expect_close(timeout=exp - time.time() + 6)
        except wsclient.Timeout:
            self.fail("not closed by exp + 6 s")
        arrived = time.time()
        self.assertEqual((code, reason), (1008, b"token expired"))
        self.assertGreaterEqual(arrived, exp, "closed %.3f s before exp" % (exp - arrived))
        short.answer_close(1008)
        short.wait_eof(timeout=5)
        # The others stay.
        round_trip(forever)
        round_trip(later)
        self.assertRelays(later, [forever, later], "after")
        self.wait_log(d, lambda l: "user=shorty" in l and "closed code=1008" in l,
                      "the close line of the expired member")


# ---------------------------------------------------------------- key rotation
class RotationTest(AuthCase):

    def test_sighup_adds_a_public_key(self):
        a, b = tokens.ec_pair(), tokens.ec_pair()
        pub = KEYS.write("rotate-pub.pem", a.public_pem)
        d = self.start_auth({"public_key_file": pub, "hmac_secret_file": None})
        ta = a.mint(tokens.claims("anna", ["/rot"]))
        tb = b.mint(tokens.claims("bert", ["/rot"]))
        old = self.admit(d, "/rot", ta)
        self.refuse(d, "/rot", tb, 401, "bad signature")
        KEYS.write("rotate-pub.pem", a.public_pem + b.public_pem)
        self.reload(d)
        self.wait_log(d, lambda l: "configuration reloaded from" in l, "the reload line")
        nb = self.admit(d, "/rot", tb)
        na = self.admit(d, "/rot", ta, via="header")
        self.assertRelays(old, [old, nb, na], "after the rotation")
        # And B alone: A's tokens go.
        KEYS.write("rotate-pub.pem", b.public_pem)
        self.reload(d)
        self.refuse(d, "/rot", ta, 401, "bad signature")
        self.admit(d, "/rot", tb)
        round_trip(old)     # a member stays what it was

    def test_sighup_rereads_the_hmac_secret(self):
        # (HS256 secrets of 32 bytes or more: RFC 7518 §3.2, and wsrelay insists.)
        s1, s2 = "first-" + os.urandom(24).hex(), "second-" + os.urandom(24).hex()
        self._secrets[s2] = "the second HMAC secret"
        f = self.secret_file("rotate.secret", s1)
        d = self.start_auth({"hmac_secret_file": f, "public_key_file": None})
        t1 = KEYS.hs256(tokens.claims("one", ["/h"]), secret=s1)
        t2 = KEYS.hs256(tokens.claims("two", ["/h"]), secret=s2)
        self.admit(d, "/h", t1)
        self.refuse(d, "/h", t2, 401, "bad signature")
        KEYS.write("rotate.secret", s2 + "\nsecond line, ignored\n")
        self.reload(d)
        self.admit(d, "/h", t2)
        self.refuse(d, "/h", t1, 401, "bad signature")

    def test_broken_key_file_on_sighup_keeps_the_previous_keys(self):
        a, b = tokens.ec_pair(), tokens.ed25519_pair()
        pub = KEYS.write("broken-pub.pem", a.public_pem + b.public_pem)
        secret = "kept-" + os.urandom(24).hex()
        sec = self.secret_file("broken.secret", secret)
        d = self.start_auth({"public_key_file": pub, "hmac_secret_file": sec})
        ta = a.mint(tokens.claims("anna", ["/k"]))
        tb = b.mint(tokens.claims("bert", ["/k"]))
        th = KEYS.hs256(tokens.claims("hugo", ["/k"]), secret=secret)
        self.admit(d, "/k", ta)
        KEYS.write("broken-pub.pem", b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n"
                                     b"-----END PUBLIC KEY-----\n")
        self.reload(d)
        line = self.wait_log(d, lambda l: "auth: keeping the previous keys:" in l and pub in l,
                             "the error about %s" % pub)
        self.assertTrue(line.startswith("<3>"), line)
        self.assertTrue(d.alive())
        for t in (ta, tb, th):
            self.admit(d, "/k", t)
        # An unreadable secret file: the same.
        os.unlink(sec)
        self.reload(d)
        self.wait_log(d, lambda l: "auth: keeping the previous keys:" in l and sec in l,
                      "the error about %s" % sec)
        for t in (ta, tb, th):
            self.admit(d, "/k", t)
        # Repaired: read again (A replaced by another P-256 key).
        KEYS.write("broken-pub.pem", b.public_pem + KEYS.other_ec.public_pem)
        KEYS.write("broken.secret", secret + "\n")
        self.reload(d)
        self.refuse(d, "/k", ta, 401, "bad signature")
        self.admit(d, "/k", tb)
        self.admit(d, "/k", th)


# ---------------------------------------------------------------- configuration errors
class ConfigTest(AuthCase):

    def check(self, text):
        path = KEYS.write("check-%d.toml" % len(os.listdir(KEYS.dir)), text)
        return path, harness.run_cli(["--check-config", "--config", path])

    def test_token_rooms_need_a_key(self):
        path, r = self.check('[auth]\ndefault = "token"\n')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, re.escape(path) + r":\d+:\d+: auth\.default: \"token\" rooms "
                         r"need auth\.hmac_secret_file or auth\.public_key_file")
        path, r = self.check('[[room]]\npath = "/x"\nauth = "token"\n')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, re.escape(path) + r":\d+:\d+: room(\[0\])?\.auth: \"token\" "
                         r"rooms need auth\.hmac_secret_file or auth\.public_key_file")

    def test_bad_values(self):
        for text, key in (('[auth]\ndefault = "closed"\n', r"auth\.default"),
                          ('[auth]\nleeway = "soon"\n', r"auth\.leeway"),
                          ('[auth]\nlisten_only_action = "ignore"\n',
                           r"auth\.listen_only_action"),
                          ('[auth]\nexpire_connections = "yes"\n', r"auth\.expire_connections"),
                          ('[[room]]\npath = "/x"\nauth = "maybe"\n', r"room(\[0\])?\.auth"),
                          ('[[listen]]\naddress = "127.0.0.1:0"\napi = 1\n',
                           r"listen(\[0\])?\.api"),
                          ('[api]\nkey_file = 7\n', r"api\.key_file")):
            with self.subTest(text):
                path, r = self.check(text)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertRegex(r.stderr, re.escape(path) + r":\d+:\d+: " + key + ": ")

    def test_broken_key_files_at_start(self):
        secret = "unread-" + os.urandom(8).hex()
        self._secrets[secret] = "the secret of a file the daemon refused"
        bad_pem = KEYS.write("start-bad.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                                               "-----END PUBLIC KEY-----\n" + secret + "\n")
        missing = KEYS.path("no-such.secret")
        for key, path in (("public_key_file", bad_pem), ("hmac_secret_file", missing)):
            with self.subTest(key):
                text = ('[[listen]]\naddress = "127.0.0.1:0"\n\n[auth]\ndefault = "token"\n'
                        '%s = "%s"\n' % (key, path))
                cfg, r = self.check(text)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(path, r.stderr)
                self.assertNotIn(secret, r.stderr)
                try:
                    r = harness.run_cli(["--config", cfg], timeout=20)
                except subprocess.TimeoutExpired:
                    self.fail("wsrelay kept running with a broken %s" % key)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(path, r.stderr)
                self.assertNotIn(secret, r.stderr)

    def test_auth_and_api_accepted(self):
        keyf = KEYS.write("check-api.keys", API_KEY + "\n")
        text = ('[[listen]]\naddress = "127.0.0.1:0"\napi = true\n\n'
                '[auth]\ndefault = "token"\nhmac_secret_file = "%s"\npublic_key_file = "%s"\n'
                'audience = "a"\nissuer = "i"\nleeway = "0s"\nexpire_connections = true\n'
                'listen_only_action = "drop"\n\n[[room]]\npath = "/o"\nauth = "open"\n\n'
                '[api]\nkey_file = "%s"\n' % (KEYS.hmac_file, KEYS.pub_file, keyf))
        _path, r = self.check(text)
        self.assertEqual(r.returncode, 0, r.stderr)


# ---------------------------------------------------------------- the HTTP API
class ApiCase(AuthCase):

    def start_api(self, api=True, extra=None):
        """Two passed sockets: "plain" (/metrics, no API) and "api" (api = true). Rooms are open
        by default; tokens (HMAC) give members a sub. api=True: [api] key_file with API_KEY and
        API_KEY_2 (and a comment and a blank line); api=False: no [api] at all."""
        cfg = {"listen": [{"address": "127.0.0.1:{port}", "name": "plain", "metrics": True},
                          {"address": "127.0.0.1:{port}", "name": "api", "api": True}],
               "auth": {"default": "open", "hmac_secret_file": KEYS.hmac_file}}
        if api:
            self.key_file = KEYS.write("api-%s.keys" % self.id().rsplit(".", 1)[1],
                                       "# backends\n\n%s\n%s\n" % (API_KEY, API_KEY_2))
            cfg["api"] = {"key_file": self.key_file}
        d = test_tls.MultiSocketDaemon(harness.merge(cfg, extra or {}), names=("plain", "api"))
        self._daemons.append(d)
        return d

    def api(self, d, method, path, body=None, key=API_KEY, headers=None, port=None):
        """One request on a new connection (http.client), answer within 10 s. Once a request
        got no answer, later ones to that daemon fail at once (it stopped answering)."""
        if getattr(d, "api_stuck", None):
            self.fail("wsrelay stopped answering at %s" % d.api_stuck)
        conn = http.client.HTTPConnection(d.host, port or d.ports["api"], timeout=10)
        try:
            h = {}
            if key is not None:
                h["Authorization"] = "Bearer " + key
            h.update(headers or {})
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return ApiResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except TimeoutError:
            d.api_stuck = "%s %s (no answer within 10 s)" % (method, path)
            raise self.failureException("%s %s: no answer within 10 s (wsrelay used %.1f s of "
                                        "CPU so far)" % (method, path,
                                                         soak.daemon_cpu_s(d.pid))) from None
        finally:
            conn.close()

    def raw_api(self, d, request, port=None):
        c = self.track(wsclient.WSClient(d.host, port or d.ports["api"], handshake=False))
        c.send_raw(request)
        r = wsclient.read_http_response(c, timeout=10)
        return c, ApiResponse(r.status, r.headers, r.body)

    def post(self, d, room, body, ctype="text/plain", **kw):
        headers = {"Content-Type": ctype} if ctype is not None else {}
        return self.api(d, "POST", "/api/rooms%s/messages" % room, body, headers=headers, **kw)

    def assertJson(self, r, status, body=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type", "").split(";")[0].strip(),
                         "application/json", r)
        got = r.json()
        if body is not None:
            self.assertEqual(got, body, r)
        return got

    def assertError(self, r, status):
        got = self.assertJson(r, status)
        self.assertEqual(list(got), ["error"], r)
        self.assertIsInstance(got["error"], str)
        return got

    def member(self, d, room, sub=None, listener="plain", publish=True):
        token = None if sub is None else KEYS.hs256(tokens.claims(sub, [room], publish=publish))
        return self.admit(d, room, token, port=d.ports[listener])


class ApiTest(ApiCase):

    def test_post_reaches_every_member(self):
        d = self.start_api()
        m1 = self.member(d, "/chat")
        m2 = self.member(d, "/chat", "alice", listener="api")     # WebSocket on the API listener
        m3 = self.member(d, "/chat", "bob", publish=False)         # listen-only members get it too
        members = (m1, m2, m3)
        cases = [("text/plain", "hello from the backend".encode(), OP_TEXT),
                 ("text/plain; charset=utf-8", "héllo ✓ 𝄞".encode(), OP_TEXT),
                 ("application/json", b'{"kind": "notice", "n": 1}', OP_TEXT),
                 ("text/markdown", b"# heading", OP_TEXT),
                 ("application/octet-stream", bytes(range(256)), OP_BINARY),
                 ("image/png", b"\x89PNG\r\n\x1a\n", OP_BINARY),
                 (None, b"no content type", OP_BINARY),
                 ("text/plain", b"", OP_TEXT)]
        for ctype, body, op in cases:
            with self.subTest(ctype=ctype, body=body[:20]):
                r = self.post(d, "/chat", body, ctype)
                self.assertJson(r, 202, {"delivered": 3})
                for c in members:
                    m = c.recv_data(timeout=10)
                    self.assertEqual((m.opcode, m.data), (op, body))
        # A room without members.
        self.assertJson(self.post(d, "/nobody-here", b"x"), 202, {"delivered": 0})
        # The second key of the file works too.
        self.assertJson(self.post(d, "/chat", b"key two", key=API_KEY_2), 202, {"delivered": 3})
        for c in members:
            self.assertEqual(c.recv_data(timeout=10).data, b"key two")

    def test_expect_100_continue(self):
        # curl asks for it for bodies over 1 KiB and waits up to a second for it.
        d = self.start_api()
        m = self.member(d, "/chat")
        body = b"x" * 5000
        c = self.track(wsclient.WSClient(d.host, d.ports["api"], handshake=False))
        c.send_raw(("POST /api/rooms/chat/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: text/plain\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                    % (API_KEY, len(body))).encode())
        interim = wsclient.read_http_response(c, timeout=10)
        self.assertEqual(interim.status, 100, interim)
        c.send_raw(body)
        r = wsclient.read_http_response(c, timeout=10)
        self.assertEqual((r.status, json.loads(r.body)), (202, {"delivered": 1}), r)
        self.assertEqual(m.recv_data(timeout=10).data, body)
        # Refused before the body: the final answer comes at once, without 100.
        c2 = self.track(wsclient.WSClient(d.host, d.ports["api"], handshake=False))
        c2.send_raw(b"POST /api/rooms/chat/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                    b"Expect: 100-continue\r\n\r\n")
        self.assertEqual(wsclient.read_http_response(c2, timeout=10).status, 401)

    def test_head_and_conflicting_lengths(self):
        d = self.start_api()
        # HEAD: the status and headers of the GET, no body; the connection serves the next request.
        c = self.track(wsclient.WSClient(d.host, d.ports["api"], handshake=False))
        auth = "Authorization: Bearer %s\r\n" % API_KEY
        c.send_raw(("HEAD /api/rooms HTTP/1.1\r\nHost: x\r\n%s\r\nGET /api/rooms HTTP/1.1\r\nHost: x\r\n%s\r\n"
                    % (auth, auth)).encode())
        head = wsclient.read_http_response(c, head_request=True, timeout=10)
        self.assertEqual((head.status, head.body), (200, b""), head)
        get = wsclient.read_http_response(c, timeout=10)
        self.assertEqual((get.status, json.loads(get.body)), (200, {"rooms": []}), get)
        self.assertEqual(head.headers["content-length"], str(len(get.body)))
        # Two Content-Length headers that differ (request smuggling): 400, and the connection ends.
        c2 = self.track(wsclient.WSClient(d.host, d.ports["api"], handshake=False))
        c2.send_raw(("POST /api/rooms/chat/messages HTTP/1.1\r\nHost: x\r\n%sContent-Length: 3\r\n"
                     "Content-Length: 30\r\n\r\nabc" % auth).encode())
        r = wsclient.read_http_response(c2, timeout=10)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(json.loads(r.body), {"error": "more than one Content-Length"})

    def test_room_path_mapping(self):
        d = self.start_api()
        ab, a, root = self.member(d, "/a/b"), self.member(d, "/a"), self.member(d, "/")
        self.assertJson(self.post(d, "/a/b", b"for /a/b"), 202, {"delivered": 1})
        self.assertJson(self.api(d, "POST", "/api/rooms//messages", b"for /",
                                 headers={"Content-Type": "text/plain"}), 202, {"delivered": 1})
        self.assertJson(self.post(d, "/a", b"for /a"), 202, {"delivered": 1})
        self.assertJson(self.post(d, "/a/b", b"marker"), 202, {"delivered": 1})
        # Each got its own first: nothing crossed to another room.
        self.assertEqual(a.recv_data(timeout=10).text, "for /a")
        self.assertEqual(root.recv_data(timeout=10).text, "for /")
        self.assertEqual(ab.recv_data(timeout=10).text, "for /a/b")
        self.assertEqual(ab.recv_data(timeout=10).text, "marker")

    def test_presence(self):
        d = self.start_api()
        self.member(d, "/chat", "carol")
        self.member(d, "/chat", "alice", listener="api")
        self.member(d, "/chat")
        self.member(d, "/chat", "bob", publish=False)
        self.member(d, "/a/b", "zed")
        self.member(d, "/zz")
        self.assertJson(self.api(d, "GET", "/api/rooms"), 200, {"rooms": [
            {"path": "/a/b", "members": 1}, {"path": "/chat", "members": 4},
            {"path": "/zz", "members": 1}]})
        self.assertJson(self.api(d, "GET", "/api/rooms/chat"), 200, {
            "path": "/chat", "members": 4, "users": ["alice", "bob", "carol"]})
        self.assertJson(self.api(d, "GET", "/api/rooms/a/b"), 200, {
            "path": "/a/b", "members": 1, "users": ["zed"]})
        self.assertJson(self.api(d, "GET", "/api/rooms/zz"), 200, {
            "path": "/zz", "members": 1, "users": []})
        self.assertJson(self.api(d, "GET", "/api/rooms/empty"), 200, {
            "path": "/empty", "members": 0, "users": []})

    def test_keys(self):
        d = self.start_api()
        for key, hdr in ((None, None), ("wrong-key", None), ("# backends", None), ("", None),
                         (None, "Basic " + API_KEY), (None, API_KEY),
                         (None, "Bearer " + API_KEY + "x"), (None, "Bearer " + API_KEY[:-1])):
            with self.subTest(key=key, header=hdr):
                headers = {"Authorization": hdr} if hdr is not None else {}
                for method, path in (("GET", "/api/rooms"), ("POST", "/api/rooms/x/messages")):
                    r = self.api(d, method, path, b"x" if method == "POST" else None, key=key,
                                 headers=headers)
                    self.assertError(r, 401)
                    self.assertEqual(r.headers.get("www-authenticate"),
                                     'Bearer realm="wsrelay-api"', r)
        self.assertJson(self.api(d, "GET", "/api/rooms"), 200, {"rooms": []})
        self.assertJson(self.api(d, "GET", "/api/rooms", key=API_KEY_2), 200, {"rooms": []})
        # The header read as for tokens (RFC 6750 2.1): the scheme in any case, one or more spaces.
        self.assertJson(self.api(d, "GET", "/api/rooms", key=None,
                                 headers={"Authorization": "bearer   " + API_KEY}), 200, {"rooms": []})

    def test_no_key_file_503(self):
        d = self.start_api(api=False)
        for key in (API_KEY, None):
            for method, path in (("GET", "/api/rooms"), ("POST", "/api/rooms/x/messages"),
                                 ("GET", "/api/rooms/x")):
                with self.subTest(key=key, path=path):
                    self.assertError(self.api(d, method, path, b"x" if method == "POST" else None,
                                              key=key), 503)

    def test_not_on_other_listeners_and_unknown_paths(self):
        d = self.start_api()
        for method, path in (("GET", "/api/rooms"), ("POST", "/api/rooms/x/messages"),
                             ("GET", "/api/rooms/x")):
            with self.subTest(method=method, path=path):
                r = self.api(d, method, path, b"x" if method == "POST" else None,
                             port=d.ports["plain"])
                self.assertEqual(r.status, 404, r)
        for path in ("/api", "/api/", "/api/nope", "/api/room", "/api/roomsx"):
            with self.subTest(path):
                self.assertError(self.api(d, "GET", path), 404)
        # (Not GET /api/rooms/chat/messages: that may be the presence of room /chat/messages.)
        for method, path in (("PUT", "/api/rooms"),
                             ("DELETE", "/api/rooms/chat"), ("POST", "/api/rooms"),
                             ("PUT", "/api/rooms/chat/messages")):
            with self.subTest(method=method, path=path):
                body = b"x" if method in ("POST", "PUT") else None
                self.assertError(self.api(d, method, path, body), 405)
        # The API listener serves everything else too.
        self.assertEqual(self.api(d, "GET", "/healthz", key=None).body, b"ok\n")
        self.assertEqual(self.api(d, "GET", "/", key=None).status, 200)

    def test_bodies(self):
        d = self.start_api(extra={"limits": {"max_message_bytes": 1024}})
        m = self.member(d, "/b")
        auth = "Authorization: Bearer %s\r\n" % API_KEY
        head = ("POST /api/rooms/b/messages HTTP/1.1\r\nHost: x\r\n" + auth +
                "Content-Type: text/plain\r\n")
        # Exactly the limit: relayed.
        self.assertJson(self.post(d, "/b", b"L" * 1024), 202, {"delivered": 1})
        self.assertEqual(m.recv_data(timeout=10).data, b"L" * 1024)
        # Over it: 413 without the body being read, then the connection closes.
        c, r = self.raw_api(d, (head + "Content-Length: 1025\r\n\r\n").encode())
        self.assertError(r, 413)
        try:
            c.wait_eof(timeout=5)
        except wsclient.Timeout:
            self.fail("connection still open after the 413")
        c, r = self.raw_api(d, (head + "Content-Length: 100000000\r\n\r\n").encode())
        self.assertError(r, 413)
        # Invalid UTF-8 in a text body.
        for ctype in ("text/plain", "application/json"):
            with self.subTest(ctype):
                self.assertError(self.post(d, "/b", b"bad \xc3\x28 utf-8", ctype), 400)
        self.assertError(self.post(d, "/b", b"\xed\xa0\x80", "text/plain"), 400)    # surrogate
        # The same bytes as binary are fine.
        self.assertJson(self.post(d, "/b", b"bad \xc3\x28 utf-8", "application/octet-stream"),
                        202, {"delivered": 1})
        mm = m.recv_data(timeout=10)
        self.assertEqual((mm.opcode, mm.data), (OP_BINARY, b"bad \xc3\x28 utf-8"))
        # No Content-Length; chunked.
        c, r = self.raw_api(d, (head + "\r\n").encode())
        self.assertError(r, 411)
        c, r = self.raw_api(d, (head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                            .encode())
        self.assertError(r, 411)
        # None of the refused bodies reached the member.
        self.assertJson(self.post(d, "/b", b"marker"), 202, {"delivered": 1})
        self.assertEqual(m.recv_data(timeout=10).data, b"marker")
        # A body sent in pieces.
        c = self.track(wsclient.WSClient(d.host, d.ports["api"], handshake=False))
        c.send_raw((head + "Content-Length: 10\r\n\r\n01234").encode())
        harness.wait_for(lambda: harness.tcp_queues(c), 30, "wsrelay to read the first half "
                         "(TCP queues (unacked, unread))", until=lambda q: q == (0, 0))
        c.send_raw(b"56789")
        r = wsclient.read_http_response(c, timeout=10)
        self.assertJson(ApiResponse(r.status, r.headers, r.body), 202, {"delivered": 1})
        self.assertEqual(m.recv_data(timeout=10).data, b"0123456789")

    def test_api_metrics(self):
        d = self.start_api()
        self.member(d, "/m")
        m0 = self.metrics(d, d.ports["plain"])
        for _ in range(3):
            self.assertJson(self.post(d, "/m", b"x"), 202)
        self.assertError(self.api(d, "GET", "/api/rooms", key="nope"), 401)
        self.assertJson(self.api(d, "GET", "/api/rooms"), 200)
        m1 = self.metrics(d, d.ports["plain"])
        self.assertEqual(m1.types.get("wsrelay_api_requests_total"), "counter")

        def delta(status):
            k = ("wsrelay_api_requests_total", "status", status)
            before = m0.samples.get((k[0], frozenset({k[1]: k[2]}.items())), 0)
            return m1[k] - before

        self.assertEqual((delta("202"), delta("401"), delta("200")), (3, 1, 1))

    def test_sighup_rereads_the_key_file(self):
        d = self.start_api()
        self.assertJson(self.api(d, "GET", "/api/rooms"), 200)
        new_key = "api-key-three-" + os.urandom(6).hex()
        self._secrets[new_key] = "an API key"
        KEYS.write(os.path.basename(self.key_file), new_key + "\n")
        self.reload(d)
        self.assertError(self.api(d, "GET", "/api/rooms"), 401)
        self.assertJson(self.api(d, "GET", "/api/rooms", key=new_key), 200)
        # Unreadable: the previous keys stay.
        os.unlink(self.key_file)
        self.reload(d)
        line = self.wait_log(d, lambda l: "api: keeping the previous keys:" in l and
                             self.key_file in l, "the error about the API key file")
        self.assertTrue(line.startswith("<3>"), line)
        self.assertJson(self.api(d, "GET", "/api/rooms", key=new_key), 200)
        self.assertError(self.api(d, "GET", "/api/rooms"), 401)


class ApiClusterTest(ApiCase):

    def instance(self, redis, node):
        cfg = {"listen": [{"address": "127.0.0.1:{port}", "api": True, "metrics": True}],
               "cluster": {"redis": redis.url, "node_id": node},
               "auth": {"default": "open", "hmac_secret_file": KEYS.hmac_file},
               "api": {"key_file": KEYS.write("cluster.keys", API_KEY + "\n")}}
        d = self.start(cfg)
        d.ports = {"api": d.port, "plain": d.port}
        return d

    def wait_metric(self, d, name, value):
        harness.wait_for(lambda: self.metrics(d)[name], 30, "%s to be %r" % (name, value),
                         until=lambda v: v == value)

    def test_post_on_one_instance_reaches_members_on_the_other(self):
        r = RedisServer()
        self._redis.append(r)
        a, b = self.instance(r, "A"), self.instance(r, "B")
        for d in (a, b):
            self.wait_metric(d, "wsrelay_cluster_link_up", 1)
        a1 = self.member(a, "/x", "ann")
        b1, b2 = self.member(b, "/x", "ben"), self.member(b, "/x")
        for d in (a, b):
            self.wait_metric(d, "wsrelay_cluster_subscribed_rooms", 1)
        self.assertJson(self.post(a, "/x", "from A's API".encode()), 202, {"delivered": 1})
        for c in (a1, b1, b2):
            m = c.recv_data(timeout=10)
            self.assertEqual((m.opcode, m.data), (OP_TEXT, b"from A's API"))
        self.assertJson(self.post(b, "/x", b"\x00bin", "application/octet-stream"), 202,
                        {"delivered": 2})
        for c in (a1, b1, b2):
            m = c.recv_data(timeout=10)
            self.assertEqual((m.opcode, m.data), (OP_BINARY, b"\x00bin"))
        # Presence is this instance's.
        self.assertJson(self.api(a, "GET", "/api/rooms/x"), 200,
                        {"path": "/x", "members": 1, "users": ["ann"]})
        self.assertJson(self.api(b, "GET", "/api/rooms"), 200,
                        {"rooms": [{"path": "/x", "members": 2}]})
        # Nothing doubled: a member's message after the API's arrives next everywhere.
        self.assertRelays(b2, [a1, b1, b2], "marker")


if __name__ == "__main__":
    unittest.main()
