// SPDX-License-Identifier: Apache-2.0
#include "util/log.h"

#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace wsrelay::util {
void stderr_sink(LogLevel level, const LogFields* fields, std::string_view message) noexcept;

namespace {
LogLevel g_level = LogLevel::Info;
// journald (and any log collector) reads the "<N>" prefix; a person at a terminal does not need it.
const bool g_prefix = !::isatty(STDERR_FILENO);
}

std::optional<LogLevel> parse_log_level(std::string_view name) noexcept {
    if (name == "err" || name == "error") return LogLevel::Err;
    if (name == "warning") return LogLevel::Warning;
    if (name == "notice") return LogLevel::Notice;
    if (name == "info") return LogLevel::Info;
    if (name == "debug") return LogLevel::Debug;
    return std::nullopt;
}

std::string_view log_level_name(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::Err: return "err";
        case LogLevel::Warning: return "warning";
        case LogLevel::Notice: return "notice";
        case LogLevel::Info: return "info";
        case LogLevel::Debug: return "debug";
    }
    return "info";
}

void set_log_level(LogLevel level) noexcept { g_level = level; }
LogLevel log_level() noexcept { return g_level; }

void stderr_sink(LogLevel level, const LogFields*, std::string_view message) noexcept {
    // One write() per line, so lines from a crash handler or a child never interleave mid-line.
    char buf[2100];
    const int n = g_prefix ? std::snprintf(buf, sizeof buf, "<%d>", static_cast<int>(level)) : 0;
    size_t len = static_cast<size_t>(n);
    const size_t take = std::min(message.size(), sizeof buf - len - 1);
    std::memcpy(buf + len, message.data(), take);
    len += take;
    buf[len++] = '\n';
    for (size_t off = 0; off < len;) {
        const ssize_t w = ::write(STDERR_FILENO, buf + off, len - off);
        if (w <= 0) break;  // nowhere to report a failing stderr
        off += static_cast<size_t>(w);
    }
}

namespace {
LogSink g_sink = stderr_sink;

void vlog(LogLevel level, const LogFields* fields, const char* fmt, va_list ap) noexcept {
    char buf[2048];
    const int m = std::vsnprintf(buf, sizeof buf, fmt, ap);
    const size_t len = m < 0 ? 0 : std::min(static_cast<size_t>(m), sizeof buf - 1);
    g_sink(level, fields, std::string_view(buf, len));
}
}  // namespace

void set_log_sink(LogSink sink) noexcept { g_sink = sink ? sink : stderr_sink; }

void log_write(LogLevel level, const char* fmt, ...) noexcept {
    va_list ap;
    va_start(ap, fmt);
    vlog(level, nullptr, fmt, ap);
    va_end(ap);
}

void log_event(LogLevel level, const LogFields& fields, const char* fmt, ...) noexcept {
    va_list ap;
    va_start(ap, fmt);
    vlog(level, &fields, fmt, ap);
    va_end(ap);
}

bool RateLimit::allow(uint64_t now_ms, uint64_t& suppressed) noexcept {
    if (now_ms - window_start_ >= interval_ms_) {
        window_start_ = now_ms;
        in_window_ = 0;
    }
    if (in_window_ >= burst_) {
        ++suppressed_;
        return false;
    }
    ++in_window_;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
}

}  // namespace wsrelay::util
