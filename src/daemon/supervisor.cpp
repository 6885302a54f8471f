// SPDX-License-Identifier: Apache-2.0
#include "daemon/supervisor.h"

#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "daemon/notify.h"
#include "io/event_loop.h"
#include "util/log.h"

namespace wsrelay::daemon {

namespace {

constexpr uint64_t kStatusIntervalMs = 5000;
constexpr uint64_t kReloadTimeoutMs = 30000;
constexpr uint64_t kFirstBackoffMs = 1000;

std::string describe_exit(int status) {
    char buf[96];
    if (WIFEXITED(status)) {
        std::snprintf(buf, sizeof buf, "exited with status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        std::snprintf(buf, sizeof buf, "was killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                      WCOREDUMP(status) ? ", core dumped" : "");
    } else {
        std::snprintf(buf, sizeof buf, "ended with wait status %#x", status);
    }
    return buf;
}

// One worker's kStatsField value: "<ws> <all> <rooms> <rate> <cluster>".
struct Stats {
    uint64_t ws = 0, all = 0, rooms = 0;
    double rate = 0;
    char cluster = '-';  // 'u' up, 'd' down, '-' no cluster
};

std::optional<Stats> parse_stats(const std::string& text) {
    Stats s;
    char cluster[8] = "-";
    if (std::sscanf(text.c_str(), "%lu %lu %lu %lf %7s", &s.ws, &s.all, &s.rooms, &s.rate, cluster) != 5)
        return std::nullopt;
    s.cluster = cluster[0] == 'u' ? 'u' : cluster[0] == 'd' ? 'd' : '-';
    return s;
}

}  // namespace

uint32_t resolve_workers(uint32_t configured) noexcept {
    if (configured != 0) return configured;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<uint32_t>(std::max(1, CPU_COUNT(&set)));
    // Refused (a seccomp filter, say): the CPUs online.
    const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? static_cast<uint32_t>(std::min<long>(online, 1024)) : 1;
}

Supervisor::Supervisor(Settings settings) : settings_(std::move(settings)) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGCHLD, SIGHUP, SIGTERM, SIGINT}) sigaddset(&set, s);
    if (sigprocmask(SIG_BLOCK, &set, &old_mask_) != 0)
        throw std::runtime_error(std::string("sigprocmask: ") + std::strerror(errno));
    signal_fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!signal_fd_) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));

    // The workers' NOTIFY_SOCKET: a datagram socket in the abstract namespace (nothing on disk
    // to clean up), named after our pid; the kernel tells us who sent each message.
    notify_fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!notify_fd_) throw std::runtime_error(std::string("socket(AF_UNIX): ") + std::strerror(errno));
    const int on = 1;
    if (::setsockopt(notify_fd_.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
        throw std::runtime_error(std::string("SO_PASSCRED: ") + std::strerror(errno));
    for (int attempt = 0;; ++attempt) {
        notify_address_ = "@wsrelay-" + std::to_string(::getpid()) + "-" + std::to_string(attempt);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, notify_address_.data(), notify_address_.size());
        addr.sun_path[0] = '\0';
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + notify_address_.size());
        if (::bind(notify_fd_.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0) break;
        if (errno != EADDRINUSE || attempt >= 100)
            throw std::runtime_error("bind(" + notify_address_ + "): " + std::strerror(errno));
    }
    own_watchdog_ms_ = watchdog_interval_ms();
    // A worker pings at half its WATCHDOG_USEC: give it systemd's own budget when there is one.
    if (own_watchdog_ms_) worker_watchdog_ms_ = own_watchdog_ms_ * 2;
    workers_.resize(settings_.workers);
    for (uint32_t i = 0; i < settings_.workers; ++i) workers_[i].index = i + 1;
}

Supervisor::~Supervisor() { sigprocmask(SIG_SETMASK, &old_mask_, nullptr); }

Supervisor::Worker* Supervisor::by_pid(pid_t pid) {
    for (Worker& w : workers_)
        if (w.pid == pid) return &w;
    return nullptr;
}

