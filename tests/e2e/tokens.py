# SPDX-License-Identifier: Apache-2.0
"""Signed tokens (JWT, RFC 7519, JWS compact form) for the end-to-end tests of [auth].

Keys are made per run in a temporary directory: an HS256 secret (the first line of a file, as
[auth] hmac_secret_file reads it), and RSA, P-256 and Ed25519 key pairs whose public halves go
into PEM files for [auth] public_key_file. Tokens are minted with Debian's python3-jwt (PyJWT);
what PyJWT refuses to make (alg "none", an HS256 token keyed with a public key PEM) is put
together by hand, and openssl_hs256() / openssl_eddsa() sign with the openssl command instead,
so that the daemon is also checked against a signer that is not PyJWT.

Everything here is deterministic except the keys and secrets themselves; nothing touches the
network."""

import base64
import binascii
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def now():
    return int(time.time())


def signing_input(claims, header):
    return ("%s.%s" % (b64url_json(header), b64url_json(claims))).encode("ascii")


def hs256_by_hand(claims, secret, header=None):
    """HS256 with the standard library's hmac: PyJWT refuses a PEM public key as an HMAC
    secret (rightly), and the alg-confusion attack needs exactly that token."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    si = signing_input(claims, header)
    mac = hmac.new(secret if isinstance(secret, bytes) else secret.encode(), si, hashlib.sha256)
    return si.decode("ascii") + "." + b64url(mac.digest())


def alg_none(claims):
    """An unsecured JWS (RFC 7515 appendix A.5): alg "none", empty signature."""
    return signing_input(claims, {"alg": "none", "typ": "JWT"}).decode("ascii") + "."


def resign_garbage(token):
    """The same header and claims with a signature of the right length that is not the right
    one (its first byte flipped)."""
    head, _, sig = token.rpartition(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    return head + "." + b64url(bytes([raw[0] ^ 0x01]) + raw[1:])


def _run(cmd, data=None):
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode,
                                                  r.stderr.decode(errors="replace")))
    return r.stdout


class KeyPair:
    """A private key (for minting) and its public PEM (for the daemon). alg: the JWS alg."""

    def __init__(self, alg, private_key, public_pem, private_pem_path=None):
        self.alg, self.private_key, self.public_pem = alg, private_key, public_pem
        self.private_pem_path = private_pem_path

    def mint(self, claims, headers=None):
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=headers)


def _public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def rsa_pair():
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair("RS256", k, _public_pem(k))


def ec_pair():
    k = ec.generate_private_key(ec.SECP256R1())
    return KeyPair("ES256", k, _public_pem(k))


def ed25519_pair():
    k = ed25519.Ed25519PrivateKey.generate()
    return KeyPair("EdDSA", k, _public_pem(k))


def openssl_ed25519_pair(directory, name):
    """An Ed25519 key pair made by `openssl genpkey` (private PEM in `directory`), its public
    PEM by `openssl pkey -pubout`; PyJWT can load the private PEM too."""
    priv = os.path.join(directory, name + ".key")
    _run([OPENSSL, "genpkey", "-algorithm", "ED25519", "-out", priv])
    pub = _run([OPENSSL, "pkey", "-in", priv, "-pubout"])
    with open(priv, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return KeyPair("EdDSA", key, pub, priv)


def openssl_hs256(claims, secret):
    """HS256 signed by `openssl dgst -sha256 -mac HMAC -macopt hexkey:...` (the secret given
    as hex, so any byte is fine)."""
    si = signing_input(claims, {"alg": "HS256", "typ": "JWT"})
    secret = secret if isinstance(secret, bytes) else secret.encode()
    mac = _run([OPENSSL, "dgst", "-sha256", "-mac", "HMAC", "-macopt",
                "hexkey:" + binascii.hexlify(secret).decode(), "-binary"], si)
    if len(mac) != 32:
        raise RuntimeError("openssl dgst gave %d bytes, not an HMAC-SHA256" % len(mac))
    return si.decode("ascii") + "." + b64url(mac)


def openssl_eddsa(claims, private_pem_path):
    """EdDSA (Ed25519) signed by `openssl pkeyutl -sign -rawin`: Ed25519 signs the message
    itself (no pre-hash), and the 64-byte signature is already the JWS form. (A one-shot
    signature needs its input's size: a file, not a pipe.)"""
    si = signing_input(claims, {"alg": "EdDSA", "typ": "JWT"})
    fd, data = tempfile.mkstemp(prefix="jws-", dir=os.path.dirname(private_pem_path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(si)
        sig = _run([OPENSSL, "pkeyutl", "-sign", "-rawin", "-inkey", private_pem_path,
                    "-in", data])
    finally:
        os.unlink(data)
    if len(sig) != 64:
        raise RuntimeError("openssl pkeyutl gave %d bytes, not an Ed25519 signature" % len(sig))
    return si.decode("ascii") + "." + b64url(sig)


class Keys:
    """Every key a test run needs, in one temporary directory (remove() deletes it).

    hmac_secret / hmac_file: the HS256 secret and the file holding it (its first line);
    rsa, ec, ed: pairs whose public PEMs are all in pub_file; ed_openssl: an Ed25519 pair made
    by the openssl command (not in pub_file; tests add it where they need it);
    other_rsa / other_ec: pairs the daemon never knows (bad signatures)."""

    def __init__(self, directory=None):
        self.dir = directory or tempfile.mkdtemp(prefix="wsrelay-keys-")
        # A printable secret: the daemon reads the first line of the file.
        self.hmac_secret = "hs256-" + binascii.hexlify(os.urandom(24)).decode()
        self.hmac_file = self.write("hmac.secret", self.hmac_secret + "\n")
        self.rsa, self.ec, self.ed = rsa_pair(), ec_pair(), ed25519_pair()
        self.other_rsa, self.other_ec = rsa_pair(), ec_pair()
        self.ed_openssl = openssl_ed25519_pair(self.dir, "ed-openssl")
        self.pub_file = self.write("public.pem", self.rsa.public_pem + self.ec.public_pem +
                                   self.ed.public_pem)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, content):
        """Write (replace) a file in the key directory, atomically: a daemon reading it on
        SIGHUP sees the old or the new content, never half of it."""
        p = self.path(name)
        tmp = p + ".tmp"
        with open(tmp, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
        os.replace(tmp, p)
        return p

    def hs256(self, claims, secret=None, headers=None):
        return jwt.encode(claims, secret if secret is not None else self.hmac_secret,
                          algorithm="HS256", headers=headers)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def claims(sub="alice", rooms=("/private",), ttl=3600, **extra):
    """Typical claims: sub, rooms, exp `ttl` seconds ahead (ttl=None: no exp), plus `extra`
    (a value None removes the claim)."""
    c = {"sub": sub, "rooms": list(rooms), "iat": now()}
    if ttl is not None:
        c["exp"] = now() + ttl
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def self_check():
    """Each way of minting verifies with PyJWT (or, for the hand-made hostile ones, has the
    shape it should): run as `python3 tokens.py`."""
    keys = Keys()
    try:
        c = claims()
        for t, key, alg in ((keys.hs256(c), keys.hmac_secret, "HS256"),
                            (openssl_hs256(c, keys.hmac_secret), keys.hmac_secret, "HS256"),
                            (keys.rsa.mint(c), keys.rsa.public_pem, "RS256"),
                            (keys.ec.mint(c), keys.ec.public_pem, "ES256"),
                            (keys.ed.mint(c), keys.ed.public_pem, "EdDSA"),
                            (keys.ed_openssl.mint(c), keys.ed_openssl.public_pem, "EdDSA"),
                            (openssl_eddsa(c, keys.ed_openssl.private_pem_path),
                             keys.ed_openssl.public_pem, "EdDSA")):
            got = jwt.decode(t, key, algorithms=[alg], options={"verify_aud": False})
            assert got == c, (alg, got)
        # Same header and claims, same bytes: openssl's HMAC is the standard library's.
        assert openssl_hs256(c, keys.hmac_secret) == hs256_by_hand(c, keys.hmac_secret)
        forged = resign_garbage(keys.hs256(c))
        try:
            jwt.decode(forged, keys.hmac_secret, algorithms=["HS256"])
            raise AssertionError("forged token verified")
        except jwt.InvalidSignatureError:
            pass
        confused = hs256_by_hand(c, keys.rsa.public_pem)
        try:
            jwt.decode(confused, keys.rsa.public_pem, algorithms=["RS256"])
            raise AssertionError("alg confusion token verified as RS256")
        except jwt.InvalidAlgorithmError:
            pass
        none = alg_none(c)
        assert none.endswith(".") and none.count(".") == 2
        assert jwt.get_unverified_header(none)["alg"] == "none"
        print("tokens.py: every way of minting checks out (keys in %s)" % keys.dir)
    finally:
        keys.remove()


if __name__ == "__main__":
    self_check()
