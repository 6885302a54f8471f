// SPDX-License-Identifier: Apache-2.0
#include "bench/report.h"

#include <cinttypes>
#include <cstdarg>
#include <cstdio>

namespace wsrelay::bench {
namespace {

void appendf(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string& out, const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) out.append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
}

// 12345678 -> "12,345,678"
std::string grouped(uint64_t v) {
    const std::string digits = std::to_string(v);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// A duration in ns for people: "850 ns", "123 µs", "1.23 ms", "2.50 s".
std::string human_ns(uint64_t ns) {
    char buf[32];
    if (ns < 1000) std::snprintf(buf, sizeof buf, "%" PRIu64 " ns", ns);
    else if (ns < 1'000'000) std::snprintf(buf, sizeof buf, "%.0f µs", ns / 1e3);
    else if (ns < 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
    else std::snprintf(buf, sizeof buf, "%.2f s", ns / 1e9);
    return buf;
}

std::string human_bytes(double b) {
    char buf[32];
    if (b < 10 * 1024) std::snprintf(buf, sizeof buf, "%.0f B", b);
    else if (b < 10 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
    else std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024 * 1024));
    return buf;
}

std::string_view transport_name(const Options& o) { return o.target.raw ? "raw" : o.target.tls ? "wss" : "ws"; }

// echo in shared rooms counts every member's copy: deliveries, as broadcast does.
bool counts_deliveries(const Options& o) {
    return o.scenario == Scenario::Broadcast || (o.scenario == Scenario::Echo && o.rooms && o.rooms < o.connections);
}

const char* unit_of(const Options& o) {
    if (counts_deliveries(o)) return "deliveries";
    return o.scenario == Scenario::Connect ? "handshakes" : "messages";
}

const char* one_of(const Options& o) {
    if (counts_deliveries(o)) return "delivery";
    return o.scenario == Scenario::Connect ? "handshake" : "message";
}

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

// RSS per connection: what every connection after the first added. The first one pays one-time
// costs (libcrypto's SHA-1 code paged in for the handshake, the room, the per-IP entry), which
// would otherwise be spread over the others; with a single connection there is nothing else.
std::optional<double> rss_per_connection(const Results& r) {
    if (!r.server_rss_after || r.connections_open == 0) return std::nullopt;
    if (r.server_rss_first && r.connections_open > 1)
        return (static_cast<double>(*r.server_rss_after) - static_cast<double>(*r.server_rss_first)) /
               (r.connections_open - 1);
    if (!r.server_rss_before) return std::nullopt;
    return (static_cast<double>(*r.server_rss_after) - static_cast<double>(*r.server_rss_before)) / r.connections_open;
}

std::optional<double> bytes(const std::optional<uint64_t>& v) {
    return v ? std::optional(static_cast<double>(*v)) : std::nullopt;
}

}  // namespace

std::string format_summary(const Options& o, const Results& r) {
    std::string out;
    appendf(out, "wsrelay-bench %s %s (%s): ", std::string(scenario_name(o.scenario)).c_str(), o.target.url.c_str(),
            std::string(transport_name(o)).c_str());
    const char* kind = o.text ? "text" : "binary";
    switch (o.scenario) {
        case Scenario::Echo:
            appendf(out, "%u connections", o.connections);
            if (o.rooms) appendf(out, " in %u rooms", o.rooms);
            if (o.rate) appendf(out, ", %" PRIu64 " msg/s in all", o.rate);
            else appendf(out, ", %u in flight each", o.depth);
            appendf(out, ", %u-byte %s messages\n", o.size, kind);
            break;
        case Scenario::Broadcast:
            if (o.publisher_target) appendf(out, "1 publisher on %s", o.publisher_target->url.c_str());
            else if (o.rooms > 1) appendf(out, "%u rooms, a publisher each", o.rooms);
            else out += "1 publisher";
            appendf(out, " -> %u subscribers, %u-byte %s messages, ", o.connections, o.size, kind);
            if (o.rate) appendf(out, "%" PRIu64 " msg/s (window %u", o.rate, o.window);
            else appendf(out, "window %u", o.window);
            // See driver.h: the echo of another instance acknowledges nothing about this one.
            if (o.publisher_target) out += o.rate ? ", acknowledged by the last subscriber)\n" : " (acknowledged by the last subscriber)\n";
            else out += o.rate ? ")\n" : "\n";
            break;
        case Scenario::Connect:
            appendf(out, "%u handshakes at a time", o.connections);
            if (o.rooms) appendf(out, ", to %u rooms in turn", o.rooms);
            out += "\n";
            break;
        case Scenario::Idle:
            appendf(out, "%u idle connections", o.connections);
            if (o.rooms) appendf(out, " in %u rooms", o.rooms);
            out += "\n";
            break;
    }
    if (!r.completed) {
        appendf(out, "  FAILED       %s\n", r.error.c_str());
        return out;
    }
    appendf(out, "  measured     %.2f s after %.2f s of warm-up; %u connections open at the end\n", r.measured_s,
            o.warmup_ms / 1e3, r.connections_open);
    const double per_s = r.measured_s > 0 ? r.messages / r.measured_s : 0;
    if (o.scenario != Scenario::Idle)
        appendf(out, "  %-12s %s = %s/s\n", unit_of(o), grouped(r.messages).c_str(),
                grouped(static_cast<uint64_t>(per_s + 0.5)).c_str());
    if (o.scenario == Scenario::Broadcast || (o.scenario == Scenario::Echo && o.rate)) {
        appendf(out, "  published    %s = %s/s", grouped(r.published).c_str(),
                grouped(static_cast<uint64_t>(r.published / r.measured_s + 0.5)).c_str());
        if (r.publish_skipped)
            appendf(out, " (%s skipped: %s)", grouped(r.publish_skipped).c_str(),
                    o.scenario == Scenario::Broadcast ? "window full" : "connection gone");
        out += "\n";
    }
    if (o.scenario == Scenario::Connect) appendf(out, "  closes       %s clean close handshakes\n", grouped(r.closes).c_str());
    if (r.latency.count())
        appendf(out, "  latency      p50 %s  p99 %s  max %s  (%s samples)\n", human_ns(r.latency.quantile(0.5)).c_str(),
                human_ns(r.latency.quantile(0.99)).c_str(), human_ns(r.latency.max()).c_str(),
                grouped(r.latency.count()).c_str());
    appendf(out, "  bench CPU    %.2f s = %.0f%% of a core%s\n", r.bench_cpu_s, 100 * r.bench_cpu_s / r.measured_s,
            r.bench_cpu_s / r.measured_s > 0.95 ? " (the generator may be the bottleneck)" : "");
    if (r.server_cpu_s) {
        appendf(out, "  server CPU   %.2f s = %.0f%% of a core", *r.server_cpu_s, 100 * *r.server_cpu_s / r.measured_s);
        if (r.messages)
            appendf(out, " = %.3f µs per %s", *r.server_cpu_s * 1e6 / static_cast<double>(r.messages), one_of(o));
        appendf(out, " (pid %d)\n", static_cast<int>(o.server_pid));
    }
    for (size_t i = 0; i < o.cpu_pids.size(); ++i) {
        const CpuPid& p = o.cpu_pids[i];
        const std::string label = "CPU " + p.name;
        if (i >= r.cpu_pids_s.size() || !r.cpu_pids_s[i]) {
            appendf(out, "  %-12s unreadable (pid %d gone?)\n", label.c_str(), static_cast<int>(p.pid));
            continue;
        }
        const double cpu = *r.cpu_pids_s[i];
        appendf(out, "  %-12s %.2f s = %.0f%% of a core", label.c_str(), cpu, 100 * cpu / r.measured_s);
        if (r.messages)
            appendf(out, " = %.3f µs per %s", cpu * 1e6 / static_cast<double>(r.messages), one_of(o));
        if (r.published) appendf(out, ", %.3f µs per published message", cpu * 1e6 / static_cast<double>(r.published));
        appendf(out, " (pid %d)\n", static_cast<int>(p.pid));
    }
    if (const auto per = rss_per_connection(r)) {
        appendf(out, "  server RSS   %s with %u connections = %s per connection", human_bytes(static_cast<double>(*r.server_rss_after)).c_str(),
                r.connections_open, human_bytes(*per).c_str());
        if (r.server_rss_before && r.server_rss_first)
            appendf(out, " (%s before the first, %s with it)", human_bytes(static_cast<double>(*r.server_rss_before)).c_str(),
                    human_bytes(static_cast<double>(*r.server_rss_first)).c_str());
        out += "\n";
    }
    if (r.server_rss_drained) {
        appendf(out, "  server RSS   %s 2 s after every connection had closed", human_bytes(static_cast<double>(*r.server_rss_drained)).c_str());
        if (r.server_rss_first)
            appendf(out, " (%+.1f%% of the %s %s)",
                    100.0 * (static_cast<double>(*r.server_rss_drained) / static_cast<double>(*r.server_rss_first) - 1),
                    human_bytes(static_cast<double>(*r.server_rss_first)).c_str(),
                    o.scenario == Scenario::Connect ? "at the start of the measurement" : "with the first connection");
        out += "\n";
    }
    if (r.errors || !r.error.empty())
        appendf(out, "  errors       %s (first: %s)\n", grouped(r.errors).c_str(), r.error.c_str());
    return out;
}

std::string format_json(const Options& o, const Results& r) {
    std::string out = "{";
    auto num = [&](const char* key, double v, const char* fmt = "%.6g") {
        appendf(out, "\"%s\":", key);
        appendf(out, fmt, v);
        out += ',';
    };
    auto integer = [&](const char* key, uint64_t v) { appendf(out, "\"%s\":%" PRIu64 ",", key, v); };
    auto opt = [&](const char* key, std::optional<double> v, const char* fmt = "%.6g") {
        if (v) return num(key, *v, fmt);
        appendf(out, "\"%s\":null,", key);
    };
    auto str = [&](const char* key, std::string_view v) { appendf(out, "\"%s\":%s,", key, json_string(v).c_str()); };

    str("scenario", scenario_name(o.scenario));
    str("transport", transport_name(o));
    str("url", o.target.url);
    if (o.publisher_target) str("publisher_url", o.publisher_target->url);  // only with --publisher-url
    integer("connections", o.connections);
    integer("rooms", o.rooms);
    integer("depth", o.depth);
    integer("size", o.size);
    integer("window", o.window);
    integer("rate", o.rate);
    appendf(out, "\"text\":%s,", o.text ? "true" : "false");
    num("warmup_s", o.warmup_ms / 1e3);
    appendf(out, "\"completed\":%s,", r.completed ? "true" : "false");
    num("duration_s", r.measured_s, "%.3f");
    integer("connections_open", r.connections_open);
    integer("messages", r.messages);
    num("msgs_per_s", r.measured_s > 0 ? r.messages / r.measured_s : 0, "%.1f");
    integer("published", r.published);
    integer("publish_skipped", r.publish_skipped);
    integer("closes", r.closes);
    integer("latency_samples", r.latency.count());
    const bool lat = r.latency.count() != 0;
    opt("latency_p50_us", lat ? std::optional(r.latency.quantile(0.5) / 1e3) : std::nullopt, "%.2f");
    opt("latency_p99_us", lat ? std::optional(r.latency.quantile(0.99) / 1e3) : std::nullopt, "%.2f");
    opt("latency_max_us", lat ? std::optional(r.latency.max() / 1e3) : std::nullopt, "%.2f");
    num("bench_cpu_s", r.bench_cpu_s, "%.3f");
    num("bench_cpu_util", r.measured_s > 0 ? r.bench_cpu_s / r.measured_s : 0, "%.3f");
    if (o.server_pid) integer("server_pid", static_cast<uint64_t>(o.server_pid));
    else out += "\"server_pid\":null,";
    opt("server_cpu_s", r.server_cpu_s, "%.3f");
    opt("server_cpu_util", r.server_cpu_s && r.measured_s > 0 ? std::optional(*r.server_cpu_s / r.measured_s) : std::nullopt, "%.3f");
    opt("server_cpu_us_per_msg",
        r.server_cpu_s && r.messages ? std::optional(*r.server_cpu_s * 1e6 / static_cast<double>(r.messages)) : std::nullopt,
        "%.4f");
    if (!o.cpu_pids.empty()) {
        // --cpu-pid NAME=PID: "cpu_pids":{"NAME":{"pid":..,"cpu_s":..,"cpu_util":..,"us_per_msg":..,
        // "us_per_published":..},...}; figures null when the process could not be read.
        out += "\"cpu_pids\":{";
        for (size_t i = 0; i < o.cpu_pids.size(); ++i) {
            const std::optional<double> cpu = i < r.cpu_pids_s.size() ? r.cpu_pids_s[i] : std::nullopt;
            appendf(out, "%s:{", json_string(o.cpu_pids[i].name).c_str());
            integer("pid", static_cast<uint64_t>(o.cpu_pids[i].pid));
            opt("cpu_s", cpu, "%.3f");
            opt("cpu_util", cpu && r.measured_s > 0 ? std::optional(*cpu / r.measured_s) : std::nullopt, "%.3f");
            opt("us_per_msg", cpu && r.messages ? std::optional(*cpu * 1e6 / static_cast<double>(r.messages)) : std::nullopt,
                "%.4f");
            opt("us_per_published",
                cpu && r.published ? std::optional(*cpu * 1e6 / static_cast<double>(r.published)) : std::nullopt, "%.4f");
            out.back() = '}';  // the last figure's comma
            out += ',';
        }
        out.back() = '}';
        out += ',';
    }
    opt("server_rss_before_bytes", bytes(r.server_rss_before), "%.0f");
    opt("server_rss_first_bytes", bytes(r.server_rss_first), "%.0f");
    opt("server_rss_after_bytes", bytes(r.server_rss_after), "%.0f");
    opt("rss_per_conn_bytes", rss_per_connection(r), "%.1f");
    opt("server_rss_drained_bytes", bytes(r.server_rss_drained), "%.0f");
    opt("rss_drained_growth",
        r.server_rss_drained && r.server_rss_first
            ? std::optional(static_cast<double>(*r.server_rss_drained) / static_cast<double>(*r.server_rss_first) - 1)
            : std::nullopt,
        "%.4f");
    integer("errors", r.errors);
    if (r.error.empty()) out += "\"error\":null";
    else out += "\"error\":" + json_string(r.error);
    return out + "}";
}

}  // namespace wsrelay::bench
