// SPDX-License-Identifier: Apache-2.0
#include "bench/proc_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "io/unique_fd.h"

namespace wsrelay::bench {
namespace {

double seconds(const timeval& tv) noexcept { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; }

// Reads a small /proc file into `buf` (NUL-terminated). Returns the length, or -1.
ssize_t read_proc(pid_t pid, const char* file, char* buf, size_t size) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/%s", static_cast<int>(pid), file);
    const io::UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return -1;
    size_t len = 0;
    while (len + 1 < size) {
        const ssize_t n = ::read(fd.get(), buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += static_cast<size_t>(n);
    }
    buf[len] = '\0';
    return static_cast<ssize_t>(len);
}

}  // namespace

CpuTimes own_cpu() noexcept {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return {seconds(ru.ru_utime), seconds(ru.ru_stime)};
}

namespace {

// utime + stime, in clock ticks turned into seconds.
std::optional<double> stat_cpu_s(pid_t pid) noexcept {
    char buf[1024];
    if (read_proc(pid, "stat", buf, sizeof buf) <= 0) return std::nullopt;
    // proc(5): "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so fields are
    // counted from the last ')'. utime and stime are fields 14 and 15.
    const char* p = std::strrchr(buf, ')');
    if (!p) return std::nullopt;
    ++p;
    for (int field = 3; field < 14; ++field) {
        p = std::strchr(p + 1, ' ');
        if (!p) return std::nullopt;
    }
    char* end = nullptr;
    const unsigned long long utime = std::strtoull(p, &end, 10);
    const unsigned long long stime = std::strtoull(end, &end, 10);
    static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return static_cast<double>(utime + stime) / ticks;
}

}  // namespace

std::optional<double> process_cpu_s(pid_t pid) noexcept {
    // schedstat's first field is the time the task has run, in ns (proc(5)). Threads come and go
    // (redis-server's, say): those gone are no longer counted, which is negligible for the
    // long-lived, mostly single-threaded servers measured here.
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
    DIR* dir = ::opendir(path);
    if (!dir) return std::nullopt;
    uint64_t ns = 0;
    bool any = false;
    while (const dirent* e = ::readdir(dir)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char file[300], buf[128];  // "task/" + a name of up to 255 bytes + "/schedstat"
        std::snprintf(file, sizeof file, "task/%s/schedstat", e->d_name);
        if (read_proc(pid, file, buf, sizeof buf) <= 0) continue;
        ns += std::strtoull(buf, nullptr, 10);
        any = true;
    }
    ::closedir(dir);
    if (!any) return stat_cpu_s(pid);
    return static_cast<double>(ns) / 1e9;
}

std::optional<uint64_t> process_rss_bytes(pid_t pid) noexcept {
    char buf[4096];
    if (read_proc(pid, "status", buf, sizeof buf) <= 0) return std::nullopt;
    const char* line = std::strstr(buf, "\nVmRSS:");
    if (!line) return std::nullopt;
    return std::strtoull(line + 7, nullptr, 10) * 1024;  // "VmRSS:   1234 kB"
}

}  // namespace wsrelay::bench
