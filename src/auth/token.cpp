// SPDX-License-Identifier: Apache-2.0
// Token verification: strict base64url, the JWS header, the signature, then the JWT claims.
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "auth/openssl_ptr.h"
#include "auth/token.h"

namespace wsrelay::auth {

// The one reader of KeySet's keys (friend of KeySet).
struct KeyAccess {
    static std::string_view secret(const KeySet& k) noexcept { return k.hmac_secret_; }
    static const std::vector<KeySet::PublicKey>& public_keys(const KeySet& k) noexcept { return k.keys_; }
};

namespace {

using Json = nlohmann::json;

// The 6-bit value of each base64url character, -1 for every other byte.
constexpr std::array<int8_t, 256> kBase64urlValue = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < alphabet.size(); ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    return t;
}();

// The three segments of a compact JWS, still encoded.
struct Segments {
    std::string_view header, payload, signature;
    std::string_view signing_input;  // "header.payload": the bytes the signature covers (RFC 7515 §5.2)
};

std::optional<Segments> split(std::string_view token) {
    const size_t dot1 = token.find('.');
    if (dot1 == std::string_view::npos) return std::nullopt;
    const size_t dot2 = token.find('.', dot1 + 1);
    // Exactly two dots: a JWE (RFC 7516) has four, and is not something we can verify.
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) return std::nullopt;
    return Segments{token.substr(0, dot1), token.substr(dot1 + 1, dot2 - dot1 - 1), token.substr(dot2 + 1),
                    token.substr(0, dot2)};
}

// A JWS header or JWT claims set: one JSON object whose member names are unique. Duplicates are
// refused rather than resolved (RFC 7515 §5.2 and RFC 7519 §4 allow either), so no reader of the
// same bytes can see another "alg" or "exp" than we did. Nested objects are not ours to judge.
std::optional<Json> parse_object(std::string_view text) {
    std::set<std::string, std::less<>> names;
    bool duplicate = false;
    // Depth 1 is a member name of the top-level value (the parser reports the depth after entering
    // the object); a name inside a nested object or array is deeper.
    const Json::parser_callback_t note_names = [&](int depth, Json::parse_event_t event, Json& parsed) {
        if (event == Json::parse_event_t::key && depth == 1 && !names.insert(parsed.get<std::string>()).second)
            duplicate = true;
        return true;
    };
    Json j = Json::parse(text.begin(), text.end(), note_names, /*allow_exceptions=*/false);
    if (duplicate || j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}

std::optional<Alg> alg_of(std::string_view name) {
    // Case-sensitive (RFC 7515 §4.1.1): "none", "NONE", "hs256" are all simply not ours.
    for (const Alg a : {Alg::HS256, Alg::RS256, Alg::ES256, Alg::EdDSA})
        if (alg_name(a) == name) return a;
    return std::nullopt;
}

const unsigned char* bytes(std::string_view s) noexcept { return reinterpret_cast<const unsigned char*>(s.data()); }

Error check_hmac(std::string_view secret, std::string_view input, std::string_view signature) {
    if (secret.empty()) return Error::NoKey;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (secret.size() > INT_MAX ||
        !HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), bytes(input), input.size(), mac, &mac_len))
        return Error::BadSignature;
    // Constant time: a byte-by-byte early exit would tell a forger how many leading bytes are right.
    const bool equal = signature.size() == mac_len && CRYPTO_memcmp(signature.data(), mac, mac_len) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return equal ? Error::None : Error::BadSignature;
}

bool digest_verify(EVP_PKEY* pkey, Alg alg, std::string_view input, std::string_view signature) {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
    // Ed25519 hashes internally (PureEdDSA, RFC 8032): no digest may be named for it.
    const EVP_MD* md = alg == Alg::EdDSA ? nullptr : EVP_sha256();
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey) != 1) return false;
    // RS256 is RSASSA-PKCS1-v1_5 (RFC 7518 §3.3); the default already, but never PSS by accident.
    if (alg == Alg::RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) return false;
    return EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(input), input.size()) == 1;
}

// JWS carries an ECDSA signature as R||S, each 32 bytes for P-256 (RFC 7518 §3.4); OpenSSL wants
// the DER ECDSA-Sig-Value. Empty on failure.
std::string es256_to_der(std::string_view raw) {
    EcdsaSigPtr sig(ECDSA_SIG_new());
    BignumPtr r(BN_bin2bn(bytes(raw), 32, nullptr));
    BignumPtr s(BN_bin2bn(bytes(raw) + 32, 32, nullptr));
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return {};
    (void)r.release();  // ECDSA_SIG_set0 took both
    (void)s.release();
    const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
    if (len <= 0) return {};
    std::string der(static_cast<size_t>(len), '\0');
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    if (i2d_ECDSA_SIG(sig.get(), &p) != len) return {};
    return der;
}

