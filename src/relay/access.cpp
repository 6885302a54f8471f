// SPDX-License-Identifier: Apache-2.0
#include "relay/access.h"

#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "relay/http.h"

namespace wsrelay::relay {
namespace {

// application/x-www-form-urlencoded value: %XX and '+' for space. A malformed escape is kept as
// written (the token then fails to verify, as it should).
std::string percent_decode(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '%' && i + 2 < v.size() && hex_value(v[i + 1]) >= 0 && hex_value(v[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(v[i + 1]) * 16 + hex_value(v[i + 2])));
            i += 2;
        } else {
            out.push_back(v[i] == '+' ? ' ' : v[i]);
        }
    }
    return out;
}

Admission refuse(uint16_t status, std::string_view error, std::string_view description) {
    Admission a;
    a.status = status;
    a.error = error;
    a.description = description;
    return a;
}

}  // namespace

bool load_token_keys(const config::Config& c, Credentials& out, std::string& error) {
    auth::KeySet keys;
    if (!auth::load_keys(c.auth.hmac_secret_file, c.auth.public_key_file, keys, error)) return false;
    out.tokens = std::make_shared<const auth::KeySet>(std::move(keys));
    return true;
}

bool load_api_keys(const config::Config& c, Credentials& out, std::string& error) {
    out.api_keys.clear();
    if (c.api_key_file.empty()) return true;
    std::ifstream in(c.api_key_file);
    if (!in) {
        error = c.api_key_file + ": cannot read it (" + std::strerror(errno) + ")";
        return false;
    }
    std::vector<std::string> keys;
    for (std::string line; std::getline(in, line);) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
        const size_t start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#') continue;
        keys.push_back(line.substr(start));
    }
    if (keys.empty()) {
        error = c.api_key_file + ": no key in it (one key per line)";
        return false;
    }
    out.api_keys = std::move(keys);
    return true;
}

std::string request_token(const proto::Request& req) {
    std::string_view q = req.query;
    while (!q.empty()) {
        const size_t amp = q.find('&');
        const std::string_view pair = q.substr(0, amp);
        if (pair.starts_with("token=")) return percent_decode(pair.substr(6));
        q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    }
    return std::string(bearer_credentials(req));
}

std::string_view bearer_credentials(const proto::Request& req) noexcept {
    const std::string_view authz = req.header("Authorization");
    if (authz.size() <= 7 || !proto::iequals(authz.substr(0, 7), "Bearer ")) return {};
    std::string_view t = authz.substr(7);
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    return t;
}

Admission admit(const proto::Request& req, std::string_view room, const config::RoomSettings& settings,
                const config::Config& c, const auth::KeySet& keys, int64_t now_s) {
    const bool required = c.token_required(settings);
    const std::string token = request_token(req);
    if (token.empty()) {
        if (required) return refuse(401, "invalid_request", "no token");
        return {};
    }
    // An open room with no keys configured at all: the token means nothing here.
    if (!required && keys.empty()) return {};
    auth::VerifyOptions o;
    o.audience = c.auth.audience;
    o.issuer = c.auth.issuer;
    o.leeway_s = static_cast<int64_t>(c.auth.leeway_ms / 1000);
    o.now_s = now_s;
    auth::Verdict v = auth::verify(token, keys, o);
    if (!v.ok()) return refuse(401, "invalid_token", auth::describe(v.error));
    if (required && !auth::room_allowed(v.claims, room)) return refuse(403, "insufficient_scope", "room not allowed");
    Admission a;
    a.has_token = true;
    a.user = std::move(v.claims.sub);
    a.publish = v.claims.publish;
    if (v.claims.exp) a.expires_s = *v.claims.exp + o.leeway_s;
    return a;
}

std::string refusal_response(const Admission& a) {
    std::string challenge = "WWW-Authenticate: Bearer realm=\"wsrelay\", error=\"";
    challenge.append(a.error).append("\", error_description=\"").append(a.description).append("\"\r\n");
    return proto::build_error_response({a.status, a.description}, false, challenge);
}

bool api_key_valid(std::string_view presented, const std::vector<std::string>& keys) noexcept {
    bool ok = false;
    for (const std::string& k : keys)
        ok |= k.size() == presented.size() && CRYPTO_memcmp(k.data(), presented.data(), k.size()) == 0;
    return ok;
}

}  // namespace wsrelay::relay
