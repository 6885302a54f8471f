// SPDX-License-Identifier: Apache-2.0
// auth/: JWT verification. The RFC 7515 and RFC 8037 examples, then every refusal with tokens this
// file mints itself (HMAC and keys from OpenSSL), then the key files and the rooms claim.
#include <catch2/catch.hpp>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "auth/mint.h"
#include "auth/rfc_vectors.h"
#include "auth/token.h"

using namespace wsrelay::auth;
using namespace wsrelay::auth::rfc;
using wsrelay::test::b64url;
using wsrelay::test::hmac_sha256;
using wsrelay::test::hs256;

namespace {

// --- Minting tokens ---

std::string decoded(std::string_view b64) {
    std::string out;
    REQUIRE(base64url_decode(b64, out));
    return out;
}


using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

// A key pair made for the test run, with what a token signed by it needs.
struct TestKey {
    PkeyPtr pkey{nullptr, &EVP_PKEY_free};
    Alg alg;

    std::string public_pem() const {
        std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
        REQUIRE(PEM_write_bio_PUBKEY(bio.get(), pkey.get()) == 1);
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio.get(), &data);
        return {data, static_cast<size_t>(n)};
    }
    std::string private_pem() const {
        std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
        REQUIRE(PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio.get(), &data);
        return {data, static_cast<size_t>(n)};
    }
    // The JWS signature of `input`: PKCS#1 v1.5, Ed25519, or ECDSA as raw R||S (RFC 7518 §3.4).
    std::string signature(std::string_view input) const {
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
        REQUIRE(EVP_DigestSignInit(ctx.get(), nullptr, alg == Alg::EdDSA ? nullptr : EVP_sha256(), nullptr, pkey.get()) == 1);
        const auto* in = reinterpret_cast<const unsigned char*>(input.data());
        size_t len = 0;
        REQUIRE(EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()) == 1);
        std::string sig(len, '\0');
        REQUIRE(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, input.size()) == 1);
        sig.resize(len);
        if (alg != Alg::ES256) return sig;
        const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
        std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> der(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)), &ECDSA_SIG_free);
        REQUIRE(der);
        std::string raw(64, '\0');
        BN_bn2binpad(ECDSA_SIG_get0_r(der.get()), reinterpret_cast<unsigned char*>(raw.data()), 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(der.get()), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
        return raw;
    }
    std::string token(std::string_view payload, std::string_view header = {}) const {
        const std::string h = header.empty() ? R"({"alg":")" + std::string(alg_name(alg)) + R"("})" : std::string(header);
        const std::string input = b64url(h) + "." + b64url(payload);
        return input + "." + b64url(signature(input));
    }
};

TestKey make_key(const char* type, Alg alg, const char* param = nullptr, size_t bits = 0) {
    TestKey k;
    k.alg = alg;
    if (bits) k.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, type, bits));
    else if (param) k.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, type, param));
    else k.pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
    REQUIRE(k.pkey);
    return k;
}

// Generated once: RSA key generation takes a while.
struct Keys {
    TestKey rsa = make_key("RSA", Alg::RS256, nullptr, 2048);
    TestKey rsa2 = make_key("RSA", Alg::RS256, nullptr, 2048);
    TestKey ec = make_key("EC", Alg::ES256, "P-256");
    TestKey ed = make_key("ED25519", Alg::EdDSA);
};
const Keys& keys() {
    static const Keys k;
    return k;
}

constexpr std::string_view kSecret = "a test secret of thirty-two bytes!";

KeySet all_keys() {
    KeySet ks;
    ks.set_hmac_secret(std::string(kSecret));
    std::string error;
    const std::string pem = keys().rsa.public_pem() + keys().ec.public_pem() + keys().ed.public_pem();
    REQUIRE(ks.add_public_keys_pem(pem, error));
    return ks;
}

KeySet pem_keys(std::string_view pem) {
    KeySet ks;
    std::string error;
    INFO(error);
    REQUIRE(ks.add_public_keys_pem(pem, error));
    return ks;
}

VerifyOptions at(int64_t now_s) {
    VerifyOptions o;
    o.now_s = now_s;
    return o;
}

Error verify_hs(std::string_view payload, const VerifyOptions& options = at(1000)) {
    KeySet ks;
    ks.set_hmac_secret(std::string(kSecret));
    return verify(hs256(payload, kSecret), ks, options).error;
}

// The token with its segment `index` (0 header, 1 payload, 2 signature) replaced.
std::string with_segment(std::string_view token, size_t index, std::string_view replacement) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t dot; (dot = token.find('.', start)) != std::string_view::npos; start = dot + 1)
        parts.emplace_back(token.substr(start, dot - start));
    parts.emplace_back(token.substr(start));
    parts.at(index) = replacement;
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? "." : "") + parts[i];
    return out;
}

std::string segment(std::string_view token, size_t index) {
    size_t start = 0;
    for (size_t i = 0; i < index; ++i) start = token.find('.', start) + 1;
    return std::string(token.substr(start, token.find('.', start) - start));
}