// Each algorithm verifies only with its own kind of key; every key of that kind is tried, so a
// rotated-in key works before tokens carry a "kid".
Error check_public(const KeySet& keys, Alg alg, std::string_view input, std::string_view signature) {
    const auto& all = KeyAccess::public_keys(keys);
    const bool any = std::any_of(all.begin(), all.end(), [&](const KeySet::PublicKey& k) { return k.alg == alg; });
    if (!any) return Error::NoKey;
    std::string der;
    if (alg == Alg::ES256) {
        if (signature.size() != 64) return Error::BadSignature;  // DER or another curve's size
        der = es256_to_der(signature);
        if (der.empty()) return Error::BadSignature;
        signature = der;
    }
    bool ok = false;
    for (const KeySet::PublicKey& k : all)
        if (k.alg == alg && digest_verify(k.pkey.get(), alg, input, signature)) {
            ok = true;
            break;
        }
    ERR_clear_error();  // a failed verify leaves entries that the next TLS call must not misread
    return ok ? Error::None : Error::BadSignature;
}

Error check_signature(std::string_view token, const KeySet& keys, std::string& payload, Alg& alg) {
    if (token.size() > kMaxTokenBytes) return Error::TooLarge;
    const std::optional<Segments> seg = split(token);
    if (!seg) return Error::Malformed;
    std::string header_text, signature;
    payload.clear();
    if (!base64url_decode(seg->header, header_text) || !base64url_decode(seg->payload, payload) ||
        !base64url_decode(seg->signature, signature))
        return Error::Malformed;
    const std::optional<Json> header = parse_object(header_text);
    if (!header) return Error::Malformed;
    const auto name = header->find("alg");
    if (name == header->end() || !name->is_string()) return Error::Malformed;
    const auto typ = header->find("typ");
    if (typ != header->end() && !typ->is_string()) return Error::Malformed;
    const std::optional<Alg> a = alg_of(name->get_ref<const std::string&>());
    if (!a) return Error::UnsupportedAlg;
    // RFC 7515 §4.1.11: a recipient must refuse critical extensions it does not understand, and
    // we understand none (e.g. "b64": false of RFC 7797 would change what the signature covers).
    if (header->contains("crit")) return Error::UnsupportedAlg;
    alg = *a;
    return alg == Alg::HS256 ? check_hmac(KeyAccess::secret(keys), seg->signing_input, signature)
                             : check_public(keys, alg, seg->signing_input, signature);
}

// A NumericDate (RFC 7519 §2): any JSON number, fractions floored, clamped into int64.
std::optional<int64_t> numeric_date(const Json& v) {
    if (v.is_number_unsigned()) {
        const auto u = v.get<uint64_t>();
        return u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                              : static_cast<int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    if (!v.is_number_float()) return std::nullopt;
    const double d = std::floor(v.get<double>());
    if (!std::isfinite(d)) return std::nullopt;  // the parser refuses overflow already; stay safe
    if (d >= 9223372036854775808.0) return std::numeric_limits<int64_t>::max();
    if (d < -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(d);
}

int64_t saturating_add(int64_t a, int64_t b) noexcept {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
    return r;
}

bool is_string_array(const Json& v) {
    return v.is_array() && std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_string(); });
}

// Every claim we read is type-checked before any is acted on, so a token with a wrong type is
// BadClaims whatever the clock says. Claims we do not know are ignored (RFC 7519 §4).
Error read_claims(const Json& set, const VerifyOptions& options, Claims& c) {
    const auto member = [&](const char* name) -> const Json* {
        const auto it = set.find(name);
        return it == set.end() ? nullptr : &*it;
    };
    const Json* sub = member("sub");
    const Json* iss = member("iss");
    const Json* aud = member("aud");
    const Json* exp = member("exp");
    const Json* nbf = member("nbf");
    const Json* rooms = member("rooms");
    const Json* publish = member("publish");
    if ((sub && !sub->is_string()) || (iss && !iss->is_string()) || (publish && !publish->is_boolean()) ||
        (aud && !aud->is_string() && !is_string_array(*aud)) || (rooms && !is_string_array(*rooms)))
        return Error::BadClaims;
    if (exp && !(c.exp = numeric_date(*exp))) return Error::BadClaims;
    if (nbf && !(c.nbf = numeric_date(*nbf))) return Error::BadClaims;
    if (sub) c.sub = sub->get<std::string>();
    if (publish) c.publish = publish->get<bool>();
    if (rooms) c.rooms = rooms->get<std::vector<std::string>>();

    // RFC 7519 §4.1.4 / §4.1.5, with the leeway both ways: valid from nbf - leeway up to, not
    // including, exp + leeway.
    if (c.exp && options.now_s >= saturating_add(*c.exp, options.leeway_s)) return Error::Expired;
    if (c.nbf && saturating_add(options.now_s, options.leeway_s) < *c.nbf) return Error::NotYetValid;
    if (!options.audience.empty()) {
        const auto is_ours = [&](const Json& v) { return v.get_ref<const std::string&>() == options.audience; };
        if (!aud || (aud->is_string() ? !is_ours(*aud) : std::none_of(aud->begin(), aud->end(), is_ours)))
            return Error::WrongAudience;
    }
    if (!options.issuer.empty() && (!iss || iss->get_ref<const std::string&>() != options.issuer))
        return Error::WrongIssuer;
    return Error::None;
}

}  // namespace

