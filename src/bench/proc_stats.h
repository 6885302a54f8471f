// SPDX-License-Identifier: Apache-2.0
// CPU time and memory of this process (getrusage) and of the server under test (/proc/PID), for
// "server CPU per message" and "RSS per connection". Readings are snapshots; the caller subtracts.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace wsrelay::bench {

struct CpuTimes {
    double user_s = 0;
    double system_s = 0;
    double total() const noexcept { return user_s + system_s; }
};

// This process: user and system time so far.
CpuTimes own_cpu() noexcept;

// Another process: utime + stime from /proc/PID/stat (clock ticks, usually 10 ms). Empty if the
// process is gone or unreadable.
std::optional<CpuTimes> process_cpu(pid_t pid) noexcept;

// Resident set size of a process in bytes, from VmRSS in /proc/PID/status.
std::optional<uint64_t> process_rss_bytes(pid_t pid) noexcept;

}  // namespace wsrelay::bench
