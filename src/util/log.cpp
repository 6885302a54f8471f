#include "util/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace wsrelay::util {
namespace {
LogLevel g_level = LogLevel::Info;
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

void log_write(LogLevel level, const char* fmt, ...) noexcept {
    // One write() per line, so lines from a crash handler or a child never interleave mid-line.
    char buf[2048];
    int n = std::snprintf(buf, sizeof buf, "<%d>", static_cast<int>(level));
    va_list ap;
    va_start(ap, fmt);
    const int m = std::vsnprintf(buf + n, sizeof buf - static_cast<size_t>(n) - 1, fmt, ap);
    va_end(ap);
    size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    for (size_t off = 0; off < len;) {
        const ssize_t w = ::write(STDERR_FILENO, buf + off, len - off);
        if (w <= 0) break;  // nowhere to report a failing stderr
        off += static_cast<size_t>(w);
    }
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