void Supervisor::start(Worker& w) {
    const uint64_t now = io::monotonic_ms();
    std::fflush(nullptr);  // nothing buffered is written twice, by us and by the worker
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        WSLOG_ERR("worker %u: fork: %s; trying again in 1 s", w.index, std::strerror(errno));
        w.start_at_ms = now + 1000;
        return;
    }
    if (pid == 0) {
        // The worker: a reactor of its own. It keeps the listening sockets (inherited) and drops
        // what is ours; the signals we take through the signalfd are its to handle again.
        signal_fd_.reset();
        notify_fd_.reset();
        // SIGCHLD as before; SIGHUP, SIGTERM and SIGINT stay blocked until the worker's own
        // signalfd takes them (one sent meanwhile waits there): a reload right after a restart
        // must not kill the new worker with SIGHUP's default action.
        sigset_t mask = old_mask_;
        for (int sig : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&mask, sig);
        sigdelset(&mask, SIGCHLD);
        sigprocmask(SIG_SETMASK, &mask, nullptr);
        // A main process that dies (kill -9, a crash) takes its workers along: orphans would keep
        // the listening sockets, and with SO_REUSEPORT a share of a restarted service's
        // connections. SIGTERM, so that they close their peers with 1001 as on a stop; it waits,
        // blocked, for the worker's signalfd. A main process gone before this line: the same.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::kill(::getpid(), SIGTERM);
        ::setenv("NOTIFY_SOCKET", notify_address_.c_str(), 1);
        ::setenv("WATCHDOG_USEC", std::to_string(worker_watchdog_ms_ * 1000).c_str(), 1);
        ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
        ::setenv("WSRELAY_WORKER", std::to_string(w.index).c_str(), 1);
        for (const char* v : {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}) ::unsetenv(v);
        int status = 1;
        try {
            status = settings_.run_worker(w.index);
        } catch (const std::exception& e) {
            WSLOG_ERR("worker %u: %s", w.index, e.what());
        }
        // exit(), not _exit(): the worker ends as a process of its own would (atexit handlers;
        // under LeakSanitizer, its leak check). The supervisor's objects on the stack it inherited
        // stay reachable, and are not leaks.
        std::exit(status);
    }
    w.pid = pid;
    w.started_ms = now;
    w.last_ping_ms = now;
    w.ready = false;
    w.killed = Worker::Killed::no;
    w.stats.clear();
    w.start_at_ms = 0;
    WSLOG_INFO("worker %u started (pid %d)", w.index, static_cast<int>(pid));
}

int Supervisor::run() {
    WSLOG_NOTICE("starting %u workers", settings_.workers);
    for (Worker& w : workers_) start(w);
    const uint64_t t0 = io::monotonic_ms();
    next_status_ms_ = t0 + kStatusIntervalMs;
    if (own_watchdog_ms_) next_own_ping_ms_ = t0;
    for (;;) {
        const uint64_t now = io::monotonic_ms();
        tick(now);
        if (stopping_ && std::none_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.pid != 0; })) break;
        pollfd fds[2] = {{signal_fd_.get(), POLLIN, 0}, {notify_fd_.get(), POLLIN, 0}};
        const int n = ::poll(fds, 2, 250);  // the tick above runs at least 4 times a second
        if (n < 0 && errno != EINTR) {
            WSLOG_ERR("supervisor: poll: %s", std::strerror(errno));
            return 1;
        }
        if (n <= 0) continue;
        if (fds[1].revents) on_notify();
        if (fds[0].revents) on_signal();
    }
    WSLOG_NOTICE("all workers are gone; exiting");
    return all_clean_ ? 0 : 1;
}

void Supervisor::on_signal() {
    signalfd_siginfo info;
    while (::read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo == SIGCHLD) {
            // One SIGCHLD may stand for several exits: reap them all.
            for (;;) {
                int status = 0;
                const pid_t pid = ::waitpid(-1, &status, WNOHANG);
                if (pid <= 0) break;
                on_exit(pid, status);
            }
        } else if (info.ssi_signo == SIGHUP) {
            begin_reload();
        } else {
            begin_shutdown(static_cast<int>(info.ssi_signo));
        }
    }
}

