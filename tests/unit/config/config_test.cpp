// SPDX-License-Identifier: Apache-2.0
// config/: TOML text -> Config or an error naming file, line, column and key.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "config/config.h"

using wsrelay::config::Config;
using wsrelay::config::parse_config;

namespace {

std::string repo_file(const std::string& rel) {
    std::ifstream in(std::string(WSRELAY_SOURCE_DIR) + "/" + rel);
    REQUIRE(in);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Every field a user can set, compared one by one so a failure names the field.
void require_same_settings(const Config& a, const Config& b) {
    CHECK(a.www_root == b.www_root);
    CHECK(a.log_level == b.log_level);
    CHECK(a.healthz == b.healthz);
    REQUIRE(a.listen.size() == b.listen.size());
    for (size_t i = 0; i < a.listen.size(); ++i) {
        CHECK(a.listen[i].address == b.listen[i].address);
        CHECK(a.listen[i].tls == b.listen[i].tls);
        CHECK(a.listen[i].name == b.listen[i].name);
        CHECK(a.listen[i].metrics == b.listen[i].metrics);
        CHECK(a.listen[i].api == b.listen[i].api);
    }
    CHECK(a.tls == b.tls);
    CHECK(a.cluster == b.cluster);
    CHECK(a.auth == b.auth);
    CHECK(a.api_key_file == b.api_key_file);
    CHECK(a.max_connections == b.max_connections);
    CHECK(a.max_connections_per_ip == b.max_connections_per_ip);
    CHECK(a.message_rate == b.message_rate);
    CHECK(a.message_burst == b.message_burst);
    CHECK(a.rate_limit_action == b.rate_limit_action);
    CHECK(a.max_header_bytes == b.max_header_bytes);
    CHECK(a.max_header_count == b.max_header_count);
    CHECK(a.max_message_bytes == b.max_message_bytes);
    CHECK(a.send_queue_bytes == b.send_queue_bytes);
    CHECK(a.slow_consumer == b.slow_consumer);
    CHECK(a.allowed_origins == b.allowed_origins);
    CHECK(a.handshake_timeout_ms == b.handshake_timeout_ms);
    CHECK(a.ping_interval_ms == b.ping_interval_ms);
    CHECK(a.idle_timeout_ms == b.idle_timeout_ms);
    CHECK(a.close_timeout_ms == b.close_timeout_ms);
    CHECK(a.shutdown_timeout_ms == b.shutdown_timeout_ms);
    CHECK(a.rooms == b.rooms);
    CHECK(a.room_overrides == b.room_overrides);
}

std::string error_of(const std::string& toml) {
    const auto r = parse_config(toml, "/etc/wsrelay/test.toml");
    REQUIRE_FALSE(r.ok);
    return r.error;
}

}  // namespace

TEST_CASE("config: the packaged etc/wsrelay/wsrelay.toml equals the embedded defaults where it says so") {
    const auto r = parse_config(repo_file("etc/wsrelay/wsrelay.toml"), "etc/wsrelay/wsrelay.toml");
    INFO(r.error);
    REQUIRE(r.ok);
    // The two settings the file marks "Package setting": ws on 80 and wss on 443 with Debian's
    // snakeoil certificate. Everything else is the built-in default.
    const Config& c = r.config;
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].address == "0.0.0.0:80");
    CHECK_FALSE(c.listen[0].tls);
    CHECK(c.listen[1].address == "0.0.0.0:443");
    CHECK(c.listen[1].tls);
    CHECK(c.tls.certificate == "/etc/ssl/certs/ssl-cert-snakeoil.pem");
    CHECK(c.tls.private_key == "/etc/ssl/private/ssl-cert-snakeoil.key");
    Config same = c;
    const Config defaults = wsrelay::config::default_config();
    same.listen = defaults.listen;
    same.tls.certificate = defaults.tls.certificate;
    same.tls.private_key = defaults.tls.private_key;
    require_same_settings(same, defaults);
}

TEST_CASE("config: an empty file means the embedded defaults") {
    const auto r = parse_config("", "empty.toml");
    REQUIRE(r.ok);
    require_same_settings(r.config, wsrelay::config::default_config());
    CHECK(r.config.listen.at(0).address == "127.0.0.1:8080");
    CHECK(r.config.source == "empty.toml");
}

