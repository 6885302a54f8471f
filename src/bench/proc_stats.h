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

// Another process: the CPU time of all its threads so far, in seconds. From the scheduler's own
// account, /proc/PID/task/*/schedstat (nanoseconds): a server that does 40 µs of work 100 times a
// second shows it, where utime + stime in /proc/PID/stat move in clock ticks (usually 10 ms).
// Falls back to /proc/PID/stat on a kernel without schedstats. Empty if the process is gone or
// unreadable.
std::optional<double> process_cpu_s(pid_t pid) noexcept;

// Resident set size of a process in bytes, from VmRSS in /proc/PID/status.
std::optional<uint64_t> process_rss_bytes(pid_t pid) noexcept;

}  // namespace wsrelay::bench
