// SPDX-License-Identifier: Apache-2.0
// The reactor: listeners, every connection, the rooms, and the per-turn bookkeeping that makes
// edge-triggered I/O work.
//
// One turn of run():
//   1. connections on the ready list (read budget ran out last turn) read again;
//   2. every dirty connection flushes its queue once, so a burst of broadcasts becomes one
//      sendmsg per peer ("write before sleep");
//   3. connections retired this turn are freed, and rooms left empty are freed;
//   4. the timerfd is re-armed if the earliest deadline moved earlier; epoll_wait (timeout 0 when
//      the ready list is non-empty) dispatches events.
// Timeouts live in four intrusive lists, each ordered by the time its period started, so expiry
// looks only at list heads: handshake (Request), idle (Open, not pinged), pinged (Open, ping sent),
// closing (Closing).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "io/event_loop.h"
#include "io/listener.h"
#include "io/tls_context.h"
#include "relay/access.h"
#include "relay/connection.h"
#include "relay/http.h"
#include "relay/hub.h"
#include "relay/stats.h"
#include "util/address.h"
#include "util/intrusive_list.h"
#include "util/log.h"

namespace wsrelay::relay {

// A listening socket the server should serve, already bound (or inherited from systemd).
struct ListenSocket {
    io::UniqueFd fd;
    std::string address;  // for logs
    bool tls = false;
    bool metrics = false;  // serve /metrics on this socket
    // Other worker processes accept on the same socket: registered with EPOLLEXCLUSIVE, so that a
    // new connection wakes one worker rather than every one.
    bool shared = false;
    bool api = false;  // serve the HTTP API (/api/...) on this socket
};

class Server {
public:
    using List = util::IntrusiveList<Connection, &Connection::timer_hook_>;

    // `tls` may be null when no listener speaks TLS; `credentials` null: no token keys, no API keys.
    Server(io::EventLoop& loop, config::Config config, std::vector<ListenSocket> sockets,
           std::shared_ptr<io::TlsContexts> tls, std::shared_ptr<const Credentials> credentials = nullptr);
    ~Server();

    // Runs until shutdown completes. Returns the process exit status.
    int run();
    // One loop turn, waiting at most `max_wait_ms` for events (-1: until one comes). False once
    // a shutdown has completed. For run() and for tests that drive the loop themselves.
    bool turn(int max_wait_ms);
    // Takes an already connected socket as if a listener had accepted it (fuzzing, tests).
    void accept_connection(io::UniqueFd fd, const sockaddr_storage& peer, socklen_t len, bool tls);
    // SIGTERM/SIGINT: stop accepting, close every peer with 1001, exit when all are gone or after
    // shutdown_timeout.
    void begin_shutdown(std::string_view why);
    // Runs `fn` every `interval_ms` from the reactor's own timer (status line, watchdog): a stuck
    // loop stops these too, which is the point of a watchdog.
    void add_periodic(uint64_t interval_ms, std::function<void()> fn);
    // SIGHUP with a config that parsed: apply what can change at run time. Null `tls` or
    // `credentials`: keep the running ones.
    void apply_config(config::Config config, std::shared_ptr<io::TlsContexts> tls,
                      std::shared_ptr<const Credentials> credentials = nullptr);
    const Credentials& credentials() const noexcept { return *credentials_; }
    // auth.expire_connections: `c` is closed (Connection::on_token_expired) once the wall clock
    // reaches `expires_s`; unwatch before it is freed.
    void watch_expiry(Connection& c, int64_t expires_s);
    void unwatch_expiry(Connection& c, int64_t expires_s) noexcept { expiries_.erase({expires_s, &c}); }

    const config::Config& config() const noexcept { return config_; }
    const StaticSite& site() const noexcept { return site_; }
    Hub& hub() noexcept { return hub_; }
    Stats& stats() noexcept { return stats_; }
    uint64_t now_ms() const noexcept { return now_ms_; }
    size_t open_connections() const noexcept { return open_count_; }
    bool shutting_down() const noexcept { return shutting_down_; }

