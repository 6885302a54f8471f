// SPDX-License-Identifier: Apache-2.0
#include "bench/options.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#ifndef WSRELAY_VERSION
#define WSRELAY_VERSION "0.0.0"
#endif

namespace wsrelay::bench {

const char* const kUsage =
    "Usage: wsrelay-bench SCENARIO [options] URL\n"
    "\n"
    "Load generator for wsrelay (and any RFC 6455 server). URL is ws://HOST[:PORT][/PATH],\n"
    "wss://... or tcp://HOST:PORT (the raw ceiling server, wsrelay-raw-ceiling).\n"
    "\n"
    "Scenarios:\n"
    "  echo        C connections, each in its own room PATH/<i>, D messages in flight on each;\n"
    "              deliveries at every member\n"
    "  broadcast   C subscribers and one publisher in room PATH; deliveries at subscribers\n"
    "  connect     handshakes per second, C at once, each closed with a close handshake\n"
    "  idle        C upgraded connections in room PATH, held open (pings answered)\n"
    "\n"
    "Options:\n"
    "  -c, --connections N   connections (echo 100, broadcast 1000, connect 16, idle 1000)\n"
    "  -d, --depth D         echo: messages in flight per connection (8)\n"
    "  -s, --size BYTES      message payload size (32); latency needs 8 or more\n"
    "  -w, --window W        broadcast: messages the publisher may have unacknowledged (16)\n"
    "  -r, --rate R          broadcast: publish R messages/s instead of as fast as possible;\n"
    "                        echo: R messages/s in all, each connection in turn, no window\n"
    "  -R, --rooms N         spread the connections over rooms PATH/0 .. PATH/<N-1>\n"
    "                        (connection i in room i mod N); broadcast: a publisher per room;\n"
    "                        connect: each handshake to the next room in turn\n"
    "  -t, --duration T      measured time: 10, 2.5s, 500ms, 1m (10s)\n"
    "      --warmup T        uncounted traffic before it (1s)\n"
    "      --setup-timeout T every connection must be up within this (30s)\n"
    "      --setup-concurrency N  connection attempts under way at once (256)\n"
    "      --source-ips LIST bind to each address in turn: 127.0.0.1-127.0.0.20 or a,b,c\n"
    "  -p, --server-pid PID  report the server's CPU per message and RSS (from /proc)\n"
    "      --cpu-pid NAME=PID  report the CPU of process PID too, as NAME (repeatable)\n"
    "      --publisher-url URL  broadcast: the publisher connects to URL (another instance of\n"
    "                        the room), the subscribers to the main URL\n"
    "      --raw             speak the raw length-prefixed protocol (implied by tcp://)\n"
    "      --text            send text messages instead of binary ones\n"
    "      --insecure        wss: do not verify the server's certificate\n"
    "      --cafile FILE     wss: trust the CA certificates in FILE\n"
    "      --json            one JSON line on stdout (the summary goes to stderr)\n"
    "  -q, --quiet           no progress line on stderr\n"
    "  -V, --version         print the version and exit\n"
    "  -h, --help            print this help and exit\n"
    "\n"
    "Exit status: 0 on success, 1 if the run failed or saw errors, 2 for a usage error.\n"
    "See wsrelay-bench(1).\n";

std::string_view scenario_name(Scenario s) noexcept {
    switch (s) {
        case Scenario::Echo: return "echo";
        case Scenario::Broadcast: return "broadcast";
        case Scenario::Connect: return "connect";
        case Scenario::Idle: return "idle";
    }
    return "?";
}

uint32_t default_connections(Scenario s) noexcept {
    switch (s) {
        case Scenario::Echo: return 100;
        case Scenario::Broadcast: return 1000;
        case Scenario::Connect: return 16;
        case Scenario::Idle: return 1000;
    }
    return 1;
}

namespace {

std::optional<Scenario> parse_scenario(std::string_view s) {
    if (s == "echo") return Scenario::Echo;
    if (s == "broadcast") return Scenario::Broadcast;
    if (s == "connect") return Scenario::Connect;
    if (s == "idle") return Scenario::Idle;
    return std::nullopt;
}

template <class T>
std::optional<T> parse_uint(std::string_view s, T min, T max) {
    T v{};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v < min || v > max) return std::nullopt;
    return v;
}

std::optional<util::SocketAddress> parse_ip(std::string_view text) {
    util::SocketAddress a;
    const std::string host(text);
    auto* s4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (::inet_pton(AF_INET, host.c_str(), &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        a.length = sizeof(sockaddr_in);
        return a;
    }
    if (::inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        a.length = sizeof(sockaddr_in6);
        return a;
    }
    return std::nullopt;
}

}  // namespace

std::optional<CpuPid> parse_cpu_pid(std::string_view text) {
    constexpr size_t kMaxNameBytes = 32;
    const size_t eq = text.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq > kMaxNameBytes) return std::nullopt;
    const std::string_view name = text.substr(0, eq);
    // The name becomes a JSON key and a label in the summary: keep it plain.
    for (const char ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.') return std::nullopt;
    const auto pid = parse_uint<pid_t>(text.substr(eq + 1), 1, std::numeric_limits<pid_t>::max());
    if (!pid) return std::nullopt;
    return CpuPid{std::string(name), *pid};
}

std::optional<uint64_t> parse_duration_ms(std::string_view text) noexcept {
    size_t unit_at = 0;
    while (unit_at < text.size() && (std::isdigit(static_cast<unsigned char>(text[unit_at])) || text[unit_at] == '.'))
        ++unit_at;
    const std::string_view number = text.substr(0, unit_at);
    const std::string_view unit = text.substr(unit_at);
    double scale;
    if (unit.empty() || unit == "s") scale = 1000;
    else if (unit == "ms") scale = 1;
    else if (unit == "m") scale = 60'000;
    else return std::nullopt;
    if (number.empty() || number.front() == '.' || number.back() == '.') return std::nullopt;
    char* end = nullptr;
    const std::string n(number);
    const double v = std::strtod(n.c_str(), &end);
    if (end != n.c_str() + n.size() || !std::isfinite(v) || v * scale > 86'400'000.0) return std::nullopt;
    return static_cast<uint64_t>(std::llround(v * scale));
}

std::optional<std::vector<util::SocketAddress>> parse_source_ips(std::string_view text) {
    constexpr size_t kMaxSourceIps = 65536;
    std::vector<util::SocketAddress> out;
    while (!text.empty()) {
        const size_t comma = text.find(',');
        const std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        if (const size_t dash = item.find('-'); dash != std::string_view::npos) {
            // An IPv4 range, both ends included, walked as 32-bit integers.
            const auto first = parse_ip(item.substr(0, dash));
            const auto last = parse_ip(item.substr(dash + 1));
            if (!first || !last || first->family() != AF_INET || last->family() != AF_INET) return std::nullopt;
            const uint32_t lo = ntohl(reinterpret_cast<const sockaddr_in*>(&first->storage)->sin_addr.s_addr);
            const uint32_t hi = ntohl(reinterpret_cast<const sockaddr_in*>(&last->storage)->sin_addr.s_addr);
            if (lo > hi || hi - lo >= kMaxSourceIps) return std::nullopt;
            for (uint64_t ip = lo; ip <= hi; ++ip) {
                util::SocketAddress a = *first;
                reinterpret_cast<sockaddr_in*>(&a.storage)->sin_addr.s_addr = htonl(static_cast<uint32_t>(ip));
                out.push_back(a);
            }
        } else {
            const auto a = parse_ip(item);
            if (!a) return std::nullopt;
            out.push_back(*a);
        }
        if (out.size() > kMaxSourceIps) return std::nullopt;
    }
    if (out.empty()) return std::nullopt;
    return out;
}

std::optional<Target> parse_target(std::string_view url, std::string& error) {
    Target t;
    t.url = std::string(url);
    std::string_view rest;
    uint16_t default_port;
    if (url.starts_with("ws://")) {
        rest = url.substr(5);
        default_port = 80;
    } else if (url.starts_with("wss://")) {
        rest = url.substr(6);
        t.tls = true;
        default_port = 443;
    } else if (url.starts_with("tcp://")) {
        rest = url.substr(6);
        t.raw = true;
        default_port = 0;  // must be given
    } else {
        error = "URL must start with ws://, wss:// or tcp://: " + std::string(url);
        return std::nullopt;
    }
    const size_t slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    if (slash != std::string_view::npos) t.path = std::string(rest.substr(slash));
    if (const size_t hash = t.path.find('#'); hash != std::string::npos) t.path.resize(hash);

    std::string_view host = authority;
    std::string_view port_text;
    if (host.starts_with('[')) {
        const size_t close = host.find(']');
        if (close == std::string_view::npos) {
            error = "unbalanced [ in URL host: " + std::string(url);
            return std::nullopt;
        }
        if (close + 1 < host.size()) {
            if (host[close + 1] != ':') {
                error = "bad URL host: " + std::string(url);
                return std::nullopt;
            }
            port_text = host.substr(close + 2);
        }
        host = host.substr(1, close - 1);
    } else if (const size_t colon = host.rfind(':'); colon != std::string_view::npos) {
        port_text = host.substr(colon + 1);
        host = host.substr(0, colon);
    }
    uint16_t port = default_port;
    if (!port_text.empty()) {
        const auto p = parse_uint<uint16_t>(port_text, 1, 65535);
        if (!p) {
            error = "bad port in URL: " + std::string(url);
            return std::nullopt;
        }
        port = *p;
    }
    if (host.empty() || port == 0) {
        error = "URL needs a host" + std::string(port == 0 ? " and a port" : "") + ": " + std::string(url);
        return std::nullopt;
    }
    t.host = std::string(host);
    t.host_header = (authority.starts_with('[') ? "[" + t.host + "]" : t.host) + ":" + std::to_string(port);

    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    if (const int rc = ::getaddrinfo(t.host.c_str(), service.c_str(), &hints, &res); rc != 0) {
        error = "cannot resolve " + t.host + ": " + ::gai_strerror(rc);
        return std::nullopt;
    }
    std::memcpy(&t.address.storage, res->ai_addr, res->ai_addrlen);
    t.address.length = res->ai_addrlen;
    ::freeaddrinfo(res);
    return t;
}

ParseResult parse_options(int argc, char** argv) {
    ParseResult r;
    Options o;
    bool raw = false;
    std::string_view publisher_url;
    std::vector<std::string_view> positional;
    auto usage_error = [&](std::string what) {
        r.exit_code = 2;
        r.message = "wsrelay-bench: " + what + "\n" + kUsage;
        return r;
    };
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (!a.starts_with('-') || a == "-") {
            positional.push_back(a);
            continue;
        }
        // "--name=value" or "--name value" / "-n value".
        std::string_view name = a;
        std::optional<std::string_view> inline_value;
        if (a.starts_with("--")) {
            if (const size_t eq = a.find('='); eq != std::string_view::npos) {
                name = a.substr(0, eq);
                inline_value = a.substr(eq + 1);
            }
        }
        bool missing = false;
        auto value = [&]() -> std::string_view {
            if (inline_value) return *inline_value;
            if (i + 1 < argc) return argv[++i];
            missing = true;
            return {};
        };
        auto number = [&](auto& field, auto min, auto max) {
            using T = std::remove_reference_t<decltype(field)>;
            const std::string_view v = value();
            const auto n = parse_uint<T>(v, static_cast<T>(min), static_cast<T>(max));
            if (!n) return false;
            field = *n;
            return true;
        };
        auto duration = [&](uint64_t& field) {
            const auto ms = parse_duration_ms(value());
            if (!ms) return false;
            field = *ms;
            return true;
        };
        bool ok = true;
        if (name == "-h" || name == "--help") {
            r.message = kUsage;
            return r;
        } else if (name == "-V" || name == "--version") {
            r.message = "wsrelay-bench " WSRELAY_VERSION "\n";
            return r;
        } else if (name == "-c" || name == "--connections") {
            ok = number(o.connections, 1u, 10'000'000u);
        } else if (name == "-d" || name == "--depth") {
            ok = number(o.depth, 1u, 1'000'000u);
        } else if (name == "-s" || name == "--size") {
            ok = number(o.size, 0u, 64u << 20);
        } else if (name == "-w" || name == "--window") {
            ok = number(o.window, 1u, 1'000'000u);
        } else if (name == "-R" || name == "--rooms") {
            ok = number(o.rooms, 1u, 4'000'000'000u);
        } else if (name == "-r" || name == "--rate") {
            ok = number(o.rate, uint64_t{1}, uint64_t{100'000'000});
        } else if (name == "-t" || name == "--duration") {
            ok = duration(o.duration_ms) && o.duration_ms > 0;
        } else if (name == "--warmup") {
            ok = duration(o.warmup_ms);
        } else if (name == "--setup-timeout") {
            ok = duration(o.setup_timeout_ms) && o.setup_timeout_ms > 0;
        } else if (name == "--setup-concurrency") {
            ok = number(o.setup_concurrency, 1u, 1'000'000u);
        } else if (name == "--source-ips") {
            auto ips = parse_source_ips(value());
            ok = ips.has_value();
            if (ok) o.source_ips = std::move(*ips);
        } else if (name == "-p" || name == "--server-pid") {
            ok = number(o.server_pid, 1, std::numeric_limits<pid_t>::max());
        } else if (name == "--cpu-pid") {
            auto p = parse_cpu_pid(value());
            ok = p.has_value();
            if (ok) {
                for (const CpuPid& other : o.cpu_pids)
                    if (other.name == p->name) return usage_error("--cpu-pid name '" + p->name + "' given twice");
                o.cpu_pids.push_back(std::move(*p));
            }
        } else if (name == "--publisher-url") {
            publisher_url = value();
            ok = !publisher_url.empty();
        } else if (name == "--raw") {
            raw = true;
        } else if (name == "--text") {
            o.text = true;
        } else if (name == "--json") {
            o.json = true;
        } else if (name == "-q" || name == "--quiet") {
            o.quiet = true;
        } else if (name == "--insecure") {
            o.insecure = true;
        } else if (name == "--cafile") {
            o.cafile = std::string(value());
            ok = !o.cafile.empty();
        } else {
            return usage_error("unknown option '" + std::string(a) + "'");
        }
        if (missing) return usage_error(std::string(name) + " needs a value");
        if (!ok) return usage_error("bad value for " + std::string(name));
    }
    if (positional.size() != 2) return usage_error("expected SCENARIO and URL");
    const auto scenario = parse_scenario(positional[0]);
    if (!scenario) return usage_error("unknown scenario '" + std::string(positional[0]) + "'");
    o.scenario = *scenario;
    std::string error;
    auto target = parse_target(positional[1], error);
    if (!target) {
        r.exit_code = 2;
        r.message = "wsrelay-bench: " + error + "\n";
        return r;
    }
    o.target = std::move(*target);
    if (raw) {
        if (o.target.tls) return usage_error("--raw cannot be used with wss://");
        o.target.raw = true;
    }
    if (o.target.raw && o.scenario == Scenario::Connect)
        return usage_error("the connect scenario needs WebSocket (no --raw)");
    if (!publisher_url.empty()) {
        if (o.scenario != Scenario::Broadcast) return usage_error("--publisher-url is for the broadcast scenario");
        auto p = parse_target(publisher_url, error);
        if (!p) {
            r.exit_code = 2;
            r.message = "wsrelay-bench: --publisher-url: " + error + "\n";
            return r;
        }
        // Rooms that span instances are wsrelay's [cluster]; the raw ceiling server has no such thing.
        if (o.target.raw || p->raw) return usage_error("--publisher-url needs WebSocket URLs (ws:// or wss://) on both sides");
        o.publisher_target = std::move(*p);
    }
    if (o.connections == 0) o.connections = default_connections(o.scenario);
    if (o.rate && o.scenario != Scenario::Broadcast && o.scenario != Scenario::Echo)
        return usage_error("--rate is for the broadcast and echo scenarios");
    // A room with no one in it would measure nothing (connect rooms come and go: any number).
    if (o.rooms > o.connections && o.scenario != Scenario::Connect)
        return usage_error("--rooms must not exceed the connections (" + std::to_string(o.connections) + ")");
    if (o.rooms > 1 && o.publisher_target)
        return usage_error("--publisher-url names one room: it cannot be combined with --rooms");
    for (const auto& ip : o.source_ips)
        if (ip.family() != o.target.address.family() ||
            (o.publisher_target && ip.family() != o.publisher_target->address.family()))
            return usage_error("--source-ips must be of the URL host's address family");
    r.options = std::move(o);
    return r;
}

}  // namespace wsrelay::bench
