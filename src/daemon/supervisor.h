// SPDX-License-Identifier: Apache-2.0
// The main process of `workers = N`: it holds the listening sockets (opened, or received from
// systemd, before it starts) and N worker processes, each a complete single-threaded reactor
// forked from it with those sockets. The main process holds no connection; it supervises:
//
// - The service manager hears only the main process (Type=notify, NotifyAccess=main). Each
//   worker's sd_notify messages go to a datagram socket of the main process instead (its
//   NOTIFY_SOCKET), which knows the sender by its credentials (SO_PASSCRED). READY=1 reaches
//   systemd once every worker has sent it; STATUS= sums what the workers report
//   (kStatsField); WATCHDOG=1 is the main process's own, and a worker that stops sending its
//   WATCHDOG=1 (given WATCHDOG_USEC/WATCHDOG_PID of its own) is killed and replaced.
// - A worker that exits is logged at err with its status and started again at once; one that
//   keeps failing (kFastFailures within kFastFailureWindowMs) is started again after a backoff.
// - SIGHUP: the main process checks the configuration (the caller's reload callback); if it is
//   valid, every worker gets SIGHUP and reloads itself, and READY=1 follows once all have.
// - SIGTERM/SIGINT: every worker gets it (each closes its peers with 1001); the main process exits
//   when the last is gone: 0 if every one exited 0. After the drain deadline, the rest get SIGKILL.
//
// One thread, a poll() loop over a signalfd and the notify socket: nothing here touches a
// connection, so it needs no more.
#pragma once

#include <sys/types.h>

#include <csignal>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/unique_fd.h"

namespace wsrelay::daemon {

// The workers' machine-readable figures, one line beside their STATUS= (see Supervisor):
// "X_WSRELAY_STATS=<WebSocket connections> <connections> <rooms> <messages/s> <cluster: up|down|->".
inline constexpr const char* kStatsField = "X_WSRELAY_STATS=";

// "auto": the CPUs this process may run on (sched_getaffinity), at least 1; else `configured`.
uint32_t resolve_workers(uint32_t configured) noexcept;

class Supervisor {
public:
    struct Reload {
        bool ok = false;
        std::string error;           // when !ok
        uint32_t workers = 0;        // resolved, as the new configuration asks (applies on restart)
        uint64_t drain_timeout_ms = 0;
    };
    struct Settings {
        uint32_t workers = 2;
        uint64_t drain_timeout_ms = 15000;  // after SIGTERM, before SIGKILL (shutdown_timeout + margin)
        // Runs in a freshly forked worker (index 1..N) and returns its exit status. The worker's
        // environment says NOTIFY_SOCKET (ours), WATCHDOG_USEC/WATCHDOG_PID and WSRELAY_WORKER.
        std::function<int(uint32_t index)> run_worker;
        // SIGHUP: load and check the configuration as a worker would.
        std::function<Reload()> reload;
    };

    explicit Supervisor(Settings settings);  // throws on failure (socket, signalfd)
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // Starts the workers and supervises them until the shutdown is complete. Returns the main
    // process's exit status. In a worker, never returns: the worker's status goes to exit().
    int run();

    // How long a worker may stay silent (no WATCHDOG=1) before it is killed, when systemd sets no
    // watchdog of its own.
    static constexpr uint64_t kDefaultWorkerWatchdogMs = 30000;
    static constexpr int kFastFailures = 3;
    static constexpr uint64_t kFastFailureWindowMs = 30000;
    static constexpr uint64_t kMaxBackoffMs = 30000;

private:
    struct Worker {
        uint32_t index = 0;
        pid_t pid = 0;                 // 0: not running
        uint64_t started_ms = 0;
        uint64_t last_ping_ms = 0;     // last WATCHDOG=1 (or start)
        bool ready = false;            // READY=1 since it started or was asked to reload
        enum class Killed : uint8_t { no, by_watchdog, at_drain_deadline };
        Killed killed = Killed::no;    // SIGKILL sent (once), and why
        std::string stats;             // its last kStatsField value
        std::vector<uint64_t> failures_ms;  // recent exits that were not asked for
        uint64_t backoff_ms = 0;
        uint64_t start_at_ms = 0;      // when to start it again (0: now / running)
    };

    void start(Worker& w);
    void on_signal();
    void on_notify();
    void on_exit(pid_t pid, int status);
    void tick(uint64_t now);
    void begin_reload();
    void begin_shutdown(int signo);
    void maybe_ready();
    std::string aggregate_status() const;
    Worker* by_pid(pid_t pid);

    Settings settings_;
    io::UniqueFd signal_fd_;
    io::UniqueFd notify_fd_;
    std::string notify_address_;     // "@wsrelay-<pid>-<n>", abstract namespace
    sigset_t old_mask_{};
    std::vector<Worker> workers_;
    uint64_t worker_watchdog_ms_ = kDefaultWorkerWatchdogMs;
    uint64_t own_watchdog_ms_ = 0;   // systemd's, halved; 0: none
    uint64_t next_own_ping_ms_ = 0;
    uint64_t next_status_ms_ = 0;
    bool announced_ready_ = false;
    bool reloading_ = false;
    uint64_t reload_deadline_ms_ = 0;
    bool stopping_ = false;
    uint64_t drain_deadline_ms_ = 0;
    bool all_clean_ = true;           // every worker that exited during shutdown exited 0
};

}  // namespace wsrelay::daemon