void Supervisor::on_notify() {
    // Drain the queue: each datagram is one worker's sd_notify message.
    for (;;) {
        char buf[4096];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        iovec iov{buf, sizeof buf - 1};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(notify_fd_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return;
        pid_t sender = 0;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                ucred cred;
                std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
                sender = cred.pid;
            }
        Worker* w = by_pid(sender);
        if (!w) continue;  // not one of ours (or one already reaped): ignored
        const uint64_t now = io::monotonic_ms();
        std::string_view text(buf, static_cast<size_t>(n));
        while (!text.empty()) {
            const size_t eol = text.find('\n');
            const std::string_view line = text.substr(0, eol);
            text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
            if (line == "READY=1") {
                w->ready = true;
            } else if (line == "WATCHDOG=1") {
                w->last_ping_ms = now;
            } else if (line.starts_with(kStatsField)) {
                w->stats = std::string(line.substr(std::strlen(kStatsField)));
            }
        }
        maybe_ready();
    }
}

void Supervisor::maybe_ready() {
    if (stopping_) return;
    const bool all = std::all_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.pid != 0 && w.ready; });
    if (!all) return;
    if (!announced_ready_) {
        announced_ready_ = true;
        reloading_ = false;  // a SIGHUP during the start: these READY=1 answer it too
        WSLOG_NOTICE("all %u workers are ready", settings_.workers);
        notify_ready(aggregate_status());
    } else if (reloading_) {
        reloading_ = false;
        WSLOG_NOTICE("every worker reloaded its configuration");
        notify_ready(aggregate_status());
    }
}

void Supervisor::on_exit(pid_t pid, int status) {
    Worker* w = by_pid(pid);
    if (!w) return;
    const uint64_t now = io::monotonic_ms();
    w->pid = 0;
    w->ready = false;
    w->stats.clear();
    if (stopping_) {
        const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!clean) {
            all_clean_ = false;
            WSLOG_ERR("worker %u (pid %d) %s during the shutdown", w->index, static_cast<int>(pid), describe_exit(status).c_str());
        } else {
            WSLOG_INFO("worker %u (pid %d) has shut down", w->index, static_cast<int>(pid));
        }
        return;
    }
    // Not asked for: logged, and replaced. One that keeps failing soon after its start waits a
    // backoff first, so that a worker that cannot start does not spin the CPU.
    std::erase_if(w->failures_ms, [&](uint64_t t) { return now - t > kFastFailureWindowMs; });
    w->failures_ms.push_back(now);
    if (now - w->started_ms > kFastFailureWindowMs) w->backoff_ms = 0;
    if (static_cast<int>(w->failures_ms.size()) >= kFastFailures)
        w->backoff_ms = w->backoff_ms ? std::min(w->backoff_ms * 2, kMaxBackoffMs) : kFirstBackoffMs;
    WSLOG_ERR("worker %u (pid %d) %s%s; its connections are lost, starting a new worker%s", w->index,
              static_cast<int>(pid), describe_exit(status).c_str(),
              w->killed == Worker::Killed::by_watchdog ? " (killed: it stopped answering the watchdog)" : "",
              w->backoff_ms ? (" in " + std::to_string(w->backoff_ms) + " ms (it keeps failing)").c_str() : "");
    w->start_at_ms = now + w->backoff_ms;
    if (!w->backoff_ms) start(*w);
}