TEST_CASE("config: every section and key is read") {
    const auto r = parse_config(R"(
[server]
www_root = "/srv/www"
log_level = "debug"
healthz = false
[[listen]]
address = "0.0.0.0:80"
[[listen]]
address = "[::]:8080"
[limits]
max_connections = 5
max_connections_per_ip = 3
message_rate = 10
message_burst = 20
rate_limit_action = "drop"
max_header_bytes = 4096
max_header_count = 10
max_message_bytes = 1000
send_queue_bytes = 2000
slow_consumer = "drop"
allowed_origins = ["https://a.example", "https://b.example"]
[timeouts]
handshake_timeout = "500ms"
ping_interval = "2s"
idle_timeout = "1m"
close_timeout = "250ms"
shutdown_timeout = "1h"
[[listen]]
address = "0.0.0.0:443"
tls = true
name = "https"
[tls]
certificate = "/etc/ssl/a.pem"
private_key = "/etc/ssl/a.key"
min_version = "1.3"
ciphers = "ECDHE-RSA-AES128-GCM-SHA256"
ciphersuites = "TLS_AES_128_GCM_SHA256"
session_tickets = false
[[tls.sni]]
server_name = "*.example.org"
certificate = "/etc/ssl/b.pem"
private_key = "/etc/ssl/b.key"
[rooms]
echo = false
max_members = 7
[[room]]
path = "/loud"
echo = true
[[room]]
path = "/small"
max_members = 2
)",
                                "t.toml");
    INFO(r.error);
    REQUIRE(r.ok);
    const Config& c = r.config;
    CHECK(c.www_root == "/srv/www");
    CHECK(c.log_level == wsrelay::util::LogLevel::Debug);
    CHECK_FALSE(c.healthz);
    REQUIRE(c.listen.size() == 3);
    CHECK(c.listen[1].socket_address.family() == AF_INET6);
    CHECK_FALSE(c.listen[1].tls);
    CHECK(c.listen[2].tls);
    CHECK(c.listen[2].name == "https");
    CHECK(c.any_tls());
    CHECK(c.tls.certificate == "/etc/ssl/a.pem");
    CHECK(c.tls.private_key == "/etc/ssl/a.key");
    CHECK(c.tls.min_version == "1.3");
    CHECK(c.tls.ciphers == "ECDHE-RSA-AES128-GCM-SHA256");
    CHECK(c.tls.ciphersuites == "TLS_AES_128_GCM_SHA256");
    CHECK_FALSE(c.tls.session_tickets);
    REQUIRE(c.tls.sni.size() == 1);
    CHECK(c.tls.sni[0] == wsrelay::config::TlsCertificate{"*.example.org", "/etc/ssl/b.pem", "/etc/ssl/b.key"});
    CHECK(c.max_connections == 5);
    CHECK(c.max_connections_per_ip == 3);
    CHECK(c.message_rate == 10);
    CHECK(c.message_burst == 20);
    CHECK(c.rate_limit_action == wsrelay::config::LimitAction::Drop);
    CHECK(c.max_header_bytes == 4096);
    CHECK(c.max_header_count == 10);
    CHECK(c.max_message_bytes == 1000);
    CHECK(c.send_queue_bytes == 2000);
    CHECK(c.slow_consumer == wsrelay::config::LimitAction::Drop);
    CHECK(c.allowed_origins == std::vector<std::string>{"https://a.example", "https://b.example"});
    CHECK(c.handshake_timeout_ms == 500);
    CHECK(c.ping_interval_ms == 2000);
    CHECK(c.idle_timeout_ms == 60'000);
    CHECK(c.close_timeout_ms == 250);
    CHECK(c.shutdown_timeout_ms == 3'600'000);
    // [[room]] keys that are not given inherit [rooms].
    CHECK(c.room_settings("/loud") == wsrelay::config::RoomSettings{.echo = true, .max_members = 7});
    CHECK(c.room_settings("/small") == wsrelay::config::RoomSettings{.echo = false, .max_members = 2});
    CHECK(c.room_settings("/other") == wsrelay::config::RoomSettings{.echo = false, .max_members = 7});
}

