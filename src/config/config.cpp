// SPDX-License-Identifier: Apache-2.0
#include "config/config.h"

#include <toml++/toml.h>

#include <charconv>
#include <fstream>
#include <functional>
#include <cstring>
#include <sstream>

namespace wsrelay::config {
namespace {

// Thrown inside this file only, caught in parse_config(): the walk below stays readable, and no
// exception leaves the config layer.
struct ConfigError {
    std::string message;
};

class Walker {
public:
    explicit Walker(std::string_view source) : source_(source) {}

    [[noreturn]] void fail(const toml::node* node, const std::string& key, const std::string& what) const {
        std::ostringstream m;
        m << source_;
        if (node && node->source().begin) m << ':' << node->source().begin.line << ':' << node->source().begin.column;
        m << ": " << key << ": " << what;
        throw ConfigError{m.str()};
    }

    static std::string type_name(const toml::node& n) {
        switch (n.type()) {
            case toml::node_type::table: return "a table";
            case toml::node_type::array: return "an array";
            case toml::node_type::string: return "a string";
            case toml::node_type::integer: return "an integer";
            case toml::node_type::floating_point: return "a float";
            case toml::node_type::boolean: return "a boolean";
            default: return "a date/time";
        }
    }

    // Checks that `table` has only the keys in `known`.
    void only_keys(const toml::table& table, const std::string& prefix, std::initializer_list<std::string_view> known) const {
        for (const auto& [k, v] : table) {
            bool found = false;
            for (auto n : known) found = found || k.str() == n;
            if (!found) fail(&v, prefix + std::string(k.str()), "unknown key");
        }
    }

    const toml::table* table(const toml::table& parent, std::string_view key, const std::string& path) const {
        const toml::node* n = parent.get(key);
        if (!n) return nullptr;
        if (!n->is_table()) fail(n, path, "expected a table, got " + type_name(*n));
        return n->as_table();
    }

    void boolean(const toml::table& t, std::string_view key, const std::string& path, bool& out) const {
        if (const toml::node* n = t.get(key)) {
            if (!n->is_boolean()) fail(n, path, "expected a boolean (true or false), got " + type_name(*n));
            out = n->as_boolean()->get();
        }
    }

    void string(const toml::table& t, std::string_view key, const std::string& path, std::string& out) const {
        if (const toml::node* n = t.get(key)) {
            if (!n->is_string()) fail(n, path, "expected a string, got " + type_name(*n));
            out = n->as_string()->get();
        }
    }

    template <class Int>
    void integer(const toml::table& t, std::string_view key, const std::string& path, Int& out, int64_t min,
                 int64_t max) const {
        if (const toml::node* n = t.get(key)) {
            if (!n->is_integer()) fail(n, path, "expected an integer, got " + type_name(*n));
            const int64_t v = n->as_integer()->get();
            if (v < min || v > max)
                fail(n, path, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                                  std::to_string(v));
            out = static_cast<Int>(v);
        }
    }

    void duration(const toml::table& t, std::string_view key, const std::string& path, uint64_t& out_ms,
                  uint64_t min_ms) const {
        if (const toml::node* n = t.get(key)) {
            if (!n->is_string()) fail(n, path, "expected a duration string like \"10s\" or \"500ms\", got " + type_name(*n));
            uint64_t ms = 0;
            if (!parse_duration_ms(n->as_string()->get(), ms))
                fail(n, path, "malformed duration \"" + n->as_string()->get() + "\" (use e.g. \"250ms\", \"10s\", \"5m\", \"1h\")");
            if (ms < min_ms) fail(n, path, "must be at least " + format_duration(min_ms));
            out_ms = ms;
        }
    }

