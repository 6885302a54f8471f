// SPDX-License-Identifier: Apache-2.0
// [auth] admission of upgrade requests (relay/access.h): where the token is taken from, open and
// token rooms, the refusals and their WWW-Authenticate header, listen-only and expiry data; and
// the API key comparison. Tokens are HS256, minted here with OpenSSL.
#include <catch2/catch.hpp>
#include <span>
#include <string>

#include "auth/mint.h"
#include "config/config.h"
#include "proto/handshake.h"
#include "relay/access.h"

namespace {

using wsrelay::relay::admit;
using wsrelay::relay::Admission;

const std::string kSecret = "unit-test-secret-0123456789-abcdefghijkl";

std::string hs256(const std::string& claims_json, const std::string& secret = kSecret) {
    return wsrelay::test::hs256(claims_json, secret);
}

// A parsed upgrade request for `target` with the given extra header lines; kept alive with its text.
struct Upgrade {
    std::string text;
    wsrelay::proto::RequestParser parser;
    explicit Upgrade(const std::string& target, const std::string& headers = "") {
        text = "GET " + target + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + headers + "\r\n";
        const auto r = parser.parse(std::as_bytes(std::span(text.data(), text.size())));
        REQUIRE(r.status == wsrelay::proto::ParseStatus::Done);
    }
    const wsrelay::proto::Request& req() const { return parser.request(); }
};

wsrelay::config::Config config(const std::string& toml) {
    const auto r = wsrelay::config::parse_config(toml, "t.toml");
    INFO(r.error);
    REQUIRE(r.ok);
    return r.config;
}

constexpr int64_t kNow = 1'800'000'000;

}  // namespace

TEST_CASE("access: the token comes from ?token= (percent-decoded) or Authorization: Bearer", "[access]") {
    CHECK(wsrelay::relay::request_token(Upgrade("/r").req()).empty());
    CHECK(wsrelay::relay::request_token(Upgrade("/r?token=a.b.c").req()) == "a.b.c");
    CHECK(wsrelay::relay::request_token(Upgrade("/r?x=1&token=a%2Eb.c&y=2").req()) == "a.b.c");
    CHECK(wsrelay::relay::request_token(Upgrade("/r?tokens=no").req()).empty());
    CHECK(wsrelay::relay::request_token(Upgrade("/r", "Authorization: Bearer  h.p.s\r\n").req()) == "h.p.s");
    CHECK(wsrelay::relay::request_token(Upgrade("/r", "Authorization: bearer h.p.s\r\n").req()) == "h.p.s");
    CHECK(wsrelay::relay::request_token(Upgrade("/r", "Authorization: Basic dXNlcjpwdw==\r\n").req()).empty());
    // The query parameter wins (a browser cannot set the header; a proxy might add one).
    CHECK(wsrelay::relay::request_token(Upgrade("/r?token=q.q.q", "Authorization: Bearer h.h.h\r\n").req()) == "q.q.q");
}