TEST_CASE("config: errors name the file, line, column and key") {
    struct Case {
        const char* toml;
        const char* expected;  // exact prefix "file:line:col: key: ..."
    };
    const Case cases[] = {
        {"[limits]\nmax_message_bytes = \"big\"\n",
         "/etc/wsrelay/test.toml:2:21: limits.max_message_bytes: expected an integer, got a string"},
        {"[limits]\nbogus = 1\n", "/etc/wsrelay/test.toml:2:9: limits.bogus: unknown key"},
        {"bogus = 1\n", "/etc/wsrelay/test.toml:1:9: bogus: unknown key"},
        {"[timeouts]\nidle_timeout = \"10 parsecs\"\n", "/etc/wsrelay/test.toml:2:16: timeouts.idle_timeout: malformed duration"},
        {"[timeouts]\nidle_timeout = 10\n", "/etc/wsrelay/test.toml:2:16: timeouts.idle_timeout: expected a duration string"},
        {"[[listen]]\naddress = \"localhost:80\"\n", "/etc/wsrelay/test.toml:2:11: listen[0].address: expected \"IPv4:port\""},
        {"[[listen]]\naddress = \"1.2.3.4:65536\"\n", "/etc/wsrelay/test.toml:2:11: listen[0].address"},
        {"[[listen]]\nport = 80\n", "/etc/wsrelay/test.toml:2:8: listen[0].port: unknown key"},
        {"[limits]\nmax_message_bytes = 100000\nsend_queue_bytes = 1024\n",
         "/etc/wsrelay/test.toml:3:20: limits.send_queue_bytes: must be at least max_message_bytes + 14"},
        {"[limits]\nslow_consumer = \"wait\"\n", "/etc/wsrelay/test.toml:2:17: limits.slow_consumer: expected \"close\" or \"drop\""},
        {"[limits]\nrate_limit_action = \"slow\"\n", "/etc/wsrelay/test.toml:2:21: limits.rate_limit_action: expected \"close\" or \"drop\""},
        {"[limits]\nmessage_burst = 0\n", "/etc/wsrelay/test.toml:2:17: limits.message_burst: must be between 1 and"},
        {"[limits]\nmax_connections = 0\n", "/etc/wsrelay/test.toml:2:19: limits.max_connections: must be between 1 and"},
        {"[limits]\nallowed_origins = [1]\n", "/etc/wsrelay/test.toml:2:20: limits.allowed_origins: expected strings"},
        {"[timeouts]\nping_interval = \"30s\"\nidle_timeout = \"30s\"\n",
         "/etc/wsrelay/test.toml:3:16: timeouts.idle_timeout: must be longer than ping_interval"},
        {"[server]\nlog_level = \"loud\"\n", "/etc/wsrelay/test.toml:2:13: server.log_level: expected one of"},
        {"[server]\nhealthz = \"yes\"\n", "/etc/wsrelay/test.toml:2:11: server.healthz: expected a boolean"},
        {"[[room]]\npath = \"lobby\"\n", "/etc/wsrelay/test.toml:2:8: room[0].path: expected a path starting with '/'"},
        {"[[room]]\npath = \"/a\"\n[[room]]\npath = \"/a\"\n", "/etc/wsrelay/test.toml:4:8: room[1].path: room \"/a\" configured twice"},
        {"server = 3\n", "/etc/wsrelay/test.toml:1:10: server: expected a table, got an integer"},
        {"[limits\n", "/etc/wsrelay/test.toml:1:8: syntax error"},
        {"[[listen]]\naddress = \"0.0.0.0:443\"\ntls = true\n",
         "/etc/wsrelay/test.toml:1:1: tls.certificate: required because listen[0] has tls = true"},
        {"[[listen]]\naddress = \"0.0.0.0:443\"\ntls = true\n[tls]\ncertificate = \"/c.pem\"\n",
         "/etc/wsrelay/test.toml:4:1: tls.private_key: required because listen[0] has tls = true"},
        {"[tls]\nmin_version = \"1.1\"\n", "/etc/wsrelay/test.toml:2:15: tls.min_version: expected \"1.2\" or \"1.3\""},
        {"[[tls.sni]]\nserver_name = \"a.example\"\ncertificate = \"/a.pem\"\n",
         "/etc/wsrelay/test.toml:1:1: tls.sni[0].private_key: missing"},
        {"[tls]\ncert = \"x\"\n", "/etc/wsrelay/test.toml:2:8: tls.cert: unknown key"},
        {"[cluster]\nredis = \"http://x\"\n", "/etc/wsrelay/test.toml:2:9: cluster.redis: expected \"redis://[:password@]host:port[/db]\" or \"unix:/path\""},
        {"[cluster]\nredis = \"redis://h:99999\"\n", "/etc/wsrelay/test.toml:2:9: cluster.redis: bad port \"99999\""},
        {"[cluster]\nredis = \"redis://user:pw@h:1\"\n", "/etc/wsrelay/test.toml:2:9: cluster.redis: a password is written"},
        {"[cluster]\nredis = \"redis://h:1/x\"\n", "/etc/wsrelay/test.toml:2:9: cluster.redis: the database after '/' must be a number"},
        {"[cluster]\nredis = \"unix:relative.sock\"\n", "/etc/wsrelay/test.toml:2:9: cluster.redis: expected \"unix:/absolute/path.sock\""},
        {"[cluster]\nchannel_prefix = \"a b\"\n", "/etc/wsrelay/test.toml:2:18: cluster.channel_prefix: must not contain spaces"},
        {"[cluster]\nmax_pending_bytes = 1000\n", "/etc/wsrelay/test.toml:2:21: cluster.max_pending_bytes: must be between 65536 and"},
        {"[cluster]\nhost = \"x\"\n", "/etc/wsrelay/test.toml:2:8: cluster.host: unknown key"},
        {"[auth]\ndefault = \"closed\"\n", "/etc/wsrelay/test.toml:2:11: auth.default: expected \"open\" or \"token\", got \"closed\""},
        {"[auth]\ndefault = \"token\"\n",
         "/etc/wsrelay/test.toml:2:11: auth.default: \"token\" rooms need auth.hmac_secret_file or auth.public_key_file"},
        {"[[room]]\npath = \"/p\"\nauth = \"token\"\n",
         "/etc/wsrelay/test.toml:3:8: room[0].auth: \"token\" rooms need auth.hmac_secret_file or auth.public_key_file"},
        {"[[room]]\npath = \"/p\"\nauth = true\n", "/etc/wsrelay/test.toml:3:8: room[0].auth: expected a string, got a boolean"},
        {"[auth]\nleeway = 30\n", "/etc/wsrelay/test.toml:2:10: auth.leeway: expected a duration string"},
        {"[auth]\nleeway = \"2d\"\n", "/etc/wsrelay/test.toml:2:10: auth.leeway: malformed duration"},
        {"[auth]\nlisten_only_action = \"mute\"\n",
         "/etc/wsrelay/test.toml:2:22: auth.listen_only_action: expected \"close\" or \"drop\", got \"mute\""},
        {"[auth]\nexpire_connections = 1\n", "/etc/wsrelay/test.toml:2:22: auth.expire_connections: expected a boolean"},
        {"[auth]\nsecret = \"x\"\n", "/etc/wsrelay/test.toml:2:10: auth.secret: unknown key"},
        {"[api]\nkeys = [\"x\"]\n", "/etc/wsrelay/test.toml:2:8: api.keys: unknown key"},
        {"[[listen]]\naddress = \"127.0.0.1:1\"\napi = \"yes\"\n", "/etc/wsrelay/test.toml:3:7: listen[0].api: expected a boolean"},
        {"[limits]\nmax_connections = 1\nmax_connections = 2\n", "/etc/wsrelay/test.toml:3:19: syntax error: Error while parsing key-value pair: cannot redefine existing integer 'max_connections'"},
    };
    for (const Case& c : cases) {
        SECTION(c.toml) {
            const std::string e = error_of(c.toml);
            INFO(e);
            CHECK(e.rfind(c.expected, 0) == 0);
        }
    }
}