    // One of two words, each standing for a value of `out`; absent: `out` stays.
    template <class T>
    void choice(const toml::table& t, std::string_view key, const std::string& path, T& out,
                std::pair<std::string_view, T> a, std::pair<std::string_view, T> b) const {
        const toml::node* n = t.get(key);
        if (!n) return;
        std::string text;
        string(t, key, path, text);
        if (text == a.first) out = a.second;
        else if (text == b.first) out = b.second;
        else fail(n, path, "expected \"" + std::string(a.first) + "\" or \"" + std::string(b.first) + "\", got \"" + text + "\"");
    }
    void action(const toml::table& t, std::string_view key, const std::string& path, LimitAction& out) const {
        choice(t, key, path, out, {"close", LimitAction::Close}, {"drop", LimitAction::Drop});
    }
    void room_auth(const toml::table& t, std::string_view key, const std::string& path, RoomAuth& out) const {
        choice(t, key, path, out, {"open", RoomAuth::Open}, {"token", RoomAuth::Token});
    }

    void room(const toml::table& t, const std::string& prefix, RoomSettings& out) const {
        boolean(t, "echo", prefix + "echo", out.echo);
        integer(t, "max_members", prefix + "max_members", out.max_members, 0, 100'000'000);
    }

private:
    std::string source_;
};

void walk(const toml::table& root, const Walker& w, Config& c) {
    w.only_keys(root, "", {"server", "listen", "tls", "deflate", "limits", "timeouts", "rooms", "room", "cluster",
                           "auth", "api"});
    const toml::node* workers_node = nullptr;

    if (const auto* s = w.table(root, "server", "server")) {
        w.only_keys(*s, "server.", {"www_root", "log_level", "healthz", "workers"});
        w.string(*s, "www_root", "server.www_root", c.www_root);
        std::string level(util::log_level_name(c.log_level));
        w.string(*s, "log_level", "server.log_level", level);
        const auto parsed = util::parse_log_level(level);
        if (!parsed) w.fail(s->get("log_level"), "server.log_level", "expected one of err, warning, notice, info, debug");
        c.log_level = *parsed;
        w.boolean(*s, "healthz", "server.healthz", c.healthz);
        if (const toml::node* n = s->get("workers")) {
            if (n->is_string()) {
                if (n->as_string()->get() != "auto")
                    w.fail(n, "server.workers", "expected a number of processes or \"auto\", got \"" +
                                                    n->as_string()->get() + "\"");
                c.workers = 0;
            } else {
                w.integer(*s, "workers", "server.workers", c.workers, 1, kMaxWorkers);
            }
            workers_node = n;
        }
    }

    if (const toml::node* n = root.get("listen")) {
        const toml::array* arr = n->as_array();
        if (!arr || !arr->is_array_of_tables()) w.fail(n, "listen", "expected [[listen]] tables");
        size_t i = 0;
        for (const toml::node& item : *arr) {
            const std::string prefix = "listen[" + std::to_string(i++) + "].";
            const toml::table& t = *item.as_table();
            w.only_keys(t, prefix, {"address", "tls", "name", "metrics", "api"});
            Listen l;
            w.string(t, "address", prefix + "address", l.address);
            w.boolean(t, "tls", prefix + "tls", l.tls);
            w.string(t, "name", prefix + "name", l.name);
            w.boolean(t, "metrics", prefix + "metrics", l.metrics);
            w.boolean(t, "api", prefix + "api", l.api);
            if (!t.get("address")) w.fail(&item, prefix + "address", "missing (e.g. address = \"127.0.0.1:8080\")");
            const auto a = util::parse_socket_address(l.address);
            if (!a) w.fail(t.get("address"), prefix + "address", "expected \"IPv4:port\" or \"[IPv6]:port\", got \"" + l.address + "\"");
            l.socket_address = *a;
            c.listen.push_back(std::move(l));
        }
        c.explicit_listen = !c.listen.empty();
    }

    if (const auto* t = w.table(root, "tls", "tls")) {
        w.only_keys(*t, "tls.", {"certificate", "private_key", "min_version", "ciphers", "ciphersuites",
                                 "session_tickets", "sni"});
        w.string(*t, "certificate", "tls.certificate", c.tls.certificate);
        w.string(*t, "private_key", "tls.private_key", c.tls.private_key);
        w.string(*t, "min_version", "tls.min_version", c.tls.min_version);
        if (c.tls.min_version != "1.2" && c.tls.min_version != "1.3")
            w.fail(t->get("min_version"), "tls.min_version", "expected \"1.2\" or \"1.3\", got \"" + c.tls.min_version + "\"");
        w.string(*t, "ciphers", "tls.ciphers", c.tls.ciphers);
        w.string(*t, "ciphersuites", "tls.ciphersuites", c.tls.ciphersuites);
        w.boolean(*t, "session_tickets", "tls.session_tickets", c.tls.session_tickets);
        if (const toml::node* n = t->get("sni")) {
            const toml::array* arr = n->as_array();
            if (!arr || !arr->is_array_of_tables()) w.fail(n, "tls.sni", "expected [[tls.sni]] tables");
            size_t i = 0;
            for (const toml::node& item : *arr) {
                const std::string prefix = "tls.sni[" + std::to_string(i++) + "].";
                const toml::table& e = *item.as_table();
                w.only_keys(e, prefix, {"server_name", "certificate", "private_key"});
                TlsCertificate cert;
                w.string(e, "server_name", prefix + "server_name", cert.server_name);
                w.string(e, "certificate", prefix + "certificate", cert.certificate);
                w.string(e, "private_key", prefix + "private_key", cert.private_key);
                for (const char* key : {"server_name", "certificate", "private_key"})
                    if (!e.get(key)) w.fail(&item, prefix + key, "missing");
                c.tls.sni.push_back(std::move(cert));
            }
        }
    }
    for (size_t i = 0; i < c.listen.size(); ++i) {
        if (!c.listen[i].tls) continue;
        if (c.tls.certificate.empty() || c.tls.private_key.empty()) {
            const toml::node* at = root.get("tls") ? root.get("tls") : root.get("listen");
            w.fail(at, c.tls.certificate.empty() ? "tls.certificate" : "tls.private_key",
                   "required because listen[" + std::to_string(i) + "] has tls = true");
        }
    }

    if (const auto* d = w.table(root, "deflate", "deflate")) {
        w.only_keys(*d, "deflate.", {"enabled", "server_max_window_bits", "client_max_window_bits", "level", "min_bytes"});
        w.boolean(*d, "enabled", "deflate.enabled", c.deflate);
        // 9, not 8: zlib cannot compress with a 256-byte window (RFC 7692 allows 8..15).
        w.integer(*d, "server_max_window_bits", "deflate.server_max_window_bits", c.deflate_server_max_window_bits, 9, 15);
        w.integer(*d, "client_max_window_bits", "deflate.client_max_window_bits", c.deflate_client_max_window_bits, 8, 15);
        w.integer(*d, "level", "deflate.level", c.deflate_level, 1, 9);
        w.integer(*d, "min_bytes", "deflate.min_bytes", c.deflate_min_bytes, 0, int64_t{1} << 32);
    }

    if (const auto* l = w.table(root, "limits", "limits")) {
        w.only_keys(*l, "limits.", {"max_connections", "max_connections_per_ip", "message_rate", "message_burst",
                                    "rate_limit_action", "max_header_bytes", "max_header_count", "max_message_bytes",
                                    "send_queue_bytes", "slow_consumer", "allowed_origins"});
        w.integer(*l, "max_connections", "limits.max_connections", c.max_connections, 1, 10'000'000);
        w.integer(*l, "max_connections_per_ip", "limits.max_connections_per_ip", c.max_connections_per_ip, 0, 10'000'000);
        w.integer(*l, "message_rate", "limits.message_rate", c.message_rate, 0, 100'000'000);
        w.integer(*l, "message_burst", "limits.message_burst", c.message_burst, 1, 100'000'000);
        w.action(*l, "rate_limit_action", "limits.rate_limit_action", c.rate_limit_action);
        w.integer(*l, "max_header_bytes", "limits.max_header_bytes", c.max_header_bytes, 256, 65536);
        w.integer(*l, "max_header_count", "limits.max_header_count", c.max_header_count, 4, 1000);
        w.integer(*l, "max_message_bytes", "limits.max_message_bytes", c.max_message_bytes, 125, int64_t{1} << 32);
        w.integer(*l, "send_queue_bytes", "limits.send_queue_bytes", c.send_queue_bytes, 1024, int64_t{1} << 34);
        w.action(*l, "slow_consumer", "limits.slow_consumer", c.slow_consumer);
        if (const toml::node* n = l->get("allowed_origins")) {
            const toml::array* arr = n->as_array();
            if (!arr) w.fail(n, "limits.allowed_origins", "expected an array of strings, got " + Walker::type_name(*n));
            for (const toml::node& o : *arr) {
                if (!o.is_string()) w.fail(&o, "limits.allowed_origins", "expected strings, got " + Walker::type_name(o));
                c.allowed_origins.push_back(o.as_string()->get());
            }
        }
        if (c.send_queue_bytes < c.max_message_bytes + 14) {
            const toml::node* at = l->get("send_queue_bytes") ? l->get("send_queue_bytes") : l->get("max_message_bytes");
            w.fail(at, "limits.send_queue_bytes",
                   "must be at least max_message_bytes + 14 (" + std::to_string(c.max_message_bytes + 14) +
                       ") so that one whole message fits");
        }
    }

    if (const auto* t = w.table(root, "timeouts", "timeouts")) {
        w.only_keys(*t, "timeouts.", {"handshake_timeout", "ping_interval", "idle_timeout", "close_timeout", "shutdown_timeout"});
        w.duration(*t, "handshake_timeout", "timeouts.handshake_timeout", c.handshake_timeout_ms, 10);
        w.duration(*t, "ping_interval", "timeouts.ping_interval", c.ping_interval_ms, 10);
        w.duration(*t, "idle_timeout", "timeouts.idle_timeout", c.idle_timeout_ms, 10);
        w.duration(*t, "close_timeout", "timeouts.close_timeout", c.close_timeout_ms, 10);
        w.duration(*t, "shutdown_timeout", "timeouts.shutdown_timeout", c.shutdown_timeout_ms, 10);
        if (c.idle_timeout_ms <= c.ping_interval_ms) {
            const toml::node* at = t->get("idle_timeout") ? t->get("idle_timeout") : t->get("ping_interval");
            w.fail(at, "timeouts.idle_timeout", "must be longer than ping_interval (" + format_duration(c.ping_interval_ms) + ")");
        }
    }

    if (const auto* k = w.table(root, "cluster", "cluster")) {
        w.only_keys(*k, "cluster.", {"redis", "password_file", "channel_prefix", "node_id", "max_pending_bytes"});
        w.string(*k, "redis", "cluster.redis", c.cluster.redis);
        std::string error;
        if (!c.cluster.redis.empty() && !parse_redis_url(c.cluster.redis, c.cluster, error))
            w.fail(k->get("redis"), "cluster.redis", error);
        w.string(*k, "password_file", "cluster.password_file", c.cluster.password_file);
        w.string(*k, "channel_prefix", "cluster.channel_prefix", c.cluster.channel_prefix);
        // Redis channel names are binary-safe, but a prefix is typed into redis-cli and ACL rules.
        for (const char ch : c.cluster.channel_prefix)
            if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7F)
                w.fail(k->get("channel_prefix"), "cluster.channel_prefix", "must not contain spaces or control characters");
        w.string(*k, "node_id", "cluster.node_id", c.cluster.node_id);
        if (c.cluster.node_id.size() > 200)
            w.fail(k->get("node_id"), "cluster.node_id", "at most 200 bytes");
        w.integer(*k, "max_pending_bytes", "cluster.max_pending_bytes", c.cluster.max_pending_bytes, 65536,
                  int64_t{1} << 40);
    }