TEST_CASE("access: token rooms, open rooms, refusals", "[access]") {
    const auto c = config("[auth]\nhmac_secret_file = \"/unused\"\nleeway = \"10s\"\n[[room]]\npath = \"/team/a\"\nauth = \"token\"\n");
    wsrelay::relay::Credentials cred;
    {
        wsrelay::auth::KeySet keys;
        keys.set_hmac_secret(kSecret);
        cred.tokens = std::make_shared<const wsrelay::auth::KeySet>(std::move(keys));
    }
    const auto decide = [&](const std::string& target, const std::string& headers = "") {
        const Upgrade u(target, headers);
        const std::string room(u.req().path);
        return admit(u.req(), room, c.room_settings(room), c, *cred.tokens, kNow);
    };
    const std::string good = hs256(R"({"sub":"alice","rooms":["/team/*"],"exp":)" + std::to_string(kNow + 60) + "}");

    SECTION("a token room admits a valid token naming it, with its user and expiry") {
        const Admission a = decide("/team/a?token=" + good);
        CHECK(a.status == 0);
        CHECK(a.has_token);
        CHECK(a.user == "alice");
        CHECK(a.publish);
        CHECK(a.expires_s == kNow + 60 + 10);  // exp + leeway
        CHECK(decide("/team/a", "Authorization: Bearer " + good + "\r\n").status == 0);
    }
    SECTION("no token: 401 invalid_request") {
        const Admission a = decide("/team/a");
        CHECK(a.status == 401);
        CHECK(a.error == "invalid_request");
        CHECK(a.description == "no token");
        const std::string r = wsrelay::relay::refusal_response(a);
        CHECK(r.rfind("HTTP/1.1 401 Unauthorized\r\n", 0) == 0);
        CHECK(r.find("\r\nWWW-Authenticate: Bearer realm=\"wsrelay\", error=\"invalid_request\", "
                     "error_description=\"no token\"\r\n") != std::string::npos);
        CHECK(r.find("\r\nConnection: close\r\n") != std::string::npos);
        CHECK(r.ends_with("\r\n\r\n401 Unauthorized: no token\n"));
    }
    SECTION("an invalid token: 401 invalid_token with the reason, never the token") {
        const std::string forged = hs256(R"({"sub":"mallory","rooms":["/*"]})", "another-secret-0123456789-0123456789");
        const Admission a = decide("/team/a?token=" + forged);
        CHECK(a.status == 401);
        CHECK(a.error == "invalid_token");
        CHECK(a.description == "bad signature");
        CHECK(wsrelay::relay::refusal_response(a).find(forged) == std::string::npos);
        const std::string expired = hs256(R"({"rooms":["/team/a"],"exp":)" + std::to_string(kNow - 11) + "}");
        CHECK(decide("/team/a?token=" + expired).description == "token expired");
        const std::string in_leeway = hs256(R"({"rooms":["/team/a"],"exp":)" + std::to_string(kNow - 9) + "}");
        CHECK(decide("/team/a?token=" + in_leeway).status == 0);
    }
    SECTION("a valid token for other rooms: 403 insufficient_scope") {
        const std::string other = hs256(R"({"rooms":["/team/b","/team"]})");
        const Admission a = decide("/team/a?token=" + other);
        CHECK(a.status == 403);
        CHECK(a.error == "insufficient_scope");
        CHECK(wsrelay::relay::refusal_response(a).rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
        CHECK(decide("/team/a?token=" + hs256(R"({"sub":"x"})")).status == 403);  // no rooms claim: none
    }
    SECTION("an open room needs no token, but one that is given must be valid; its rooms are not checked") {
        const Admission none = decide("/lobby");
        CHECK(none.status == 0);
        CHECK_FALSE(none.has_token);
        CHECK(none.user.empty());
        CHECK(decide("/lobby?token=garbage").status == 401);
        const Admission listener = decide("/lobby?token=" + hs256(R"({"sub":"bob","rooms":[],"publish":false})"));
        CHECK(listener.status == 0);
        CHECK(listener.user == "bob");
        CHECK_FALSE(listener.publish);
        CHECK(listener.expires_s == 0);
    }
    SECTION("with no keys at all, a token on an open room is ignored") {
        const auto open = config("");
        const wsrelay::auth::KeySet none;
        const Upgrade u("/lobby?token=garbage");
        const Admission a = admit(u.req(), "/lobby", open.room_settings("/lobby"), open, none, kNow);
        CHECK(a.status == 0);
        CHECK_FALSE(a.has_token);
    }
}

TEST_CASE("access: API keys are compared whole", "[access]") {
    const std::vector<std::string> keys{"first-key", "second-key"};
    CHECK(wsrelay::relay::api_key_valid("first-key", keys));
    CHECK(wsrelay::relay::api_key_valid("second-key", keys));
    CHECK_FALSE(wsrelay::relay::api_key_valid("first-ke", keys));
    CHECK_FALSE(wsrelay::relay::api_key_valid("first-key2", keys));
    CHECK_FALSE(wsrelay::relay::api_key_valid("", keys));
    CHECK_FALSE(wsrelay::relay::api_key_valid("first-key", {}));
}