TEST_CASE("config: load_config_file names a missing file") {
    const auto r = wsrelay::config::load_config_file("/nonexistent/wsrelay.toml");
    REQUIRE_FALSE(r.ok);
    CHECK(r.error == "/nonexistent/wsrelay.toml: cannot open: No such file or directory");
}

TEST_CASE("config: durations") {
    uint64_t ms = 0;
    const std::pair<const char*, uint64_t> good[] = {{"0ms", 0},    {"250ms", 250},     {"10s", 10'000},
                                                     {"5m", 300'000}, {"2min", 120'000}, {"1h", 3'600'000}};
    for (const auto& [text, want] : good) {
        INFO(text);
        REQUIRE(wsrelay::config::parse_duration_ms(text, ms));
        CHECK(ms == want);
        CHECK(wsrelay::config::parse_duration_ms(wsrelay::config::format_duration(want), ms));
        CHECK(ms == want);
    }
    for (const char* bad : {"", "s", "10", "10 s", "-1s", "1.5s", "10sec", "1d", "99999999999999999999h"}) {
        INFO(bad);
        CHECK_FALSE(wsrelay::config::parse_duration_ms(bad, ms));
    }
}

TEST_CASE("config: [cluster] redis URLs") {
    using wsrelay::config::Cluster;
    struct Case {
        const char* url;
        const char* host;
        uint16_t port;
        const char* unix_path;
        const char* password;
        uint32_t db;
        const char* endpoint;
    };
    const Case cases[] = {
        {"redis://127.0.0.1:6379", "127.0.0.1", 6379, "", "", 0, "127.0.0.1:6379"},
        {"redis://10.0.0.7", "10.0.0.7", 6379, "", "", 0, "10.0.0.7:6379"},
        {"redis://:s3cr@t:x@redis.internal:7000/2", "redis.internal", 7000, "", "s3cr@t:x", 2, "redis.internal:7000/2"},
        {"redis://[::1]:6380", "::1", 6380, "", "", 0, "[::1]:6380"},
        {"redis://[fd00::5]/3", "fd00::5", 6379, "", "", 3, "[fd00::5]:6379/3"},
        {"unix:/run/redis/redis-server.sock", "", 6379, "/run/redis/redis-server.sock", "", 0,
         "unix:/run/redis/redis-server.sock"},
    };
    for (const Case& c : cases) {
        INFO(c.url);
        Cluster k;
        std::string error;
        REQUIRE(wsrelay::config::parse_redis_url(c.url, k, error));
        CHECK(k.host == c.host);
        CHECK(k.port == c.port);
        CHECK(k.unix_path == c.unix_path);
        CHECK(k.url_password == c.password);
        CHECK(k.db == c.db);
        CHECK(k.endpoint() == c.endpoint);  // never the password
    }
    for (const char* bad : {"", "redis://", "redis://:6379", "redis://h:0", "redis://h:65536", "redis://h:12ab",
                            "redis://[::1", "redis://[::1]x", "redis://h/", "redis://h/-1", "rediss://h:1",
                            "unix:", "tcp://h:1"}) {
        INFO(bad);
        Cluster k;
        std::string error;
        CHECK_FALSE(wsrelay::config::parse_redis_url(bad, k, error));
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("config: [cluster] keys and their defaults") {
    const Config d = wsrelay::config::default_config();
    CHECK_FALSE(d.cluster.enabled());
    CHECK(d.cluster.channel_prefix == "wsrelay:");
    CHECK(d.cluster.max_pending_bytes == 16u << 20);
    const auto r = parse_config(R"(
[cluster]
redis = "redis://127.0.0.1:6390/1"
password_file = "/etc/wsrelay/redis.pass"
channel_prefix = "chat:"
node_id = "edge-1"
max_pending_bytes = 1048576
)", "cluster.toml");
    INFO(r.error);
    REQUIRE(r.ok);
    const auto& k = r.config.cluster;
    CHECK(k.enabled());
    CHECK(k.host == "127.0.0.1");
    CHECK(k.port == 6390);
    CHECK(k.db == 1);
    CHECK(k.password_file == "/etc/wsrelay/redis.pass");
    CHECK(k.channel_prefix == "chat:");
    CHECK(k.node_id == "edge-1");
    CHECK(k.max_pending_bytes == 1048576);
}

TEST_CASE("config: [auth], [[room]] auth, [[listen]] api and [api]") {
    const Config d = wsrelay::config::default_config();
    CHECK_FALSE(d.auth.token_by_default);
    CHECK(d.auth.leeway_ms == 30'000);
    CHECK_FALSE(d.auth.expire_connections);
    CHECK(d.auth.listen_only_action == wsrelay::config::LimitAction::Close);
    CHECK(d.api_key_file.empty());
    CHECK_FALSE(d.token_required(d.room_settings("/any")));
    const auto r = parse_config(R"(
[[listen]]
address = "127.0.0.1:8080"
[[listen]]
address = "127.0.0.1:8081"
api = true
[auth]
default = "token"
hmac_secret_file = "/etc/wsrelay/hs256.secret"
public_key_file = "/etc/wsrelay/keys.pem"
audience = "chat"
issuer = "https://id.example"
leeway = "5s"
expire_connections = true
listen_only_action = "drop"
[api]
key_file = "/etc/wsrelay/api.keys"
[[room]]
path = "/lobby"
auth = "open"
[[room]]
path = "/vip"
max_members = 3
)", "a.toml");
    INFO(r.error);
    REQUIRE(r.ok);
    const Config& c = r.config;
    CHECK_FALSE(c.listen[0].api);
    CHECK(c.listen[1].api);
    CHECK(c.auth.token_by_default);
    CHECK(c.auth.hmac_secret_file == "/etc/wsrelay/hs256.secret");
    CHECK(c.auth.public_key_file == "/etc/wsrelay/keys.pem");
    CHECK(c.auth.audience == "chat");
    CHECK(c.auth.issuer == "https://id.example");
    CHECK(c.auth.leeway_ms == 5000);
    CHECK(c.auth.expire_connections);
    CHECK(c.auth.listen_only_action == wsrelay::config::LimitAction::Drop);
    CHECK(c.api_key_file == "/etc/wsrelay/api.keys");
    // auth.default for rooms that do not say; a [[room]] overrides it either way.
    CHECK(c.token_required(c.room_settings("/elsewhere")));
    CHECK_FALSE(c.token_required(c.room_settings("/lobby")));
    CHECK(c.token_required(c.room_settings("/vip")));
    const auto open = parse_config("[auth]\npublic_key_file = \"/k.pem\"\nleeway = \"0s\"\n[[room]]\npath = \"/p\"\nauth = \"token\"\n", "b.toml");
    INFO(open.error);
    REQUIRE(open.ok);
    CHECK(open.config.auth.leeway_ms == 0);
    CHECK(open.config.token_required(open.config.room_settings("/p")));
    CHECK_FALSE(open.config.token_required(open.config.room_settings("/q")));
}

TEST_CASE("config: [server] workers") {
    CHECK(wsrelay::config::default_config().workers == 1);
    const std::string cluster = "\n[cluster]\nredis = \"redis://127.0.0.1:6379\"\n";
    SECTION("a number, or auto (0), with [cluster] redis") {
        for (const auto& [text, want] : {std::pair{"1", 1u}, {"2", 2u}, {"64", 64u}, {"1024", 1024u}, {"\"auto\"", 0u}}) {
            INFO(text);
            const auto r = parse_config("[server]\nworkers = " + std::string(text) + cluster, "w.toml");
            INFO(r.error);
            REQUIRE(r.ok);
            CHECK(r.config.workers == want);
        }
    }
    SECTION("one worker needs no cluster") {
        const auto r = parse_config("[server]\nworkers = 1\n", "w.toml");
        CHECK(r.ok);
    }
    SECTION("more than one, or auto, without [cluster] redis is an error naming file, line and key") {
        for (const char* value : {"2", "\"auto\""}) {
            INFO(value);
            const auto r = parse_config("# shared rooms?\n[server]\nworkers = " + std::string(value) + "\n", "w.toml");
            REQUIRE_FALSE(r.ok);
            CHECK(r.error.rfind("w.toml:3:", 0) == 0);
            CHECK(r.error.find("server.workers: more than one worker needs [cluster] redis") != std::string::npos);
        }
        const auto empty = parse_config("[server]\nworkers = 4\n[cluster]\nredis = \"\"\n", "w.toml");
        CHECK_FALSE(empty.ok);
    }
    SECTION("out of range, or not a number") {
        for (const char* value : {"0", "-1", "1025", "\"all\"", "2.5", "true"}) {
            INFO(value);
            const auto r = parse_config("[server]\nworkers = " + std::string(value) + cluster, "w.toml");
            REQUIRE_FALSE(r.ok);
            CHECK(r.error.rfind("w.toml:2:", 0) == 0);
            CHECK(r.error.find("server.workers: ") != std::string::npos);
        }
    }
}