    if (const auto* a = w.table(root, "auth", "auth")) {
        w.only_keys(*a, "auth.", {"default", "hmac_secret_file", "public_key_file", "audience", "issuer", "leeway",
                                  "expire_connections", "listen_only_action"});
        RoomAuth def = RoomAuth::Open;
        w.room_auth(*a, "default", "auth.default", def);
        c.auth.token_by_default = def == RoomAuth::Token;
        w.string(*a, "hmac_secret_file", "auth.hmac_secret_file", c.auth.hmac_secret_file);
        w.string(*a, "public_key_file", "auth.public_key_file", c.auth.public_key_file);
        w.string(*a, "audience", "auth.audience", c.auth.audience);
        w.string(*a, "issuer", "auth.issuer", c.auth.issuer);
        w.duration(*a, "leeway", "auth.leeway", c.auth.leeway_ms, 0);
        if (c.auth.leeway_ms > 24 * 3600 * 1000) w.fail(a->get("leeway"), "auth.leeway", "at most 24h");
        w.boolean(*a, "expire_connections", "auth.expire_connections", c.auth.expire_connections);
        w.action(*a, "listen_only_action", "auth.listen_only_action", c.auth.listen_only_action);
        if (c.auth.token_by_default && !c.auth.has_keys())
            w.fail(a->get("default"), "auth.default",
                   "\"token\" rooms need auth.hmac_secret_file or auth.public_key_file");
    }
    if (const auto* p = w.table(root, "api", "api")) {
        w.only_keys(*p, "api.", {"key_file"});
        w.string(*p, "key_file", "api.key_file", c.api_key_file);
    }