std::string_view alg_name(Alg alg) noexcept {
    switch (alg) {
    case Alg::HS256: return "HS256";
    case Alg::RS256: return "RS256";
    case Alg::ES256: return "ES256";
    case Alg::EdDSA: return "EdDSA";
    }
    return "?";
}

std::string_view describe(Error e) noexcept {
    switch (e) {
    case Error::None: return "ok";
    case Error::Malformed: return "malformed token";
    case Error::TooLarge: return "token too large";
    case Error::UnsupportedAlg: return "unsupported algorithm";
    case Error::NoKey: return "no key for the algorithm";
    case Error::BadSignature: return "bad signature";
    case Error::Expired: return "token expired";
    case Error::NotYetValid: return "token not valid yet";
    case Error::WrongAudience: return "wrong audience";
    case Error::WrongIssuer: return "wrong issuer";
    case Error::BadClaims: return "bad claims";
    }
    return "malformed token";
}

bool base64url_decode(std::string_view in, std::string& out) {
    const size_t rest = in.size() % 4;
    // One character holds 6 bits, less than a byte; EVP_DecodeBlock counts in int.
    if (rest == 1 || in.size() > static_cast<size_t>(INT_MAX) - 3) return false;
    std::string standard;  // RFC 4648 §4 form, padded, as EVP_DecodeBlock reads it
    standard.reserve(in.size() + 3);
    for (const char ch : in) {
        if (kBase64urlValue[static_cast<unsigned char>(ch)] < 0) return false;
        standard.push_back(ch == '-' ? '+' : ch == '_' ? '/' : ch);
    }
    // The last character of a 2- or 3-character tail carries 4 or 2 bits that fall outside the
    // decoded bytes; they must be zero or "QQ" and "QR" would both decode to "A" (RFC 4648 §3.5).
    if (rest != 0) {
        const int last = kBase64urlValue[static_cast<unsigned char>(in.back())];
        if ((last & (rest == 2 ? 0x0f : 0x03)) != 0) return false;
    }
    const size_t padding = rest == 0 ? 0 : 4 - rest;
    standard.append(padding, '=');
    const size_t start = out.size();
    out.resize(start + standard.size() / 4 * 3);
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data() + start), bytes(standard),
                                  static_cast<int>(standard.size()));
    // EVP_DecodeBlock counts the zero bytes the padding stands for; they are not data.
    if (n < 0 || static_cast<size_t>(n) < padding) return false;
    out.resize(start + static_cast<size_t>(n) - padding);
    return true;
}

Error verify_signature(std::string_view token, const KeySet& keys, std::string& payload, Alg* alg) {
    try {
        Alg a = Alg::HS256;
        const Error e = check_signature(token, keys, payload, a);
        if (alg) *alg = a;
        if (e != Error::None) payload.clear();
        return e;
    } catch (...) {  // std::bad_alloc; the JSON calls are checked and do not throw
        payload.clear();
        return Error::Malformed;
    }
}

Verdict verify(std::string_view token, const KeySet& keys, const VerifyOptions& options) {
    Verdict v;
    try {
        std::string payload;
        v.error = check_signature(token, keys, payload, v.alg);
        if (v.error != Error::None) return v;
        // Only now, with the signature good, is the payload worth parsing as claims.
        const std::optional<Json> set = parse_object(payload);
        v.error = set ? read_claims(*set, options, v.claims) : Error::Malformed;
    } catch (...) {  // std::bad_alloc; the JSON calls are type-checked and do not throw
        v.error = Error::Malformed;
    }
    if (v.error != Error::None) v.claims = Claims{};  // nothing from a refused token reaches the caller
    return v;
}

bool room_allowed(const Claims& claims, std::string_view room) noexcept {
    for (const std::string& entry : claims.rooms) {
        const std::string_view e = entry;
        if (e == room || e == "/*") return true;
        if (e.ends_with("/*")) {
            const std::string_view prefix = e.substr(0, e.size() - 1);  // keeps the '/': "/team/"
            if (room.size() > prefix.size() && room.starts_with(prefix)) return true;
        }
    }
    return false;
}

}  // namespace wsrelay::auth
