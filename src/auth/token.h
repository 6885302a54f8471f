// SPDX-License-Identifier: Apache-2.0
// Access tokens: JWTs (RFC 7519) in the JWS compact serialization (RFC 7515), verified against the
// keys of the [auth] section. Pure like proto/: bytes in, a verdict out; no sockets, no logging,
// and no clock (the caller passes the time). load_keys() is the only function that touches files.
//
// Who calls it: the connection asks verify() once per handshake that carries a token, then asks
// room_allowed() with the room path; the verdict's error goes into the log and into
// WWW-Authenticate as describe()'s fixed text, never the token's own bytes.
//
// The rules are deliberately narrow, because every option a verifier honours is an option an
// attacker can pick: four algorithms, each bound to one kind of key (an HS256 token is never
// checked with public-key bytes as the secret, the classic "alg confusion"); "none" and every
// other algorithm refused; "crit" refused (we implement no extension, RFC 7515 §4.1.11); strict
// base64url; duplicate JSON member names refused (RFC 7515 §5.2 allows refusing them, and two
// parsers taking different copies of "exp" is how such tokens get through); the signature checked
// before any claim is believed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY, kept out of this header

namespace wsrelay::auth {

enum class Alg : uint8_t { HS256, RS256, ES256, EdDSA };

// The JWS "alg" name of `alg` ("HS256", "RS256", "ES256", "EdDSA").
std::string_view alg_name(Alg alg) noexcept;

// The keys that verify tokens ([auth] hmac_secret_file / public_key_file). Move-only; owns the
// EVP_PKEYs and wipes the secret's bytes when it lets go of them. Built once at startup or reload,
// then only read (verify() takes it by const reference).
class KeySet {
public:
    KeySet();
    ~KeySet();
    KeySet(KeySet&&) noexcept;
    KeySet& operator=(KeySet&&) noexcept;
    KeySet(const KeySet&) = delete;
    KeySet& operator=(const KeySet&) = delete;

    bool empty() const noexcept { return !has_hmac_secret() && keys_.empty(); }

    // Raw bytes of the HS256 secret. An empty secret is no secret: HMAC with an empty key would
    // let anyone mint tokens, so HS256 tokens then get NoKey.
    void set_hmac_secret(std::string secret);

    // Every PEM public key in `pem` ("-----BEGIN PUBLIC KEY-----" SPKI blocks; several = rotation:
    // any of them may verify). RSA (>= 2048 bits), EC P-256 and Ed25519 are accepted; anything
    // else (another curve, a private key, a certificate, no key at all) is an error saying which
    // key (1st, 2nd...) and why, and then nothing from `pem` is added. Text outside the blocks is
    // ignored.
    bool add_public_keys_pem(std::string_view pem, std::string& error);

    size_t public_key_count() const noexcept { return keys_.size(); }
    bool has_hmac_secret() const noexcept { return !hmac_secret_.empty(); }

    struct PkeyFree {
        void operator()(evp_pkey_st* p) const noexcept;
    };
    struct PublicKey {
        Alg alg;  // the one algorithm this key verifies: RS256, ES256 or EdDSA
        std::unique_ptr<evp_pkey_st, PkeyFree> pkey;
    };

private:
    void wipe_secret() noexcept;

    std::string hmac_secret_;
    std::vector<PublicKey> keys_;

    friend struct KeyAccess;  // token.cpp reads the keys; nothing else needs to
};

// Reads [auth]'s files: the HS256 secret is the first line of hmac_secret_file (without the line
// end; an empty first line or an unreadable file is an error); public_key_file is PEM as in
// add_public_keys_pem(). An empty path is skipped. `error` is "<path>: <what is wrong>" and never
// contains the secret. On error `out` is left as it was.
// The shortest HS256 secret load_keys() accepts (RFC 7518 §3.2: at least the hash size).
constexpr size_t kMinHmacSecretBytes = 32;

bool load_keys(const std::string& hmac_secret_file, const std::string& public_key_file, KeySet& out,
               std::string& error);

// What a verified token grants.
struct Claims {
    std::string sub;                  // "" when absent
    std::optional<int64_t> exp, nbf;  // NumericDate, seconds (a fractional value is floored)
    std::vector<std::string> rooms;   // the "rooms" claim (absent: none)
    bool publish = true;              // the "publish" claim (default true)
};

struct VerifyOptions {
    std::string_view audience;  // non-empty: "aud" (string or array of strings) must contain it
    std::string_view issuer;    // non-empty: "iss" must equal it
    int64_t leeway_s = 30;      // clock skew allowed for exp / nbf
    int64_t now_s = 0;          // the current time, seconds since the epoch (the caller passes it)
};

enum class Error : uint8_t {
    None,
    Malformed,
    TooLarge,
    UnsupportedAlg,
    NoKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongIssuer,
    BadClaims
};

// Short, fixed texts for logs and the WWW-Authenticate error_description, never containing token
// bytes: "malformed token", "token too large", ... ("ok" for None).
std::string_view describe(Error e) noexcept;

constexpr size_t kMaxTokenBytes = 8192;  // longer: TooLarge, before any decoding

struct Verdict {
    Error error = Error::None;
    Alg alg = Alg::HS256;
    Claims claims;  // filled only when ok()
    bool ok() const noexcept { return error == Error::None; }
};

// The whole check: form, header, signature, then the claims against `options`. Never throws.
Verdict verify(std::string_view token, const KeySet& keys, const VerifyOptions& options);

// The signature check alone (for test vectors whose payload is not a JSON claims set): on success
// the decoded payload bytes go to `payload`, and the algorithm to `*alg` when given.
Error verify_signature(std::string_view token, const KeySet& keys, std::string& payload, Alg* alg = nullptr);

// The "rooms" claim against a room path: an entry equal to the path allows it; an entry ending in
// "/*" allows every path strictly below its prefix ("/team/*" allows "/team/a" and "/team/a/b", not
// "/team" nor "/teams/x"); "/*" allows every room. No entries: no room.
bool room_allowed(const Claims& claims, std::string_view room) noexcept;

// Strict base64url (RFC 4648 §5) as JWS uses it (RFC 7515 §2): the URL alphabet only, no '='
// padding, no whitespace, and the unused low bits of the last character zero, so every byte string
// has exactly one encoding. Appends to `out`; false (and `out` unspecified) on anything else.
bool base64url_decode(std::string_view in, std::string& out);

}  // namespace wsrelay::auth