    if (const auto* r = w.table(root, "rooms", "rooms")) {
        w.only_keys(*r, "rooms.", {"echo", "max_members"});
        w.room(*r, "rooms.", c.rooms);
    }
    if (const toml::node* n = root.get("room")) {
        const toml::array* arr = n->as_array();
        if (!arr || !arr->is_array_of_tables()) w.fail(n, "room", "expected [[room]] tables");
        size_t i = 0;
        for (const toml::node& item : *arr) {
            const std::string prefix = "room[" + std::to_string(i++) + "].";
            const toml::table& t = *item.as_table();
            w.only_keys(t, prefix, {"path", "echo", "max_members", "auth"});
            std::string path;
            w.string(t, "path", prefix + "path", path);
            if (path.empty() || path.front() != '/')
                w.fail(t.get("path") ? t.get("path") : &item, prefix + "path", "expected a path starting with '/', e.g. \"/lobby\"");
            if (c.room_overrides.contains(path)) w.fail(t.get("path"), prefix + "path", "room \"" + path + "\" configured twice");
            RoomSettings s = c.rooms;  // unspecified keys inherit [rooms]
            w.room(t, prefix, s);
            w.room_auth(t, "auth", prefix + "auth", s.auth);
            if (s.auth == RoomAuth::Token && !c.auth.has_keys())
                w.fail(t.get("auth"), prefix + "auth",
                       "\"token\" rooms need auth.hmac_secret_file or auth.public_key_file");
            c.room_overrides.emplace(path, s);
        }
    }
    // Each worker has its own rooms: without a backplane, members of one room on different
    // workers would never hear each other.
    if (workers_node && c.workers != 1 && !c.cluster.enabled())
        w.fail(workers_node, "server.workers",
               "more than one worker needs [cluster] redis: workers share rooms through it (see wsrelay.toml(5))");
}

}  // namespace