// A scratch directory for key files, removed with everything in it.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "wsrelay-auth-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()));
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string file(const std::string& name, std::string_view content) const {
        const auto p = path / name;
        std::ofstream(p, std::ios::binary) << content;
        return p.string();
    }
};

}  // namespace

// --- RFC examples ---

TEST_CASE("auth: RFC 7515 A.1 (HS256) verifies until its exp, with no sub", "[auth]") {
    KeySet ks;
    ks.set_hmac_secret(decoded(kA1Key));
    const Verdict v = verify(kA1Token, ks, at(kA1Exp - 3600));
    REQUIRE(v.error == Error::None);
    CHECK(v.alg == Alg::HS256);
    CHECK(v.claims.sub.empty());
    CHECK(v.claims.exp == kA1Exp);
    CHECK_FALSE(v.claims.nbf);
    CHECK(v.claims.rooms.empty());
    CHECK(v.claims.publish);
    CHECK(verify(kA1Token, ks, at(kA1Exp + 3600)).error == Error::Expired);
    // The issuer it names is "joe".
    VerifyOptions o = at(kA1Exp - 3600);
    o.issuer = "joe";
    CHECK(verify(kA1Token, ks, o).ok());
    o.issuer = "jim";
    CHECK(verify(kA1Token, ks, o).error == Error::WrongIssuer);
}

TEST_CASE("auth: RFC 7515 A.2 (RS256) and A.3 (ES256) verify with their public keys", "[auth]") {
    const KeySet rsa = pem_keys(kA2Pem);
    Verdict v = verify(kA2Token, rsa, at(kA1Exp - 1));
    CHECK(v.error == Error::None);
    CHECK(v.alg == Alg::RS256);
    CHECK(verify(kA2Token, rsa, at(kA1Exp + 30)).error == Error::Expired);

    const KeySet ec = pem_keys(kA3Pem);
    v = verify(kA3Token, ec, at(kA1Exp - 1));
    CHECK(v.error == Error::None);
    CHECK(v.alg == Alg::ES256);
    // Each verifies with its own kind of key only.
    CHECK(verify(kA2Token, ec, at(kA1Exp - 1)).error == Error::NoKey);
    CHECK(verify(kA3Token, rsa, at(kA1Exp - 1)).error == Error::NoKey);
}

TEST_CASE("auth: RFC 7515 A.4 (ES512) is an unsupported algorithm", "[auth]") {
    KeySet ks = all_keys();
    CHECK(verify(kA4Token, ks, at(0)).error == Error::UnsupportedAlg);
    std::string payload;
    CHECK(verify_signature(kA4Token, ks, payload) == Error::UnsupportedAlg);
}

TEST_CASE("auth: RFC 8037 A.4 (Ed25519): the signature verifies, the payload is no claims set", "[auth]") {
    const KeySet ks = pem_keys(kEd25519Pem);
    std::string payload;
    Alg alg = Alg::HS256;
    CHECK(verify_signature(kEd25519Token, ks, payload, &alg) == Error::None);
    CHECK(payload == "Example of Ed25519 signing");
    CHECK(alg == Alg::EdDSA);
    const Verdict v = verify(kEd25519Token, ks, at(0));
    CHECK((v.error == Error::Malformed || v.error == Error::BadClaims));
    // One bit off in the signature and it fails.
    const std::string sig = segment(kEd25519Token, 2);
    std::string bad = sig;
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    CHECK(verify_signature(with_segment(kEd25519Token, 2, bad), ks, payload) == Error::BadSignature);
    CHECK(payload.empty());
}

// --- Generated keys ---

