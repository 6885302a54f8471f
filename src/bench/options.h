// SPDX-License-Identifier: Apache-2.0
// wsrelay-bench's command line: `wsrelay-bench SCENARIO [options] URL` in, a validated Options or
// one error message out. Pure apart from the name lookup of the URL's host (getaddrinfo, once, at
// startup).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/address.h"

namespace wsrelay::bench {

enum class Scenario : uint8_t {
    Echo,       // C connections, each in its own room (or spread over --rooms), D messages in flight on
                // each, or --rate messages/s between them all
    Broadcast,  // N subscribers and one publisher in one room (or spread over --rooms, a publisher each)
    Connect,    // handshakes per second, each connection closed with a close handshake
    Idle,       // N upgraded connections held open; the server's RSS per connection
};

std::string_view scenario_name(Scenario s) noexcept;

// What to connect to: ws://, wss:// or tcp:// (the raw ceiling server).
struct Target {
    bool tls = false;
    bool raw = false;            // no WebSocket: length-prefixed messages (see wire.h)
    std::string host;            // as written, without brackets: SNI, certificate check
    std::string host_header;     // "host:port" for the HTTP Host header
    std::string path = "/";      // the room (echo: a room per connection below it)
    util::SocketAddress address; // resolved
    std::string url;             // as given, for reports
};

// Another process whose CPU time the run reports (--cpu-pid NAME=PID): a second server instance,
// a Redis, anything with a /proc/PID/stat.
struct CpuPid {
    std::string name;  // [A-Za-z0-9_.-], at most 32 characters; unique in a run
    pid_t pid = 0;
};

struct Options {
    Scenario scenario = Scenario::Echo;
    Target target;
    // broadcast: where the publisher connects (--publisher-url; its path names its room), the
    // subscribers going to `target`: a room that spans two instances. Its window is then
    // acknowledged by the last subscriber's copies rather than by its own echo (see driver.h).
    std::optional<Target> publisher_target;
    uint32_t connections = 0;      // scenario default when 0 (see default_connections())
    // Rooms the connections are spread over, PATH/0 .. PATH/<rooms-1>, connection i in i % rooms;
    // 0: the scenario's own layout (echo: a room per connection, PATH/<i>; the others: PATH).
    uint32_t rooms = 0;
    uint32_t depth = 8;            // echo: messages in flight per connection
    uint32_t size = 32;            // payload bytes per message
    uint32_t window = 16;          // broadcast: unacknowledged messages of the publisher
    uint64_t rate = 0;             // broadcast: messages/s to publish; echo: messages/s sent by all the
                                   // connections in turn; 0: as fast as the window (depth) allows
    uint64_t duration_ms = 10'000; // measured interval
    uint64_t warmup_ms = 1'000;    // traffic that is not counted, before it
    uint64_t setup_timeout_ms = 30'000;  // all connections of the run must be up within this
    uint32_t setup_concurrency = 256;    // connection attempts under way at once
    std::vector<util::SocketAddress> source_ips;  // bind() to each in turn; empty: the kernel picks
    pid_t server_pid = 0;          // read its CPU time and RSS from /proc
    std::vector<CpuPid> cpu_pids;  // more processes whose CPU time is reported (--cpu-pid)
    bool text = false;             // text messages (timestamp in 8 ASCII characters) instead of binary
    bool json = false;             // one JSON line on stdout; the summary goes to stderr
    bool quiet = false;            // no progress line
    bool insecure = false;         // wss: do not verify the server's certificate
    std::string cafile;            // wss: trust these CAs instead of the system's
};

// connections when not given: echo 100, broadcast 1000 subscribers, connect 16 at once, idle 1000.
uint32_t default_connections(Scenario s) noexcept;

struct ParseResult {
    std::optional<Options> options;  // empty: print `message` and exit with `exit_code`
    int exit_code = 0;               // 0 for --help/--version, 2 for a usage error
    std::string message;
};

ParseResult parse_options(int argc, char** argv);

extern const char* const kUsage;

// Exposed for tests and the raw server: "10", "1.5", "1.5s", "250ms", "2m" -> milliseconds.
std::optional<uint64_t> parse_duration_ms(std::string_view text) noexcept;
// "127.0.0.1-127.0.0.20", "10.0.0.1,10.0.0.2", "::1": a list of addresses with port 0.
std::optional<std::vector<util::SocketAddress>> parse_source_ips(std::string_view text);
// "redis=1234": a name for reports and a process ID.
std::optional<CpuPid> parse_cpu_pid(std::string_view text);
// ws://host[:port][/path], wss://..., tcp://host:port; resolves the host.
std::optional<Target> parse_target(std::string_view url, std::string& error);

}  // namespace wsrelay::bench
