// SPDX-License-Identifier: Apache-2.0
// The validated configuration: TOML text in, a Config or one error message out. Pure: no I/O
// besides reading the file in load_config_file(), no logging, no sockets.
//
// Every key has a default (the embedded defaults are `Config{}` plus one listener on
// 127.0.0.1:8080). An error names the file, line, column and dotted key:
//     /etc/wsrelay/wsrelay.toml:12:21: limits.max_message_bytes: expected an integer, got a string
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/address.h"
#include "util/log.h"

namespace wsrelay::config {

struct Listen {
    std::string address;  // as written, e.g. "[::1]:8080"
    util::SocketAddress socket_address;
    bool tls = false;
    std::string name;     // FileDescriptorName= of the systemd socket that provides it, if any
    bool metrics = false; // serve GET /metrics (Prometheus) on this listener
    bool api = false;     // serve the HTTP API for backends (/api/...) on this listener
};

struct TlsCertificate {
    std::string server_name;  // SNI name or "*.domain"; empty for the default certificate
    std::string certificate;  // PEM chain file, leaf first
    std::string private_key;  // PEM key file
    bool operator==(const TlsCertificate&) const = default;
};

// Modern defaults (forward secrecy, AEAD only) for TLS 1.2; TLS 1.3 suites are all AEAD.
constexpr std::string_view kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr std::string_view kDefaultCiphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

struct Tls {
    std::string certificate;
    std::string private_key;
    std::string min_version = "1.2";  // "1.2" or "1.3"
    std::string ciphers{kDefaultCiphers};
    std::string ciphersuites{kDefaultCiphersuites};
    bool session_tickets = true;
    std::vector<TlsCertificate> sni;  // [[tls.sni]]
    bool operator==(const Tls&) const = default;
};

// [cluster]: rooms shared with other instances through a Redis pub/sub backplane.
struct Cluster {
    std::string redis;  // as written: "redis://[:password@]host:port[/db]" or "unix:/path"; empty: off
    // Parsed from `redis` (valid whenever `redis` is not empty).
    std::string host;         // TCP host (name or address); empty for a unix socket
    uint16_t port = 6379;
    std::string unix_path;    // unix socket path; empty for TCP
    std::string url_password; // from the URL (password_file is preferred)
    uint32_t db = 0;
    std::string password_file;  // first line is the password; read at start and on reload
    std::string channel_prefix = "wsrelay:";
    std::string node_id;        // empty: hostname:pid
    uint64_t max_pending_bytes = 16 << 20;
    // Resolved by the daemon when it loads the file (never logged): password_file's first line,
    // else the URL's password.
    std::string password;
    bool enabled() const noexcept { return !redis.empty(); }
    // Where the link goes, for logs: "127.0.0.1:6379" or "unix:/run/redis/redis.sock" (no password).
    std::string endpoint() const;
    bool operator==(const Cluster&) const = default;
};

// Parses a [cluster] redis URL into `out` (host/port/unix_path/url_password/db). False with `error`
// saying what is wrong.
bool parse_redis_url(std::string_view url, Cluster& out, std::string& error);

// What a per-connection limit does when it trips: close the connection with 1008, or drop the
// message (and count it).
enum class LimitAction : uint8_t { Close, Drop };

// Who may join a room: anyone, or a member with a valid token naming it. Default: auth.default.
enum class RoomAuth : uint8_t { Default, Open, Token };

struct RoomSettings {
    bool echo = true;
    RoomAuth auth = RoomAuth::Default;
    uint32_t max_members = 0;  // 0: no limit
    bool operator==(const RoomSettings&) const = default;
};

// [auth]: signed tokens (JWT) for room access. The key files are read by the daemon (at start and
// on SIGHUP), never here.
struct Auth {
    bool token_by_default = false;  // default = "token"
    std::string hmac_secret_file;   // HS256 secret: the file's first line
    std::string public_key_file;    // PEM public keys (RS256, ES256, EdDSA); several: rotation
    std::string audience;           // non-empty: a token's aud must contain it
    std::string issuer;             // non-empty: a token's iss must equal it
    uint64_t leeway_ms = 30'000;    // clock skew allowed for exp / nbf
    bool expire_connections = false;  // close with 1008 "token expired" once exp + leeway passes
    LimitAction listen_only_action = LimitAction::Close;  // a publish = false member sends a message
    bool has_keys() const noexcept { return !hmac_secret_file.empty() || !public_key_file.empty(); }
    bool operator==(const Auth&) const = default;
};

// Worker processes allowed in [server] workers.
inline constexpr int64_t kMaxWorkers = 1024;

struct Config {
    std::string source = "<defaults>";  // the file it came from

