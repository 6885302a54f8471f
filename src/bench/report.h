// SPDX-License-Identifier: Apache-2.0
// What a run measured, and its two renderings: a summary for people and one JSON line for
// machines (tests/perf/run_suite.sh reads the latter).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/histogram.h"
#include "bench/options.h"

namespace wsrelay::bench {

struct Results {
    bool completed = false;        // the measured interval ran (setup succeeded)
    double measured_s = 0;         // length of the measured interval
    uint32_t connections_open = 0; // at the end of the measured interval
    // Counted in the measured interval: echo: messages received (in shared rooms, every member's
    // copy); broadcast: deliveries at subscribers; connect: completed handshakes (101 received);
    // idle: nothing.
    uint64_t messages = 0;
    uint64_t published = 0;        // broadcast: messages the publishers sent; echo --rate: messages sent
    uint64_t publish_skipped = 0;  // --rate: sends due while the window was full (echo: the connection gone)
    uint64_t closes = 0;           // connect: close handshakes completed
    Histogram latency;             // ns: send -> receive (connect: connect() -> 101)
    double bench_cpu_s = 0;        // our user + system CPU in the measured interval
    std::optional<double> server_cpu_s;       // the server's, with --server-pid
    std::vector<std::optional<double>> cpu_pids_s;  // by Options::cpu_pids; empty if unreadable
    // idle, with --server-pid: the server's RSS before the first connection, with the first one
    // (its one-time costs paid: code paged in, the room created), and with all of them at the end.
    // connect: before the run, and (as server_rss_first) at the start of the measured interval.
    std::optional<uint64_t> server_rss_before;
    std::optional<uint64_t> server_rss_first;
    std::optional<uint64_t> server_rss_after;
    // idle and connect, with --server-pid: the server's RSS 2 s after every connection has closed.
    std::optional<uint64_t> server_rss_drained;
    uint64_t errors = 0;           // connections that failed after setup
    std::string error;             // the first failure, or why the run could not complete
};

// The summary for people: several aligned lines.
std::string format_summary(const Options& options, const Results& results);
// One line of JSON (no newline), every figure a plain number or null.
std::string format_json(const Options& options, const Results& results);

}  // namespace wsrelay::bench