bool parse_redis_url(std::string_view url, Cluster& out, std::string& error) {
    out.host.clear();
    out.unix_path.clear();
    out.url_password.clear();
    out.port = 6379;
    out.db = 0;
    if (url.starts_with("unix:")) {
        out.unix_path = std::string(url.substr(5));
        if (out.unix_path.empty() || out.unix_path.front() != '/') {
            error = "expected \"unix:/absolute/path.sock\"";
            return false;
        }
        return true;
    }
    if (!url.starts_with("redis://")) {
        error = "expected \"redis://[:password@]host:port[/db]\" or \"unix:/path\"";
        return false;
    }
    std::string_view rest = url.substr(8);
    if (const size_t at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view auth = rest.substr(0, at);
        rest = rest.substr(at + 1);
        if (auth.empty() || auth.front() != ':') {
            error = "a password is written \"redis://:password@host:port\" (no user name)";
            return false;
        }
        out.url_password = std::string(auth.substr(1));
    }
    std::string_view hostport = rest;
    if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
        hostport = rest.substr(0, slash);
        const std::string_view db = rest.substr(slash + 1);
        uint32_t n = 0;
        const auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), n);
        if (db.empty() || ec != std::errc{} || end != db.data() + db.size() || n > 100'000) {
            error = "the database after '/' must be a number, got \"" + std::string(db) + "\"";
            return false;
        }
        out.db = n;
    }
    std::string_view host = hostport;
    std::string_view port;
    if (hostport.starts_with('[')) {  // [IPv6]:port
        const size_t close = hostport.find(']');
        if (close == std::string_view::npos) {
            error = "unterminated [IPv6 address]";
            return false;
        }
        host = hostport.substr(1, close - 1);
        const std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                error = "expected ':port' after the [IPv6 address]";
                return false;
            }
            port = after.substr(1);
        }
    } else if (const size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
        host = hostport.substr(0, colon);
        port = hostport.substr(colon + 1);
    }
    if (host.empty()) {
        error = "no host in \"" + std::string(hostport) + "\"";
        return false;
    }
    if (!port.empty()) {
        unsigned n = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
        if (ec != std::errc{} || end != port.data() + port.size() || n == 0 || n > 65535) {
            error = "bad port \"" + std::string(port) + "\"";
            return false;
        }
        out.port = static_cast<uint16_t>(n);
    }
    out.host = std::string(host);
    return true;
}