    // The shared read buffer: valid until the next read by any connection.
    std::span<std::byte> scratch() noexcept { return {scratch_.get(), kScratchBytes}; }
    static constexpr size_t kScratchBytes = 256 * 1024;
    // Where small frames are gathered before a write (into one TLS record, or one iovec).
    std::span<std::byte> write_staging() noexcept { return {scratch_.get() + kScratchBytes, kWriteStagingBytes}; }
    static constexpr size_t kWriteStagingBytes = io::Transport::kStagingBytes;

    // Bookkeeping called by connections.
    void mark_dirty(Connection& c) noexcept { dirty_.push_back(c); }
    void mark_ready(Connection& c) noexcept { ready_.push_back(c); }
    void set_timer(Connection& c, List& list) noexcept {
        c.timer_since_ms = now_ms_;
        list.push_back(c);
    }
    void retire(Connection& c) noexcept;
    List& handshake_timers() noexcept { return handshake_timers_; }
    List& idle_timers() noexcept { return idle_timers_; }
    List& pinged_timers() noexcept { return pinged_timers_; }
    List& closing_timers() noexcept { return closing_timers_; }
    // Rate-limited warnings for limits a peer can trip at will.
    bool warn_allowed(uint64_t& suppressed) noexcept { return warn_limit_.allow(now_ms_, suppressed); }

private:
    class TimerFd;
    void on_accept(io::UniqueFd fd, const sockaddr_storage& peer, socklen_t len, const ListenSocket& how);
    void on_accept_exhausted(int error);
    void run_timers();
    void arm_timer();
    uint64_t next_deadline() const noexcept;
    void free_retired() noexcept;
    void expire_tokens();
    void release_memory();

    io::EventLoop& loop_;
    config::Config config_;
    StaticSite site_;
    Stats stats_;
    Hub hub_;
    std::shared_ptr<io::TlsContexts> tls_;
    std::shared_ptr<const Credentials> credentials_;
    // Members whose token expires, by when (wall clock, seconds); checked every kExpiryCheckMs.
    std::set<std::pair<int64_t, Connection*>> expiries_;
    bool expiry_check_added_ = false;
    static constexpr uint64_t kExpiryCheckMs = 250;
    std::vector<std::unique_ptr<io::Listener>> listeners_;
    std::vector<ListenSocket> listener_info_;  // tls/metrics flags and address of listeners_[i] (fd unused)
    std::unique_ptr<TimerFd> timer_;
    std::unique_ptr<std::byte[]> scratch_;

    util::IntrusiveList<Connection, &Connection::hub_hook_> connections_;
    util::IntrusiveList<Connection, &Connection::hub_hook_> graveyard_;
    util::IntrusiveList<Connection, &Connection::dirty_hook_> dirty_;
    util::IntrusiveList<Connection, &Connection::ready_hook_> ready_;
    List handshake_timers_, idle_timers_, pinged_timers_, closing_timers_;

    struct Periodic {
        uint64_t interval_ms;
        uint64_t next_ms;
        std::function<void()> fn;
    };
    std::vector<Periodic> periodic_;

    uint64_t now_ms_ = 0;
    uint64_t armed_deadline_ = 0;        // when the timerfd fires; 0: not armed
    uint64_t accept_resume_at_ = 0;      // listeners paused on EMFILE resume then; 0: not paused
    uint64_t shutdown_deadline_ = 0;
    uint64_t next_id_ = 1;
    size_t open_count_ = 0;
    // Memory back to the system after a crowd has gone (release_memory()): the most connections
    // open since the last release, and whether the check runs (added once the server got busy).
    size_t open_peak_ = 0;
    bool release_check_added_ = false;
    static constexpr size_t kReleaseMinDrop = 1000;  // connections: about half a megabyte
    static constexpr uint64_t kReleaseCheckMs = 1000;
    // Open connections per client IP, for max_connections_per_ip. An entry exists only while
    // that IP has a connection.
    std::unordered_map<util::IpKey, uint32_t, util::IpKeyHash> per_ip_;
    bool shutting_down_ = false;
    util::RateLimit warn_limit_{1000, 5};
    util::RateLimit accept_warn_limit_{10'000, 1};  // EMFILE may last: one line per 10 s at most
};

}  // namespace wsrelay::relay
