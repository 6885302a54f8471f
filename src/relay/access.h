// SPDX-License-Identifier: Apache-2.0
// Who may join which room and speak in it ([auth]: signed tokens), and who may use the HTTP API
// ([api]: bearer keys). The decisions are here, pure; the keys are read from their files by
// load_credentials() (at start and on SIGHUP, by the daemon) and handed to the Server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/token.h"
#include "config/config.h"
#include "proto/handshake.h"

namespace wsrelay::relay {

struct Credentials {
    // [auth] hmac_secret_file, public_key_file. Shared: a reload that cannot read the files keeps
    // the running set while the rest of the configuration changes.
    std::shared_ptr<const auth::KeySet> tokens = std::make_shared<const auth::KeySet>();
    std::vector<std::string> api_keys;  // [api] key_file, one per line
};

// Reads the token keys ([auth]) into `out.tokens`; false with `error` naming the file (never the
// secret). No key file configured: an empty key set.
bool load_token_keys(const config::Config& c, Credentials& out, std::string& error);
// Reads [api] key_file: one key per line; blank lines and lines starting with '#' are skipped; a
// file with no key at all is an error (the operator meant to allow someone).
bool load_api_keys(const config::Config& c, Credentials& out, std::string& error);

// What a WebSocket upgrade request may do in a room.
struct Admission {
    uint16_t status = 0;             // 0: admitted; else 401 or 403
    std::string_view error;          // WWW-Authenticate error= (RFC 6750 §3.1)
    std::string_view description;    // error_description= and the log line: never token bytes
    std::string user;                // the token's sub ("" without a token or sub)
    bool publish = true;             // false: listen-only
    bool has_token = false;          // a token was verified
    int64_t expires_s = 0;           // exp + leeway, seconds since the epoch; 0: never
};

// The credentials of `Authorization: Bearer <credentials>` (RFC 6750 §2.1: the scheme in any case,
// one or more spaces); empty without that header or with another scheme.
std::string_view bearer_credentials(const proto::Request& req) noexcept;

// The token of an upgrade request: the `token` query parameter (percent-decoded), else
// `Authorization: Bearer`. Empty when there is none.
std::string request_token(const proto::Request& req);

// Decides an upgrade to `room` (whose settings are `settings`) at `now_s` (seconds since the epoch).
Admission admit(const proto::Request& req, std::string_view room, const config::RoomSettings& settings,
                const config::Config& c, const auth::KeySet& keys, int64_t now_s);

// The 401/403 response for a refused admission, with its WWW-Authenticate header.
std::string refusal_response(const Admission& a);

// Compares a presented API key with the configured ones in time that does not depend on where they
// differ (CRYPTO_memcmp over equal lengths; every key is tried).
bool api_key_valid(std::string_view presented, const std::vector<std::string>& keys) noexcept;

}  // namespace wsrelay::relay