void Supervisor::tick(uint64_t now) {
    if (!stopping_) {
        for (Worker& w : workers_) {
            if (w.pid == 0 && w.start_at_ms && now >= w.start_at_ms) start(w);
            if (w.pid != 0 && w.killed == Worker::Killed::no && now - w.last_ping_ms > worker_watchdog_ms_) {
                // Wedged (or stopped): its loop has not run for a whole watchdog period. SIGKILL,
                // which a stopped process cannot hold back; SIGCHLD brings it to on_exit().
                WSLOG_ERR("worker %u (pid %d) sent no WATCHDOG=1 for %llu ms: killing it", w.index,
                          static_cast<int>(w.pid), static_cast<unsigned long long>(now - w.last_ping_ms));
                w.killed = Worker::Killed::by_watchdog;
                ::kill(w.pid, SIGKILL);
            }
        }
        if (reloading_ && now >= reload_deadline_ms_) {
            reloading_ = false;
            WSLOG_WARNING("reload: not every worker confirmed its reload within %llu s; carrying on",
                          static_cast<unsigned long long>(kReloadTimeoutMs / 1000));
            notify_ready(aggregate_status());
        }
        if (announced_ready_ && now >= next_status_ms_) {
            next_status_ms_ = now + kStatusIntervalMs;
            notify_status(aggregate_status());
        }
    } else if (now >= drain_deadline_ms_) {
        for (Worker& w : workers_)
            if (w.pid != 0 && w.killed != Worker::Killed::at_drain_deadline) {
                WSLOG_ERR("worker %u (pid %d) still running %llu ms after the shutdown began: killing it", w.index,
                          static_cast<int>(w.pid), static_cast<unsigned long long>(settings_.drain_timeout_ms));
                w.killed = Worker::Killed::at_drain_deadline;  // once
                ::kill(w.pid, SIGKILL);
            }
    }
    if (own_watchdog_ms_ && now >= next_own_ping_ms_) {
        next_own_ping_ms_ = now + own_watchdog_ms_;
        notify_watchdog();
    }
}

void Supervisor::begin_reload() {
    if (stopping_) return;
    notify_reloading();
    const Reload r = settings_.reload();
    if (!r.ok) {
        WSLOG_ERR("reload failed, the workers keep the running configuration and certificates: %s", r.error.c_str());
        notify_ready(aggregate_status());
        return;
    }
    if (r.workers != settings_.workers)
        WSLOG_WARNING("reload: [server] workers changes only on restart; keeping %u workers (the file asks for %u)",
                      settings_.workers, r.workers);
    settings_.drain_timeout_ms = r.drain_timeout_ms;
    reloading_ = true;
    reload_deadline_ms_ = io::monotonic_ms() + kReloadTimeoutMs;
    for (Worker& w : workers_)
        if (w.pid != 0) {
            w.ready = false;
            ::kill(w.pid, SIGHUP);
        }
    WSLOG_NOTICE("reload: configuration checked; every worker reloads it");
}

void Supervisor::begin_shutdown(int signo) {
    if (stopping_) return;
    stopping_ = true;
    drain_deadline_ms_ = io::monotonic_ms() + settings_.drain_timeout_ms;
    notify_stopping("shutting down");
    WSLOG_NOTICE("shutting down (%s): stopping %u workers", signo == SIGINT ? "SIGINT" : "SIGTERM", settings_.workers);
    for (Worker& w : workers_)
        if (w.pid != 0) ::kill(w.pid, SIGTERM);
}

std::string Supervisor::aggregate_status() const {
    uint64_t ws = 0, all = 0, rooms = 0, up = 0, cluster = 0;
    double rate = 0;
    uint32_t running = 0;
    for (const Worker& w : workers_) {
        if (w.pid == 0) continue;
        ++running;
        const auto s = parse_stats(w.stats);
        if (!s) continue;
        ws += s->ws;
        all += s->all;
        rooms += s->rooms;
        rate += s->rate;
        if (s->cluster != '-') ++cluster;
        if (s->cluster == 'u') ++up;
    }
    char buf[256];
    std::snprintf(buf, sizeof buf, "%u of %u workers: %llu WebSocket connections (%llu in all), %llu rooms, %.0f messages/s in",
                  running, settings_.workers, static_cast<unsigned long long>(ws), static_cast<unsigned long long>(all),
                  static_cast<unsigned long long>(rooms), rate);
    std::string line = buf;
    if (cluster) {
        std::snprintf(buf, sizeof buf, ", cluster link %s (%llu of %u workers)", up == cluster ? "up" : "DOWN",
                      static_cast<unsigned long long>(up), running);
        line += buf;
    }
    return line;
}

}  // namespace wsrelay::daemon