std::string Cluster::endpoint() const {
    if (!unix_path.empty()) return "unix:" + unix_path;
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + (db ? "/" + std::to_string(db) : "");
}

bool Config::any_tls() const {
    for (const Listen& l : listen)
        if (l.tls) return true;
    return false;
}

const RoomSettings& Config::room_settings(std::string_view path) const {
    const auto it = room_overrides.find(path);
    return it == room_overrides.end() ? rooms : it->second;
}

bool parse_duration_ms(std::string_view text, uint64_t& out_ms) noexcept {
    uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end == text.data()) return false;
    const std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
    uint64_t scale;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m" || unit == "min") scale = 60'000;
    else if (unit == "h") scale = 3'600'000;
    else return false;
    if (value > UINT64_MAX / scale / 1000) return false;
    out_ms = value * scale;
    return true;
}

std::string format_duration(uint64_t ms) {
    if (ms % 3'600'000 == 0 && ms) return std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0 && ms) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0 && ms) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

Config default_config() {
    Config c;
    Listen l;
    l.address = std::string(kDefaultListen);
    l.socket_address = *util::parse_socket_address(kDefaultListen);
    c.listen.push_back(std::move(l));
    return c;
}

LoadResult parse_config(std::string_view text, std::string_view source) {
    LoadResult r;
    Walker w(source);
    try {
        const toml::table root = toml::parse(text, source);
        r.config.source = std::string(source);
        walk(root, w, r.config);
        if (r.config.listen.empty()) r.config.listen = default_config().listen;
        r.ok = true;
    } catch (const toml::parse_error& e) {
        std::ostringstream m;
        m << source << ':' << e.source().begin.line << ':' << e.source().begin.column << ": syntax error: "
          << e.description();
        r.error = m.str();
    } catch (const ConfigError& e) {
        r.error = e.message;
    }
    return r;
}

LoadResult load_config_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        LoadResult r;
        r.error = path + ": cannot open: " + std::strerror(errno);
        return r;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) {
        LoadResult r;
        r.error = path + ": cannot read: " + std::strerror(errno);
        return r;
    }
    return parse_config(buf.str(), path);
}

}  // namespace wsrelay::config
