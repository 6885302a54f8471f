// SPDX-License-Identifier: Apache-2.0
// Logging to stderr with sd-daemon "<N>" priority prefixes, which journald turns into priorities.
// Check the level before formatting: log() is printf-like and cheap when the level is filtered.
#pragma once

#include "util/address.h"

#include <cstdint>
#include <optional>
#include <string_view>

namespace wsrelay::util {

enum class LogLevel : uint8_t { Err = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

std::optional<LogLevel> parse_log_level(std::string_view name) noexcept;
std::string_view log_level_name(LogLevel level) noexcept;

void set_log_level(LogLevel level) noexcept;
LogLevel log_level() noexcept;
inline bool log_enabled(LogLevel level) noexcept { return level <= log_level(); }

void log_write(LogLevel level, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));

// Structured context of a per-connection event. Under journald each set field becomes a journal
// field (WSRELAY_CONN, WSRELAY_PEER, WSRELAY_ROOM, WSRELAY_CLOSE_CODE), so
// `journalctl -u wsrelay WSRELAY_ROOM=/lobby` works; on plain stderr the message text carries them.
struct LogFields {
    uint64_t conn = 0;           // 0: none
    AddressText peer;            // empty: none
    std::string_view room;
    std::string_view user;       // the token's sub; empty: none
    int close_code = -1;         // -1: none
};
void log_event(LogLevel level, const LogFields& fields, const char* fmt, ...) noexcept
    __attribute__((format(printf, 3, 4)));

// Where formatted lines go. The default writes "<N>message\n" to stderr; daemon/ installs a
// journald sink when stderr is connected to the journal.
using LogSink = void (*)(LogLevel level, const LogFields* fields, std::string_view message) noexcept;
void set_log_sink(LogSink sink) noexcept;

// Passes at most `burst` events per `interval_ms`, and counts the rest so the next passing message
// can say how many were suppressed. For warnings a peer can trigger at will (limits reached).
class RateLimit {
public:
    RateLimit(uint64_t interval_ms, uint32_t burst) noexcept : interval_ms_(interval_ms), burst_(burst) {}
    // True if this event may be logged; `suppressed` receives how many were dropped before it.
    bool allow(uint64_t now_ms, uint64_t& suppressed) noexcept;

private:
    uint64_t interval_ms_;
    uint32_t burst_;
    uint64_t window_start_ = 0;
    uint32_t in_window_ = 0;
    uint64_t suppressed_ = 0;
};

}  // namespace wsrelay::util

#define WSRELAY_LOG(level, ...)                                                                \
    do {                                                                                       \
        if (::wsrelay::util::log_enabled(level)) ::wsrelay::util::log_write(level, __VA_ARGS__); \
    } while (0)
#define WSLOG_ERR(...) WSRELAY_LOG(::wsrelay::util::LogLevel::Err, __VA_ARGS__)
#define WSLOG_WARNING(...) WSRELAY_LOG(::wsrelay::util::LogLevel::Warning, __VA_ARGS__)
#define WSLOG_NOTICE(...) WSRELAY_LOG(::wsrelay::util::LogLevel::Notice, __VA_ARGS__)
#define WSLOG_INFO(...) WSRELAY_LOG(::wsrelay::util::LogLevel::Info, __VA_ARGS__)
#define WSLOG_DEBUG(...) WSRELAY_LOG(::wsrelay::util::LogLevel::Debug, __VA_ARGS__)
#define WSLOG_EVENT(level, fields, ...)                                                                    \
    do {                                                                                                 \
        if (::wsrelay::util::log_enabled(level)) ::wsrelay::util::log_event(level, fields, __VA_ARGS__); \
    } while (0)