    // [server]
    std::string www_root;  // empty: the embedded chat page
    util::LogLevel log_level = util::LogLevel::Info;
    bool healthz = true;
    // Reactor processes: 1 (one process, the default), N, or 0 for "auto" (one per CPU the
    // process may run on, resolved at startup by the daemon). More than one needs [cluster] redis.
    uint32_t workers = 1;

    std::vector<Listen> listen;  // [[listen]]; the default listener when the file has none
    bool explicit_listen = false;  // listeners came from [[listen]] or --listen, not the default

    // [limits]
    uint64_t max_connections = 10000;
    uint64_t max_connections_per_ip = 1000;  // 0: no limit
    uint64_t message_rate = 1000;            // messages per second per connection (token bucket); 0: no limit
    uint64_t message_burst = 1000;           // bucket size
    LimitAction rate_limit_action = LimitAction::Close;  // Close: 1008; Drop: skip the message
    uint64_t max_header_bytes = 8192;
    uint64_t max_header_count = 64;
    uint64_t max_message_bytes = 1 << 20;
    uint64_t send_queue_bytes = 4 << 20;
    LimitAction slow_consumer = LimitAction::Close;
    std::vector<std::string> allowed_origins;

    // [timeouts], in milliseconds
    uint64_t handshake_timeout_ms = 10'000;
    uint64_t ping_interval_ms = 30'000;
    uint64_t idle_timeout_ms = 60'000;
    uint64_t close_timeout_ms = 5'000;
    uint64_t shutdown_timeout_ms = 10'000;

    Tls tls;  // [tls], used by [[listen]] entries with tls = true

    // [deflate]: permessage-deflate (RFC 7692), off unless enabled
    bool deflate = false;
    uint64_t deflate_server_max_window_bits = 15;
    uint64_t deflate_client_max_window_bits = 15;
    uint64_t deflate_level = 6;
    uint64_t deflate_min_bytes = 256;  // smaller messages are sent uncompressed

    Cluster cluster;  // [cluster]
    Auth auth;        // [auth]
    std::string api_key_file;  // [api] key_file: bearer keys of the HTTP API, one per line; empty: 503

    // [rooms] and [[room]]
    RoomSettings rooms;
    std::map<std::string, RoomSettings, std::less<>> room_overrides;  // by exact path

    // The settings of the room at `path`: its [[room]] entry's, else the [rooms] table's.
    const RoomSettings& room_settings(std::string_view path) const;
    // Whether joining a room with these settings needs a token (its auth, else auth.default).
    bool token_required(const RoomSettings& s) const noexcept {
        return s.auth == RoomAuth::Token || (s.auth == RoomAuth::Default && auth.token_by_default);
    }
    bool any_tls() const;
};

constexpr std::string_view kDefaultListen = "127.0.0.1:8080";

struct LoadResult {
    bool ok = false;
    Config config;
    std::string error;  // "FILE:LINE:COL: KEY: what is wrong" when !ok
};

// Parses TOML text; `source` names it in errors (a path, or "<command line>").
LoadResult parse_config(std::string_view text, std::string_view source);
// Reads and parses a file; a missing or unreadable file is an error naming it.
LoadResult load_config_file(const std::string& path);
// The embedded defaults with the default listener filled in.
Config default_config();

// "1500ms" -> 1500, "10s" -> 10000, "5m", "1h". Integers only; nullopt when malformed.
bool parse_duration_ms(std::string_view text, uint64_t& out_ms) noexcept;
std::string format_duration(uint64_t ms);

}  // namespace wsrelay::config