TEST_CASE("auth: tokens signed with each algorithm verify and carry their claims", "[auth]") {
    const KeySet ks = all_keys();
    const std::string claims = R"({"sub":"ann","exp":2000,"nbf":900.9,"rooms":["/a","/b/*"],"publish":false})";
    for (const TestKey* k : {&keys().rsa, &keys().ec, &keys().ed}) {
        INFO(alg_name(k->alg));
        const Verdict v = verify(k->token(claims), ks, at(1000));
        REQUIRE(v.error == Error::None);
        CHECK(v.alg == k->alg);
        CHECK(v.claims.sub == "ann");
        CHECK(v.claims.exp == 2000);
        CHECK(v.claims.nbf == 900);  // floored
        CHECK(v.claims.rooms == std::vector<std::string>{"/a", "/b/*"});
        CHECK_FALSE(v.claims.publish);
    }
    const Verdict v = verify(hs256(claims, kSecret), ks, at(1000));
    CHECK(v.ok());
    CHECK(v.claims.sub == "ann");
}

TEST_CASE("auth: alg none and algorithms other than the four are refused", "[auth]") {
    const KeySet ks = all_keys();
    const std::string payload = b64url(R"({"sub":"ann"})");
    for (const char* alg : {"none", "None", "NONE", "nOnE", "HS384", "HS512", "RS384", "PS256", "ES384", "ES512", "EdDSA2",
                            "hs256", "Ed25519", ""}) {
        INFO(alg);
        const std::string header = b64url(std::string(R"({"alg":")") + alg + R"("})");
        CHECK(verify(header + "." + payload + ".", ks, at(0)).error == Error::UnsupportedAlg);
        // Even with a signature that is a valid HS256 one.
        const std::string input = header + "." + payload;
        CHECK(verify(input + "." + b64url(hmac_sha256(kSecret, input)), ks, at(0)).error == Error::UnsupportedAlg);
    }
    // RFC 7515 A.5's unsecured JWS.
    CHECK(verify("eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.",
                 ks, at(0)).error == Error::UnsupportedAlg);
}

TEST_CASE("auth: header rules: alg a string, typ a string, no crit", "[auth]") {
    const KeySet ks = all_keys();
    const auto check = [&](std::string_view header, Error expected) {
        INFO(header);
        CHECK(verify(hs256(R"({"sub":"x"})", kSecret, header), ks, at(0)).error == expected);
    };
    check(R"({"alg":"HS256"})", Error::None);
    check(R"({"alg":"HS256","typ":"JWT","kid":"k1","cty":"x"})", Error::None);
    check(R"({"typ":"JWT"})", Error::Malformed);
    check(R"({"alg":["HS256"]})", Error::Malformed);
    check(R"({"alg":null})", Error::Malformed);
    check(R"({"alg":"HS256","typ":1})", Error::Malformed);
    check(R"({"alg":"HS256","crit":["exp"],"exp":5})", Error::UnsupportedAlg);
    check(R"({"alg":"HS256","b64":false,"crit":["b64"]})", Error::UnsupportedAlg);
    check(R"(["alg","HS256"])", Error::Malformed);
    check(R"("HS256")", Error::Malformed);
    check(R"({"alg":"HS256"} x)", Error::Malformed);
    check("", Error::Malformed);
    // RFC 7515 §5.2: duplicate names refused, not resolved either way.
    check(R"({"alg":"none","alg":"HS256"})", Error::Malformed);
    check(R"({"alg":"HS256","alg":"HS256"})", Error::Malformed);
    // Only the top level counts: a nested object is not ours to judge.
    check(R"({"alg":"HS256","x":{"a":1,"a":2}})", Error::None);
}

TEST_CASE("auth: alg confusion: HS256 never verifies with public-key bytes as the secret", "[auth]") {
    const std::string pem = keys().rsa.public_pem();
    const std::string forged = hs256(R"({"sub":"mallory","rooms":["/*"]})", pem, R"({"alg":"HS256"})");
    SECTION("only the public key configured") {
        const KeySet ks = pem_keys(pem);
        CHECK(verify(forged, ks, at(0)).error == Error::NoKey);
        // The same with the A.2 key and its PEM text.
        const KeySet a2 = pem_keys(kA2Pem);
        CHECK(verify(hs256(R"({"sub":"m"})", kA2Pem, R"({"alg":"HS256"})"), a2, at(0)).error == Error::NoKey);
    }
    SECTION("a secret and the public key configured") {
        const KeySet ks = all_keys();
        CHECK(verify(forged, ks, at(0)).error == Error::BadSignature);
    }
    SECTION("the other way: an RS256 header over an HMAC of the secret") {
        const KeySet ks = all_keys();
        const std::string input = b64url(R"({"alg":"RS256"})") + "." + b64url(R"({"sub":"m"})");
        CHECK(verify(input + "." + b64url(hmac_sha256(kSecret, input)), ks, at(0)).error == Error::BadSignature);
    }
}

TEST_CASE("auth: each algorithm needs its own kind of key", "[auth]") {
    const std::string claims = R"({"sub":"x"})";
    const KeySet rsa_only = pem_keys(keys().rsa.public_pem());
    const KeySet ec_only = pem_keys(keys().ec.public_pem());
    const KeySet ed_only = pem_keys(keys().ed.public_pem());
    KeySet secret_only;
    secret_only.set_hmac_secret(std::string(kSecret));
    CHECK(verify(keys().rsa.token(claims), ec_only, at(0)).error == Error::NoKey);
    CHECK(verify(keys().ec.token(claims), ed_only, at(0)).error == Error::NoKey);
    CHECK(verify(keys().ed.token(claims), rsa_only, at(0)).error == Error::NoKey);
    CHECK(verify(keys().rsa.token(claims), secret_only, at(0)).error == Error::NoKey);
    CHECK(verify(hs256(claims, kSecret), rsa_only, at(0)).error == Error::NoKey);
    CHECK(verify(hs256(claims, kSecret), KeySet{}, at(0)).error == Error::NoKey);
    // A signature by one key under another algorithm's name.
    const KeySet ks = all_keys();
    CHECK(verify(keys().rsa.token(claims, R"({"alg":"ES256"})"), ks, at(0)).error == Error::BadSignature);
    CHECK(verify(keys().ed.token(claims, R"({"alg":"ES256"})"), ks, at(0)).error == Error::BadSignature);
    CHECK(verify(keys().ec.token(claims, R"({"alg":"EdDSA"})"), ks, at(0)).error == Error::BadSignature);
    CHECK(verify(keys().ed.token(claims, R"({"alg":"RS256"})"), ks, at(0)).error == Error::BadSignature);
    // An empty secret is no secret.
    KeySet empty_secret;
    empty_secret.set_hmac_secret("");
    CHECK(empty_secret.empty());
    CHECK(verify(hs256(claims, ""), empty_secret, at(0)).error == Error::NoKey);
}

TEST_CASE("auth: ES256 signatures are 64 raw bytes, not DER", "[auth]") {
    const KeySet ks = all_keys();
    const std::string input = b64url(R"({"alg":"ES256"})") + "." + b64url(R"({"sub":"x"})");
    const std::string raw = keys().ec.signature(input);
    CHECK(verify(input + "." + b64url(raw), ks, at(0)).ok());
    // The same signature in DER, as OpenSSL makes it.
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), &ECDSA_SIG_free);
    ECDSA_SIG_set0(sig.get(), BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                   BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
    unsigned char* der = nullptr;
    const int der_len = i2d_ECDSA_SIG(sig.get(), &der);
    REQUIRE(der_len > 0);
    const std::string der_sig(reinterpret_cast<const char*>(der), static_cast<size_t>(der_len));
    OPENSSL_free(der);
    CHECK(verify(input + "." + b64url(der_sig), ks, at(0)).error == Error::BadSignature);
    CHECK(verify(input + "." + b64url(raw.substr(0, 63)), ks, at(0)).error == Error::BadSignature);
    CHECK(verify(input + "." + b64url(raw + '\0'), ks, at(0)).error == Error::BadSignature);
    CHECK(verify(input + "." + b64url(std::string(64, '\0')), ks, at(0)).error == Error::BadSignature);
}

TEST_CASE("auth: tampered, truncated or extended tokens are refused", "[auth]") {
    const KeySet ks = all_keys();
    const std::string claims = R"({"sub":"ann","rooms":["/a"]})";
    for (const std::string& token : {hs256(claims, kSecret), keys().rsa.token(claims), keys().ec.token(claims),
                                     keys().ed.token(claims)}) {
        REQUIRE(verify(token, ks, at(0)).ok());
        const std::string sig = segment(token, 2);
        SECTION("tampered payload " + token.substr(0, 20)) {
            const std::string other = b64url(R"({"sub":"ann","rooms":["/*"]})");
            CHECK(verify(with_segment(token, 1, other), ks, at(0)).error == Error::BadSignature);
        }
        SECTION("tampered header " + token.substr(0, 20)) {
            const std::string header = decoded(segment(token, 0));
            const std::string spaced = b64url(header.substr(0, header.size() - 1) + " }");
            CHECK(verify(with_segment(token, 0, spaced), ks, at(0)).error == Error::BadSignature);
        }
        SECTION("tampered signature " + token.substr(0, 20)) {
            for (const size_t i : {size_t{0}, sig.size() / 2, sig.size() - 2}) {
                std::string bad = sig;
                bad[i] = bad[i] == 'A' ? 'g' : 'A';
                CHECK(verify(with_segment(token, 2, bad), ks, at(0)).error == Error::BadSignature);
            }
        }
        SECTION("truncated " + token.substr(0, 20)) {
            for (const size_t cut : {size_t{1}, size_t{2}, size_t{4}, sig.size()}) {
                const Error e = verify(token.substr(0, token.size() - cut), ks, at(0)).error;
                CHECK((e == Error::Malformed || e == Error::BadSignature));
            }
            CHECK(verify(token.substr(0, token.rfind('.')), ks, at(0)).error == Error::Malformed);
            CHECK(verify(token.substr(0, token.find('.')), ks, at(0)).error == Error::Malformed);
            CHECK(verify("", ks, at(0)).error == Error::Malformed);
            CHECK(verify("..", ks, at(0)).error == Error::Malformed);
        }
        SECTION("extra segments " + token.substr(0, 20)) {
            CHECK(verify(token + ".", ks, at(0)).error == Error::Malformed);
            CHECK(verify(token + "." + sig, ks, at(0)).error == Error::Malformed);
            CHECK(verify(token + ".AAAA.BBBB", ks, at(0)).error == Error::Malformed);  // a JWE has five
            CHECK(verify("." + token, ks, at(0)).error == Error::Malformed);
        }
    }
}

TEST_CASE("auth: base64url is strict: no padding, no standard alphabet, canonical last bits", "[auth]") {
    std::string out;
    const auto dec = [&](std::string_view in) {
        out.clear();
        return base64url_decode(in, out);
    };
    CHECK(dec(""));
    CHECK(out.empty());
    CHECK(dec("QQ"));
    CHECK(out == "A");
    CHECK(dec("QUI"));
    CHECK(out == "AB");
    CHECK(dec("QUJD"));
    CHECK(out == "ABC");
    CHECK(dec("-_-_"));
    CHECK(out == "\xfb\xff\xbf");
    using namespace std::string_view_literals;
    for (const std::string_view bad : {"Q"sv, "QUJDR"sv, "QR"sv, "QUJ"sv, "QQ=="sv, "QUI="sv, "QQ="sv, "a+b/"sv, "ab+c"sv,
                                       "ab/c"sv, "QU J"sv, "QUJD\n"sv, " QUJD"sv, "QU\0J"sv, "QU.J"sv, "QUJ\xc3\xa9"sv}) {
        INFO(std::string(bad));
        CHECK_FALSE(dec(bad));
    }
    // Appends.
    out = "x";
    CHECK(base64url_decode("QQ", out));
    CHECK(out == "xA");

    const KeySet ks = all_keys();
    const std::string token = hs256(R"({"sub":"ann"})", kSecret);
    const std::string header = segment(token, 0), payload = segment(token, 1), sig = segment(token, 2);
    REQUIRE(sig.size() == 43);  // 32 bytes: the last character holds 2 unused bits
    SECTION("padding") {
        CHECK(verify(with_segment(token, 2, sig + "="), ks, at(0)).error == Error::Malformed);
        CHECK(verify(with_segment(token, 1, payload + "=="), ks, at(0)).error == Error::Malformed);
        CHECK(verify(with_segment(token, 1, payload + "="), ks, at(0)).error == Error::Malformed);
    }
    SECTION("the standard alphabet's '+' and '/'") {
        std::string s = sig;
        s[5] = '+';
        CHECK(verify(with_segment(token, 2, s), ks, at(0)).error == Error::Malformed);
        s[5] = '/';
        CHECK(verify(with_segment(token, 2, s), ks, at(0)).error == Error::Malformed);
        // A token whose signature has a '-' or '_' verifies; the same with '+' or '/' does not.
        for (int i = 0; i < 200; ++i) {
            const std::string t = hs256(R"({"n":)" + std::to_string(i) + "}", kSecret);
            const std::string ts = segment(t, 2);
            const size_t at_char = ts.find_first_of("-_");
            if (at_char == std::string::npos) continue;
            REQUIRE(verify(t, ks, at(0)).ok());
            std::string standard = ts;
            standard[at_char] = standard[at_char] == '-' ? '+' : '/';
            CHECK(verify(with_segment(t, 2, standard), ks, at(0)).error == Error::Malformed);
            break;
        }
    }
    SECTION("non-canonical trailing bits") {
        // Same bytes if the unused bits were ignored, so a lenient decoder would accept it.
        static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (const int low : {1, 2, 3}) {
            std::string s = sig;
            const size_t v = kAlphabet.find(s.back());
            s.back() = kAlphabet[(v & ~size_t{3}) | static_cast<size_t>(low)];
            CHECK(verify(with_segment(token, 2, s), ks, at(0)).error == Error::Malformed);
        }
        CHECK(verify(with_segment(token, 0, header + "A"), ks, at(0)).error == Error::Malformed);  // 4n+1 chars
    }
}

TEST_CASE("auth: tokens over kMaxTokenBytes are TooLarge before any decoding", "[auth]") {
    const KeySet ks = all_keys();
    CHECK(verify(std::string(kMaxTokenBytes + 1, '.'), ks, at(0)).error == Error::TooLarge);
    CHECK(verify(std::string(kMaxTokenBytes, '.'), ks, at(0)).error == Error::Malformed);
    std::string payload;
    CHECK(verify_signature(std::string(kMaxTokenBytes + 1, 'A'), ks, payload) == Error::TooLarge);
    // A well-signed token with a big claim: fine up to the limit, TooLarge past it.
    const auto padded = [&](size_t n) { return hs256(R"({"sub":")" + std::string(n, 'x') + R"("})", kSecret); };
    size_t n = 5000;
    while (padded(n + 1).size() <= kMaxTokenBytes) ++n;
    CHECK(padded(n).size() <= kMaxTokenBytes);
    CHECK(verify(padded(n), ks, at(0)).ok());
    CHECK(padded(n + 1).size() > kMaxTokenBytes);
    CHECK(verify(padded(n + 1), ks, at(0)).error == Error::TooLarge);
}

TEST_CASE("auth: the payload must be one JSON object with unique member names", "[auth]") {
    CHECK(verify_hs(R"({})") == Error::None);
    CHECK(verify_hs(R"({"exp":5000,"exp":500})") == Error::Malformed);
    CHECK(verify_hs(R"({"exp":500,"exp":5000})") == Error::Malformed);
    CHECK(verify_hs(R"({"sub":"a","rooms":["/a"],"sub":"b"})") == Error::Malformed);
    CHECK(verify_hs(R"([{"exp":5000}])") == Error::Malformed);
    CHECK(verify_hs(R"("a string")") == Error::Malformed);
    CHECK(verify_hs("5000") == Error::Malformed);
    CHECK(verify_hs("null") == Error::Malformed);
    CHECK(verify_hs("") == Error::Malformed);
    CHECK(verify_hs("Example of Ed25519 signing") == Error::Malformed);
    CHECK(verify_hs(R"({"sub":"a"}{"sub":"b"})") == Error::Malformed);
    CHECK(verify_hs(R"({"sub":"a",})") == Error::Malformed);
    CHECK(verify_hs("{\"sub\":\"\xff\"}") == Error::Malformed);  // not UTF-8
    CHECK(verify_hs(R"({"exp":1e400})") == Error::Malformed);    // out of double's range
    CHECK(verify_hs(std::string(3000, '[') + std::string(3000, ']')) == Error::Malformed);
    CHECK(verify_hs(R"({"x":)" + std::string(2000, '[') + std::string(2000, ']') + "}") == Error::None);
    // Unknown claims and nested duplicates are not ours to judge.
    CHECK(verify_hs(R"({"jti":"1","scope":{"a":1,"a":2},"http://example.com/is_root":true})") == Error::None);
}

TEST_CASE("auth: exp and nbf at the leeway boundaries", "[auth]") {
    // exp: expired when now >= exp + leeway.
    CHECK(verify_hs(R"({"exp":1000})", at(1029)) == Error::None);
    CHECK(verify_hs(R"({"exp":1000})", at(1030)) == Error::Expired);
    CHECK(verify_hs(R"({"exp":1000})", at(1031)) == Error::Expired);
    CHECK(verify_hs(R"({"exp":1000.99})", at(1029)) == Error::None);
    CHECK(verify_hs(R"({"exp":1000.99})", at(1030)) == Error::Expired);  // floored to 1000
    // nbf: not valid yet when now + leeway < nbf.
    CHECK(verify_hs(R"({"nbf":1000})", at(969)) == Error::NotYetValid);
    CHECK(verify_hs(R"({"nbf":1000})", at(970)) == Error::None);
    CHECK(verify_hs(R"({"nbf":1000})", at(971)) == Error::None);
    CHECK(verify_hs(R"({"nbf":1000.5})", at(970)) == Error::None);
    // No leeway.
    VerifyOptions strict = at(1000);
    strict.leeway_s = 0;
    CHECK(verify_hs(R"({"exp":1000})", strict) == Error::Expired);
    CHECK(verify_hs(R"({"exp":1001})", strict) == Error::None);
    CHECK(verify_hs(R"({"nbf":1000})", strict) == Error::None);
    CHECK(verify_hs(R"({"nbf":1001})", strict) == Error::NotYetValid);
    // Extremes do not overflow.
    CHECK(verify_hs(R"({"exp":18446744073709551615})", at(INT64_MAX - 1)) == Error::None);
    CHECK(verify_hs(R"({"exp":1e300})", at(INT64_MAX - 1)) == Error::None);
    CHECK(verify_hs(R"({"exp":-1e300})", at(0)) == Error::Expired);
    CHECK(verify_hs(R"({"exp":-9223372036854775808})", at(0)) == Error::Expired);
    CHECK(verify_hs(R"({"nbf":1e300})", at(0)) == Error::NotYetValid);
    CHECK(verify_hs(R"({"nbf":-1e300})", at(INT64_MIN)) == Error::None);
}

TEST_CASE("auth: audience and issuer", "[auth]") {
    VerifyOptions o = at(0);
    o.audience = "wsrelay";
    CHECK(verify_hs(R"({"aud":"wsrelay"})", o) == Error::None);
    CHECK(verify_hs(R"({"aud":["api","wsrelay"]})", o) == Error::None);
    CHECK(verify_hs(R"({"aud":"api"})", o) == Error::WrongAudience);
    CHECK(verify_hs(R"({"aud":"wsrelay2"})", o) == Error::WrongAudience);
    CHECK(verify_hs(R"({"aud":["api"]})", o) == Error::WrongAudience);
    CHECK(verify_hs(R"({"aud":[]})", o) == Error::WrongAudience);
    CHECK(verify_hs(R"({})", o) == Error::WrongAudience);
    CHECK(verify_hs(R"({"aud":5})", o) == Error::BadClaims);
    CHECK(verify_hs(R"({"aud":["wsrelay",5]})", o) == Error::BadClaims);
    // Not configured: any well-typed aud passes.
    CHECK(verify_hs(R"({"aud":"api"})", at(0)) == Error::None);
    CHECK(verify_hs(R"({"aud":{"x":1}})", at(0)) == Error::BadClaims);

    o = at(0);
    o.issuer = "https://issuer.example";
    CHECK(verify_hs(R"({"iss":"https://issuer.example"})", o) == Error::None);
    CHECK(verify_hs(R"({"iss":"https://issuer.example/"})", o) == Error::WrongIssuer);
    CHECK(verify_hs(R"({})", o) == Error::WrongIssuer);
    CHECK(verify_hs(R"({"iss":["https://issuer.example"]})", o) == Error::BadClaims);
    // Time comes before audience and issuer.
    o.audience = "wsrelay";
    o.now_s = 5000;
    CHECK(verify_hs(R"({"exp":1000})", o) == Error::Expired);
}

TEST_CASE("auth: claims of the wrong type are BadClaims", "[auth]") {
    for (const char* payload :
         {R"({"exp":"2000"})", R"({"exp":true})", R"({"exp":null})", R"({"exp":[2000]})", R"({"nbf":"0"})",
          R"({"nbf":{}})", R"({"sub":1})", R"({"sub":null})", R"({"iss":false})", R"({"rooms":"/a"})",
          R"({"rooms":["/a",1]})", R"({"rooms":[["/a"]]})", R"({"rooms":{"/a":true}})", R"({"publish":"false"})",
          R"({"publish":0})", R"({"publish":null})", R"({"aud":null})"}) {
        INFO(payload);
        CHECK(verify_hs(payload) == Error::BadClaims);
    }
    // Types are checked before time: an expired token with a bad claim is BadClaims.
    CHECK(verify_hs(R"({"exp":1,"sub":5})", at(100000)) == Error::BadClaims);
}

TEST_CASE("auth: a refused token gives no claims", "[auth]") {
    KeySet ks;
    ks.set_hmac_secret(std::string(kSecret));
    const Verdict v = verify(hs256(R"({"sub":"ann","rooms":["/*"],"exp":1})", kSecret), ks, at(100000));
    CHECK(v.error == Error::Expired);
    CHECK(v.claims.sub.empty());
    CHECK(v.claims.rooms.empty());
}

TEST_CASE("auth: key rotation: any key of a PEM file verifies", "[auth]") {
    const std::string pem = "old key, retiring:\n" + keys().rsa.public_pem() + "\nnew key:\n" + keys().rsa2.public_pem() +
                            keys().ec.public_pem();
    KeySet ks;
    std::string error;
    REQUIRE(ks.add_public_keys_pem(pem, error));
    CHECK(ks.public_key_count() == 3);
    CHECK_FALSE(ks.has_hmac_secret());
    CHECK(verify(keys().rsa2.token(R"({"sub":"b"})"), ks, at(0)).ok());
    CHECK(verify(keys().rsa.token(R"({"sub":"a"})"), ks, at(0)).ok());
    // A key that is not in the file.
    const KeySet only_first = pem_keys(keys().rsa.public_pem());
    CHECK(verify(keys().rsa2.token(R"({"sub":"b"})"), only_first, at(0)).error == Error::BadSignature);
    // add_public_keys_pem() adds to what is there.
    KeySet grown = pem_keys(keys().rsa.public_pem());
    REQUIRE(grown.add_public_keys_pem(keys().rsa2.public_pem(), error));
    CHECK(grown.public_key_count() == 2);
    CHECK(verify(keys().rsa2.token(R"({"sub":"b"})"), grown, at(0)).ok());
    // Moving keeps the keys.
    KeySet moved = std::move(grown);
    CHECK(moved.public_key_count() == 2);
    CHECK(verify(keys().rsa2.token(R"({"sub":"b"})"), moved, at(0)).ok());
}

TEST_CASE("auth: PEM keys other than RSA >= 2048, P-256 and Ed25519 are refused, naming the key", "[auth]") {
    const TestKey p384 = make_key("EC", Alg::ES256, "P-384");
    const TestKey rsa1024 = make_key("RSA", Alg::RS256, nullptr, 1024);
    const TestKey ed448 = make_key("ED448", Alg::EdDSA);
    const std::string good = keys().ec.public_pem();
    const auto refused = [&](const std::string& pem, std::string_view says) {
        KeySet ks;
        std::string error;
        CHECK_FALSE(ks.add_public_keys_pem(pem, error));
        INFO(error);
        CHECK(error.find(says) != std::string::npos);
        CHECK(ks.public_key_count() == 0);  // all or nothing
    };
    refused(good + p384.public_pem(), "2nd key: an EC key on curve secp384r1");
    refused(rsa1024.public_pem(), "1st key: an RSA key of 1024 bits");
    refused(good + good + ed448.public_pem(), "3rd key: a key of type ED448");
    refused(keys().ec.private_pem(), "1st key: a private key");
    refused(good + keys().rsa.private_pem(), "2nd key: a private key");
    refused("", "no \"-----BEGIN PUBLIC KEY-----\" block");
    refused("just some text\n", "no \"-----BEGIN PUBLIC KEY-----\" block");
    refused("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "1st key: a \"CERTIFICATE\" block");
    refused("-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n", "1st key: not a valid public key");
    refused(good.substr(0, good.size() - 10), "1st key: no \"-----END PUBLIC KEY-----\" line");
    for (const auto& [n, name] : std::vector<std::pair<int, std::string>>{
             {4, "4th"}, {11, "11th"}, {12, "12th"}, {13, "13th"}, {21, "21st"}, {22, "22nd"}, {23, "23rd"}}) {
        std::string many;
        for (int j = 1; j < n; ++j) many += good;
        refused(many + p384.public_pem(), name + " key: an EC key");
    }
}

TEST_CASE("auth: load_keys reads the secret's first line and the PEM file, naming the path on errors", "[auth]") {
    const TempDir dir;
    const std::string secret = "s3cr3t-Value-0123456789-abcdefghij";
    const std::string pem = dir.file("keys.pem", keys().rsa.public_pem() + keys().ed.public_pem());
    std::string error;
    SECTION("both files") {
        KeySet ks;
        REQUIRE(load_keys(dir.file("secret", secret + "\nsecond line ignored\n"), pem, ks, error));
        CHECK(ks.has_hmac_secret());
        CHECK(ks.public_key_count() == 2);
        CHECK(verify(hs256(R"({"sub":"a"})", secret), ks, at(0)).ok());
        CHECK(verify(keys().ed.token(R"({"sub":"a"})"), ks, at(0)).ok());
    }
    SECTION("a CRLF line end and no line end") {
        KeySet ks;
        REQUIRE(load_keys(dir.file("crlf", secret + "\r\n"), "", ks, error));
        CHECK(verify(hs256(R"({"sub":"a"})", secret), ks, at(0)).ok());
        KeySet ks2;
        REQUIRE(load_keys(dir.file("bare", secret), "", ks2, error));
        CHECK(verify(hs256(R"({"sub":"a"})", secret), ks2, at(0)).ok());
        CHECK(ks2.public_key_count() == 0);
    }
    SECTION("empty paths are skipped") {
        KeySet ks;
        REQUIRE(load_keys("", "", ks, error));
        CHECK(ks.empty());
        REQUIRE(load_keys("", pem, ks, error));
        CHECK_FALSE(ks.has_hmac_secret());
        CHECK(ks.public_key_count() == 2);
    }
    SECTION("errors") {
        KeySet ks = pem_keys(kA3Pem);  // left as it was on error
        const auto fails = [&](const std::string& secret_path, const std::string& pem_path, const std::string& path,
                               std::string_view says) {
            error.clear();
            CHECK_FALSE(load_keys(secret_path, pem_path, ks, error));
            INFO(error);
            CHECK(error.starts_with(path + ": "));
            CHECK(error.find(says) != std::string::npos);
            CHECK(error.find(secret) == std::string::npos);
            CHECK(error.find("s3cr3t") == std::string::npos);
            CHECK(ks.public_key_count() == 1);
            CHECK_FALSE(ks.has_hmac_secret());
        };
        const std::string missing = (dir.path / "missing").string();
        fails(missing, "", missing, "No such file or directory");
        fails("", missing, missing, "No such file or directory");
        fails(dir.path.string(), "", dir.path.string(), "Is a directory");
        const std::string empty_line = dir.file("empty-line", "\n" + secret + "\n");
        fails(empty_line, "", empty_line, "empty");
        const std::string crlf_only = dir.file("crlf-only", "\r\n" + secret);
        fails(crlf_only, "", crlf_only, "empty");
        const std::string empty = dir.file("empty", "");
        fails(empty, "", empty, "empty");
        const std::string short_secret = dir.file("short", "s3cr3t-31-bytes-long-0123456789\n");
        fails(short_secret, "", short_secret, "the HS256 secret is 31 bytes; at least 32 are needed");
        const std::string good_secret = dir.file("good", secret + "\n");
        const std::string p384 = dir.file("p384.pem", make_key("EC", Alg::ES256, "P-384").public_pem());
        fails(good_secret, p384, p384, "1st key: an EC key on curve secp384r1");
        const std::string priv = dir.file("private.pem", keys().ec.private_pem());
        fails(good_secret, priv, priv, "1st key: a private key");
        fails(good_secret, empty, empty, "no \"-----BEGIN PUBLIC KEY-----\" block");
    }
}

TEST_CASE("auth: room_allowed: exact paths and prefixes ending in /*", "[auth]") {
    Claims c;
    CHECK_FALSE(room_allowed(c, "/"));
    CHECK_FALSE(room_allowed(c, "/lobby"));
    c.rooms = {"/lobby", "/team/*"};
    CHECK(room_allowed(c, "/lobby"));
    CHECK_FALSE(room_allowed(c, "/lobby/x"));
    CHECK_FALSE(room_allowed(c, "/lobb"));
    CHECK_FALSE(room_allowed(c, "/Lobby"));
    CHECK(room_allowed(c, "/team/a"));
    CHECK(room_allowed(c, "/team/a/b"));
    CHECK_FALSE(room_allowed(c, "/team"));
    CHECK_FALSE(room_allowed(c, "/team/"));
    CHECK_FALSE(room_allowed(c, "/teams/x"));
    CHECK_FALSE(room_allowed(c, "/"));
    CHECK_FALSE(room_allowed(c, ""));
    c.rooms = {"/*"};
    for (const char* room : {"/", "/a", "/team/a/b", "/*"}) CHECK(room_allowed(c, room));
    c.rooms = {"*", "/a*", ""};
    CHECK(room_allowed(c, "*"));  // an exact entry
    CHECK_FALSE(room_allowed(c, "/a"));
    CHECK_FALSE(room_allowed(c, "/ab"));
    CHECK_FALSE(room_allowed(c, "/x"));
}

TEST_CASE("auth: describe() gives the fixed texts", "[auth]") {
    CHECK(describe(Error::Malformed) == "malformed token");
    CHECK(describe(Error::TooLarge) == "token too large");
    CHECK(describe(Error::UnsupportedAlg) == "unsupported algorithm");
    CHECK(describe(Error::NoKey) == "no key for the algorithm");
    CHECK(describe(Error::BadSignature) == "bad signature");
    CHECK(describe(Error::Expired) == "token expired");
    CHECK(describe(Error::NotYetValid) == "token not valid yet");
    CHECK(describe(Error::WrongAudience) == "wrong audience");
    CHECK(describe(Error::WrongIssuer) == "wrong issuer");
    CHECK(describe(Error::BadClaims) == "bad claims");
    CHECK(describe(Error::None) == "ok");
    CHECK(alg_name(Alg::EdDSA) == "EdDSA");
}
