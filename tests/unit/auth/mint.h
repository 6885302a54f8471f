// SPDX-License-Identifier: Apache-2.0
// Minting tokens in unit tests: base64url and HS256 with OpenSSL (tests/unit/auth and relay).
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <string_view>

namespace wsrelay::test {

inline std::string b64url(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    return out;
}

inline std::string hmac_sha256(std::string_view key, std::string_view data) {
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
         data.size(), mac, &len);
    return {reinterpret_cast<const char*>(mac), len};
}

// An HS256 token (JWS compact form) of `payload` signed with `secret`.
inline std::string hs256(std::string_view payload, std::string_view secret,
                         std::string_view header = R"({"alg":"HS256","typ":"JWT"})") {
    const std::string input = b64url(header) + "." + b64url(payload);
    return input + "." + b64url(hmac_sha256(secret, input));
}

}  // namespace wsrelay::test
