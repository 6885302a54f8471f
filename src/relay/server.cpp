// SPDX-License-Identifier: Apache-2.0
#include "relay/server.h"

#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace wsrelay::relay {

// The timerfd that wakes the loop for the earliest deadline. Armed one-shot at an absolute time;
// re-armed only when a deadline earlier than the armed one appears, so steady traffic costs no
// timerfd_settime calls.
class Server::TimerFd final : public io::Pollable {
public:
    explicit TimerFd(Server& s) : server_(s), fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
        if (!fd_) throw std::runtime_error(std::string("timerfd_create: ") + std::strerror(errno));
    }
    int fd() const noexcept { return fd_.get(); }
    void arm(uint64_t at_ms) noexcept {
        itimerspec its{};
        its.it_value.tv_sec = static_cast<time_t>(at_ms / 1000);
        its.it_value.tv_nsec = static_cast<long>((at_ms % 1000) * 1'000'000);
        ::timerfd_settime(fd_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
    }
    void on_event(uint32_t) override {
        uint64_t expirations;
        while (::read(fd_.get(), &expirations, sizeof expirations) > 0) {}
        server_.armed_deadline_ = 0;
        server_.run_timers();
    }

private:
    Server& server_;
    io::UniqueFd fd_;
};

Server::Server(io::EventLoop& loop, config::Config config, std::vector<ListenSocket> sockets,
               std::shared_ptr<io::TlsContexts> tls, std::shared_ptr<const Credentials> credentials)
    : loop_(loop),
      config_(std::move(config)),
      site_{config_.www_root, config_.healthz},
      hub_(stats_),
      tls_(std::move(tls)),
      credentials_(credentials ? std::move(credentials) : std::make_shared<const Credentials>()),
      timer_(std::make_unique<TimerFd>(*this)),
      scratch_(std::make_unique_for_overwrite<std::byte[]>(kScratchBytes + kWriteStagingBytes)) {
    now_ms_ = io::monotonic_ms();
    hub_.apply(config_);
    if (const int e = loop_.add(timer_->fd(), EPOLLIN, timer_.get()))
        throw std::runtime_error(std::string("epoll_ctl(timerfd): ") + std::strerror(e));
    for (ListenSocket& s : sockets) {
        if (s.tls && !tls_) throw std::runtime_error("listener " + s.address + " has tls = true but no [tls] certificate");
        auto l = std::make_unique<io::Listener>(
            std::move(s.fd), s.address,
            [this, i = listeners_.size()](io::UniqueFd fd, const sockaddr_storage& peer, socklen_t len) {
                on_accept(std::move(fd), peer, len, listener_info_[i]);
            },
            [this](int error) { on_accept_exhausted(error); });
        if (const int e = loop_.add(l->fd(), EPOLLIN | (s.shared ? EPOLLEXCLUSIVE : 0u), l.get()))
            throw std::runtime_error("epoll_ctl(listener " + s.address + "): " + std::strerror(e));
        listeners_.push_back(std::move(l));
        listener_info_.push_back({io::UniqueFd(), s.address, s.tls, s.metrics, s.shared, s.api});
        WSLOG_NOTICE("listening on %s (%s%s%s)", s.address.c_str(), s.tls ? "wss" : "ws", s.metrics ? ", /metrics" : "",
                     s.api ? ", /api" : "");
    }
}

Server::~Server() {
    // Free everything still alive (an abnormal exit path, or the end of shutdown_timeout).
    while (Connection* c = connections_.front()) {
        c->start_close(1001, "server exiting");  // best effort: retire() below frees it
        if (c->state() != Connection::State::Dead) {
            connections_.pop_front();
            delete c;
        }
    }
    free_retired();
}

