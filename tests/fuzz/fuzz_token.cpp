// SPDX-License-Identifier: Apache-2.0
// Fuzz target: a token as it arrives from a client (auth/token.h). A hostile token must not crash
// wsrelay, throw, or be admitted without a signature made by one of the configured keys:
//  - verify() and verify_signature() agree: verify() fails with verify_signature()'s error when
//    that fails, and ok() needs a good signature with the same algorithm;
//  - a good HS256 signature is the HMAC of the signing input, recomputed here;
//  - a good signature of any algorithm stops being good when one of its characters changes;
//  - an admitted token's exp/nbf hold at the time given, each plain room it lists is allowed, and
//    a refused one carries no claims.
// The keys are fixed: an HMAC secret and the public keys of RFC 7515 A.2 (RSA) and A.3 (P-256)
// and RFC 8037 A.2 (Ed25519), so the RFC examples in the corpus verify. The first byte picks the
// options: bit 0 requires aud "wsrelay", bit 1 requires iss "joe", bits 2-7 move the clock forward
// in 30-day steps from 1300000000 (before the RFC examples' exp); the rest is the token.
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../unit/auth/rfc_vectors.h"  // the RFC keys, shared with the unit tests
#include "auth/token.h"

namespace {

using namespace wsrelay::auth;

constexpr std::string_view kSecret = "wsrelay fuzz secret: 32 bytes or more";
constexpr int64_t kStart = 1300000000;
constexpr int64_t kStep = 30 * 24 * 3600;

const KeySet& fuzz_keys() {
    static const KeySet keys = [] {
        KeySet k;
        k.set_hmac_secret(std::string(kSecret));
        std::string error;
        const std::string pem = std::string(rfc::kA2Pem) + std::string(rfc::kA3Pem) + std::string(rfc::kEd25519Pem);
        if (!k.add_public_keys_pem(pem, error) || k.public_key_count() != 3) __builtin_trap();
        return k;
    }();
    return keys;
}

int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const KeySet& keys = fuzz_keys();
    VerifyOptions options;
    if (data[0] & 1) options.audience = "wsrelay";
    if (data[0] & 2) options.issuer = "joe";
    options.now_s = kStart + int64_t{data[0] >> 2} * kStep;
    const std::string_view token(reinterpret_cast<const char*>(data + 1), size - 1);

    std::string payload;
    Alg alg = Alg::HS256;
    const Error signature = verify_signature(token, keys, payload, &alg);
    const Verdict v = verify(token, keys, options);
    if (describe(v.error).empty() || describe(signature).empty()) __builtin_trap();
    if (token.size() > kMaxTokenBytes && (signature != Error::TooLarge || v.error != Error::TooLarge)) __builtin_trap();

    if (signature != Error::None) {
        if (v.error != signature || !payload.empty()) __builtin_trap();
    } else {
        if (v.ok() && v.alg != alg) __builtin_trap();
        const size_t dot = token.rfind('.');
        const std::string_view input = token.substr(0, dot), sig_text = token.substr(dot + 1);
        if (alg == Alg::HS256) {
            std::string sig;
            unsigned char mac[32];
            unsigned int mac_len = 0;
            if (!base64url_decode(sig_text, sig) ||
                !HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
                      reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len) ||
                sig != std::string_view(reinterpret_cast<const char*>(mac), mac_len))
                __builtin_trap();
        }
        // One character of the signature changed: never still good.
        if (!sig_text.empty()) {
            std::string changed(token);
            char& c = changed[dot + 1 + sig_text.size() / 2];
            c = c == 'A' ? 'B' : 'A';
            std::string ignored;
            if (verify_signature(changed, keys, ignored) == Error::None) __builtin_trap();
        }
    }

    if (v.ok()) {
        const Claims& c = v.claims;
        if (c.exp && options.now_s >= sat_add(*c.exp, options.leeway_s)) __builtin_trap();
        if (c.nbf && sat_add(options.now_s, options.leeway_s) < *c.nbf) __builtin_trap();
        for (const std::string& room : c.rooms)
            if (!room_allowed(c, room)) __builtin_trap();
    } else if (!v.claims.sub.empty() || !v.claims.rooms.empty() || v.claims.exp || v.claims.nbf) {
        __builtin_trap();
    }
    return 0;
}