void Server::on_accept(io::UniqueFd fd, const sockaddr_storage& peer, socklen_t len, const ListenSocket& how) {
    ++stats_.connections_accepted;
    if (shutting_down_) return;  // fd closes on return
    const util::IpKey ip = util::ip_key(reinterpret_cast<const sockaddr*>(&peer));
    const char* refused = nullptr;
    uint64_t limit = 0;
    if (open_count_ >= config_.max_connections) {
        refused = "max_connections";
        limit = config_.max_connections;
    } else if (config_.max_connections_per_ip != 0) {
        const auto it = per_ip_.find(ip);
        if (it != per_ip_.end() && it->second >= config_.max_connections_per_ip) {
            refused = "max_connections_per_ip";
            limit = config_.max_connections_per_ip;
        }
    }
    if (refused) {
        ++stats_.connections_refused;
        stats_.count_refusal(503);
        // One non-blocking write of a short 503: a well-behaved client learns why; nothing waits.
        // (A TLS client cannot read plain text before its handshake: it is just closed.)
        static const std::string kBusy = proto::build_error_response({503, "too many connections"});
        if (!how.tls) [[maybe_unused]] const ssize_t n = ::send(fd.get(), kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        uint64_t suppressed = 0;
        if (warn_allowed(suppressed))
            WSLOG_WARNING("%s (%llu) reached: refused %s with 503 (%llu similar suppressed)", refused,
                          static_cast<unsigned long long>(limit),
                          util::format_socket_address(reinterpret_cast<const sockaddr*>(&peer), len).c_str(),
                          static_cast<unsigned long long>(suppressed));
        return;
    }
    const int raw = fd.get();
    // Frames are complete when queued and flushed once per turn: Nagle would only add delay (and
    // stall TLS handshakes behind delayed ACKs).
    const int one = 1;
    ::setsockopt(raw, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    io::SslPtr ssl;
    if (how.tls) {
        ssl = tls_->new_session();
        if (!ssl) {
            WSLOG_ERR("SSL_new: %s, dropping a connection", io::tls_error_string().c_str());
            return;
        }
    }
    auto* c = new Connection(*this, std::move(fd), std::move(ssl), peer, len, next_id_++, how.metrics, how.api);
    if (const int e = loop_.add(raw, EPOLLIN | EPOLLOUT | EPOLLRDHUP, c)) {
        WSLOG_ERR("epoll_ctl(conn=%llu): %s, dropping it", static_cast<unsigned long long>(c->id()), std::strerror(e));
        delete c;
        return;
    }
    connections_.push_back(*c);
    if (++open_count_ > open_peak_) {
        open_peak_ = open_count_;
        if (open_peak_ >= kReleaseMinDrop && !release_check_added_) {
            release_check_added_ = true;
            add_periodic(kReleaseCheckMs, [this] { release_memory(); });
        }
    }
    ++per_ip_[ip];
    set_timer(*c, handshake_timers_);
    WSLOG_DEBUG("conn=%llu peer=%s accepted, %zu open", static_cast<unsigned long long>(c->id()), c->peer().c_str(),
              open_count_);
}

void Server::on_accept_exhausted(int error) {
    ++stats_.accept_pauses;
    constexpr uint64_t kPauseMs = 100;
    accept_resume_at_ = now_ms_ + kPauseMs;
    uint64_t suppressed = 0;
    if (accept_warn_limit_.allow(now_ms_, suppressed))
        WSLOG_WARNING("accept paused %llu ms: %s (%llu similar suppressed)", static_cast<unsigned long long>(kPauseMs),
                    std::strerror(error), static_cast<unsigned long long>(suppressed));
}

void Server::retire(Connection& c) noexcept {
    // Off every list but the graveyard; freed after this loop turn.
    dirty_.erase(c);
    ready_.erase(c);
    List::erase(c);
    graveyard_.push_back(c);
    --open_count_;
    if (const auto it = per_ip_.find(c.ip); it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
}

void Server::free_retired() noexcept {
    while (Connection* c = graveyard_.pop_front()) delete c;
}

uint64_t Server::next_deadline() const noexcept {
    uint64_t d = UINT64_MAX;
    auto consider = [&](const List& list, uint64_t period) {
        if (auto* c = const_cast<List&>(list).front()) d = std::min(d, c->timer_since_ms + period);
    };
    consider(handshake_timers_, config_.handshake_timeout_ms);
    consider(idle_timers_, config_.ping_interval_ms);
    consider(pinged_timers_, config_.idle_timeout_ms);
    consider(closing_timers_, config_.close_timeout_ms);
    if (accept_resume_at_) d = std::min(d, accept_resume_at_);
    for (const Periodic& p : periodic_) d = std::min(d, p.next_ms);
    if (shutting_down_) d = std::min(d, shutdown_deadline_);
    return d;
}

void Server::arm_timer() {
    const uint64_t d = next_deadline();
    if (d == UINT64_MAX) return;
    if (armed_deadline_ == 0 || d < armed_deadline_) {
        armed_deadline_ = std::max(d, now_ms_ + 1);
        timer_->arm(armed_deadline_);
    }
}

void Server::run_timers() {
    now_ms_ = io::monotonic_ms();
    const uint64_t now = now_ms_;
    // Each list is ordered by timer_since_ms, so only expired heads are visited.
    while (Connection* c = handshake_timers_.front()) {
        if (now < c->timer_since_ms + config_.handshake_timeout_ms) break;
        List::erase(*c);
        c->on_handshake_timeout();
    }
    while (Connection* c = idle_timers_.front()) {
        if (now < c->timer_since_ms + config_.ping_interval_ms) break;
        // Pinged: move to the pinged list, keeping the time of the last activity.
        const uint64_t since = c->timer_since_ms;
        pinged_timers_.push_back(*c);
        c->timer_since_ms = since;
        c->send_ping();
    }
    while (Connection* c = pinged_timers_.front()) {
        if (now < c->timer_since_ms + config_.idle_timeout_ms) break;
        List::erase(*c);
        c->on_close_timeout();
    }
    while (Connection* c = closing_timers_.front()) {
        if (now < c->timer_since_ms + config_.close_timeout_ms) break;
        List::erase(*c);
        c->on_close_timeout();
    }
    for (Periodic& p : periodic_) {
        if (now < p.next_ms) continue;
        p.next_ms = now + p.interval_ms;
        p.fn();
    }
    if (accept_resume_at_ && now >= accept_resume_at_) {
        accept_resume_at_ = 0;
        for (auto& l : listeners_)
            if (l->paused()) l->resume();
    }
}

void Server::watch_expiry(Connection& c, int64_t expires_s) {
    expiries_.insert({expires_s, &c});
    if (!expiry_check_added_) {
        expiry_check_added_ = true;
        add_periodic(kExpiryCheckMs, [this] { expire_tokens(); });
    }
}

void Server::expire_tokens() {
    if (expiries_.empty()) return;
    const auto now = static_cast<int64_t>(::time(nullptr));
    while (!expiries_.empty() && expiries_.begin()->first <= now) {
        Connection* c = expiries_.begin()->second;
        expiries_.erase(expiries_.begin());
        // A reload that turned expire_connections off spares the members already watched.
        if (config_.auth.expire_connections) c->on_token_expired();
    }
}

void Server::release_memory() {
    // glibc keeps what a crowd of connections and rooms freed: small chunks sit unmerged in its
    // fast bins, and free pages between live chunks stay mapped, so the RSS of a spike would stay
    // for good. malloc_trim() merges them and returns every whole free page. It walks the heap
    // (a few milliseconds for a large one), so only after the open connections fell to half
    // their peak, by at least kReleaseMinDrop: a steady or growing server never pays for it.
    if (open_peak_ - open_count_ < kReleaseMinDrop || open_count_ > open_peak_ / 2) return;
    WSLOG_DEBUG("%zu connections open (%zu at the peak): returning freed memory to the system", open_count_, open_peak_);
    ::malloc_trim(0);
    open_peak_ = open_count_;
}

void Server::add_periodic(uint64_t interval_ms, std::function<void()> fn) {
    periodic_.push_back({interval_ms, now_ms_ + interval_ms, std::move(fn)});
    armed_deadline_ = 0;
}

void Server::begin_shutdown(std::string_view why) {
    if (shutting_down_) return;
    shutting_down_ = true;
    shutdown_deadline_ = now_ms_ + config_.shutdown_timeout_ms;
    WSLOG_NOTICE("shutting down (%.*s): closing %zu connections, waiting up to %s", static_cast<int>(why.size()),
               why.data(), open_count_, config::format_duration(config_.shutdown_timeout_ms).c_str());
    for (auto& l : listeners_) {
        loop_.remove(l->fd());
        l->close();
    }
    // start_close() may retire (unlink) the visited connection: walk a snapshot.
    std::vector<Connection*> all;
    all.reserve(open_count_);
    for (Connection& c : connections_) all.push_back(&c);
    for (Connection* c : all) c->start_close(proto::to_wire(proto::CloseCode::GoingAway), "server shutting down");
}

void Server::apply_config(config::Config config, std::shared_ptr<io::TlsContexts> tls,
                          std::shared_ptr<const Credentials> credentials) {
    if (tls) tls_ = std::move(tls);  // new handshakes only; live sessions keep their context
    if (credentials) credentials_ = std::move(credentials);  // new handshakes and API requests
    const bool listeners_changed = [&] {
        if (config.listen.size() != config_.listen.size()) return true;
        for (size_t i = 0; i < config.listen.size(); ++i)
            if (config.listen[i].address != config_.listen[i].address) return true;
        return false;
    }();
    if (listeners_changed)
        WSLOG_WARNING("reload: [[listen]] changed; listeners change only on restart, keeping the current ones");
    config.listen = config_.listen;
    config_ = std::move(config);
    site_ = {config_.www_root, config_.healthz};
    util::set_log_level(config_.log_level);
    hub_.apply(config_);
    for (Connection& c : connections_) c.apply_limits();
    armed_deadline_ = 0;  // timeouts may have shortened
}

int Server::run() {
    while (turn(-1)) {}
    return 0;
}

bool Server::turn(int max_wait_ms) {
    // 1. Connections whose read budget ran out last turn read again. A splice first: a visit
    // may put a connection back on the ready list for the next turn.
    if (!ready_.empty()) {
        util::IntrusiveList<Connection, &Connection::ready_hook_> now_ready;
        now_ready.splice_back(ready_);
        while (Connection* c = now_ready.pop_front()) c->resume_reading();
    }
    // 2. Write before sleep: the rooms' batches of this turn go to their members, then one flush
    // per dirty connection.
    hub_.seal_batches();
    hub_.flush_backplane();  // this turn's messages to the other instances: a PUBLISH per room
    while (Connection* c = dirty_.pop_front()) c->flush();
    // 3. Free what was retired this turn; no handler holds a pointer to it any more.
    free_retired();
    hub_.collect_empty_rooms();

    if (shutting_down_ && (open_count_ == 0 || now_ms_ >= shutdown_deadline_)) {
        if (open_count_ != 0)
            WSLOG_NOTICE("shutdown_timeout reached with %zu connections left; closing them", open_count_);
        WSLOG_NOTICE("stopped");
        return false;
    }
    // 4. Sleep until an event or the earliest deadline.
    arm_timer();
    loop_.poll(ready_.empty() ? max_wait_ms : 0);
    now_ms_ = io::monotonic_ms();  // before the handlers run: they stamp activity and timers
    loop_.dispatch();
    if (shutting_down_ && now_ms_ >= shutdown_deadline_) run_timers();
    return true;
}

void Server::accept_connection(io::UniqueFd fd, const sockaddr_storage& peer, socklen_t len, bool tls) {
    on_accept(std::move(fd), peer, len, {io::UniqueFd(), "test", tls, false});
}

}  // namespace wsrelay::relay
