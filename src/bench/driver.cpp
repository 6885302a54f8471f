// SPDX-License-Identifier: Apache-2.0
#include "bench/driver.h"

#include <signal.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <system_error>

namespace wsrelay::bench {
namespace {

uint64_t monotonic_ns() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Messages due since traffic started at `rate` per second. A --rate run has no feedback loop, so
// pace_publishers() and pace_senders() only ever look at the clock.
uint64_t due_messages(uint64_t elapsed_ns, uint64_t rate) noexcept {
    return static_cast<uint64_t>(static_cast<double>(elapsed_ns) * 1e-9 * static_cast<double>(rate));
}

}  // namespace

// SIGINT/SIGTERM end the run early but cleanly: the measured interval stops where it is, the
// connections are closed and the results printed. Blocked and read through a signalfd, so the
// loop sees them like any other event.
class Driver::SignalWatch final : public io::Pollable {
public:
    explicit SignalWatch(Driver& d) : driver_(d) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        ::sigprocmask(SIG_BLOCK, &set, nullptr);
        fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
        if (!fd_) throw std::system_error(errno, std::generic_category(), "signalfd");
        if (const int e = d.loop().add(fd_.get(), EPOLLIN, this))
            throw std::system_error(e, std::generic_category(), "epoll_ctl(signalfd)");
    }
    void on_event(uint32_t) override {
        signalfd_siginfo si;
        while (::read(fd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) driver_.stop_requested_ = true;
    }

private:
    Driver& driver_;
    io::UniqueFd fd_;
};

Driver::Driver(const Options& options, const TlsClient* tls)
    : options_(options),
      tls_(tls),
      scratch_(std::make_unique_for_overwrite<std::byte[]>(kScratchBytes + kWriteStagingBytes)),
      acked_by_subscriber_(options.publisher_target.has_value()) {
    signals_ = std::make_unique<SignalWatch>(*this);
    if (::getrandom(&rng_state_, sizeof rng_state_, 0) != sizeof rng_state_) rng_state_ = monotonic_ns();
}

Driver::~Driver() {
    while (Client* c = live_.pop_front()) delete c;
    free_finished();
}

void Driver::refresh_now() noexcept { now_ns_ = monotonic_ns() - t0_mono_ns_; }

uint64_t Driver::random() noexcept {
    // splitmix64, seeded from getrandom(): unpredictable enough for mask keys (RFC 6455 §5.3 asks
    // that a server cannot predict them), and it costs nothing per connection.
    uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// --- The run -------------------------------------------------------------------------------------

Results Driver::run() {
    t0_mono_ns_ = monotonic_ns();
    refresh_now();
    progress_ = !options_.quiet && options_.warmup_ms + options_.duration_ms > 3000;
    next_progress_ns_ = 1000 * kMs;
    progress_own_cpu_ = own_cpu();
    if (options_.server_pid) progress_server_cpu_ = process_cpu_s(options_.server_pid);
    for (const CpuPid& p : options_.cpu_pids) progress_cpu_pids_.push_back(process_cpu_s(p.pid));

    switch (options_.scenario) {
        case Scenario::Echo:
        case Scenario::Idle: setup_target_ = options_.connections; break;
        case Scenario::Broadcast:
            publishers_.assign(std::max(options_.rooms, 1u), nullptr);  // one per room
            setup_target_ = options_.connections + static_cast<uint32_t>(publishers_.size());
            break;
        case Scenario::Connect: setup_target_ = 0; break;
    }
    if ((options_.scenario == Scenario::Idle || options_.scenario == Scenario::Connect) && options_.server_pid)
        results_.server_rss_before = process_rss_bytes(options_.server_pid);
    phase_ = Phase::Setup;
    phase_end_ns_ = options_.setup_timeout_ms * kMs;

    while (phase_ != Phase::Done) {
        // 1. Phase changes and timers.
        if (stop_requested_ && phase_ != Phase::Drain) {
            stop_requested_ = false;
            if (phase_ == Phase::Measure) end_measure();
            else fail_run("interrupted before the measurement started");
        }
        switch (phase_) {
            case Phase::Setup:
                top_up_setup();
                if (phase_ == Phase::Setup && now_ns_ >= phase_end_ns_)
                    fail_run("setup timed out: " + std::to_string(open_) + " of " + std::to_string(setup_target_) +
                             " connections up after " + std::to_string(options_.setup_timeout_ms) + " ms" +
                             (options_.source_ips.empty() && setup_target_ > 25'000
                                  ? " (more than ~25k connections need --source-ips)"
                                  : ""));
                break;
            case Phase::Warmup:
                if (now_ns_ >= phase_end_ns_) start_measure();
                break;
            case Phase::Measure:
                if (now_ns_ >= phase_end_ns_) end_measure();
                break;
            case Phase::Drain:
                if (live_.empty() || now_ns_ >= phase_end_ns_) {
                    while (Client* c = live_.front()) c->abort(Outcome::Aborted, "drain timed out");
                    phase_ = Phase::Done;
                }
                break;
            case Phase::Done: break;
        }
        if (phase_ == Phase::Warmup || phase_ == Phase::Measure) {
            if (acked_by_subscriber_) check_stall();
            if (options_.scenario == Scenario::Broadcast && options_.rate) pace_publishers();
            if (options_.scenario == Scenario::Echo && options_.rate) pace_senders();
            if (options_.scenario == Scenario::Connect) top_up_connectors();
        }
        expire_stuck_clients();
        if (progress_ && now_ns_ >= next_progress_ns_) progress_tick();

        // 2. Write before sleep: one flush per dirty client.
        while (Client* c = dirty_.pop_front()) c->flush();
        // 3. Free what finished; no handler holds a pointer to it any more.
        free_finished();
        if (phase_ == Phase::Done) break;

        // 4. Sleep until an event or the next deadline.
        const uint64_t deadline = next_deadline_ns();
        const uint64_t wait_ns = deadline > now_ns_ ? deadline - now_ns_ : 0;
        loop_.poll(static_cast<int>(std::min<uint64_t>((wait_ns + kMs - 1) / kMs, 1000)));
        refresh_now();
        loop_.dispatch();
    }
    results_.connections_open = results_.completed ? results_.connections_open : open_;
    if (results_.completed && (options_.scenario == Scenario::Idle || options_.scenario == Scenario::Connect) &&
        options_.server_pid)
        read_drained_rss();
    return std::move(results_);
}

uint64_t Driver::next_deadline_ns() const noexcept {
    uint64_t d = phase_end_ns_;
    if (progress_) d = std::min(d, next_progress_ns_);
    if (phase_ == Phase::Warmup || phase_ == Phase::Measure) {
        if (options_.rate) d = std::min(d, now_ns_ + kMs);
        if (options_.scenario == Scenario::Connect) d = std::min(d, now_ns_ + 100 * kMs);  // stuck handshakes
    }
    if (phase_ == Phase::Drain) d = std::min(d, now_ns_ + 100 * kMs);  // stuck closes
    return d;
}

void Driver::free_finished() noexcept {
    while (Client* c = graveyard_.pop_front()) delete c;
}

bool Driver::open_client(Role role, uint32_t index, std::string room) {
    auto* c = new Client(*this, role, index, target_for(role), std::move(room));
    live_.push_back(*c);
    ++connecting_;
    const util::SocketAddress* source = nullptr;
    if (!options_.source_ips.empty()) source = &options_.source_ips[next_source_++ % options_.source_ips.size()];
    const Client::StartResult r = c->start(source);
    if (r.error == 0) return true;
    std::string why = std::string(r.step) + ": " + std::strerror(r.error);
    if (r.error == EADDRNOTAVAIL && std::string_view(r.step) == "connect")
        why += " (no free local port: use --source-ips)";
    else if (r.error == EMFILE)
        why += " (raise ulimit -n)";
    c->abort(Outcome::Failed, why);  // reports through on_done()
    return false;
}

std::string Driver::room_for(uint32_t index) const {
    const std::string& base = options_.target.path;
    if (options_.rooms == 0 && options_.scenario != Scenario::Echo) return base;
    // Rooms below the URL's path: /bench -> /bench/17. Each echo connection has its own by default.
    const uint32_t room = options_.rooms ? index % options_.rooms : index;
    return base + (base.ends_with('/') ? "" : "/") + std::to_string(room);
}

uint32_t Driver::room_members(uint32_t index) const noexcept {
    // echo only: connection i is in room i mod N, so the first C mod N rooms have one more.
    if (options_.rooms == 0) return 1;
    const uint32_t n = options_.rooms, c = options_.connections;
    return c / n + (index % n < c % n ? 1 : 0);
}

const Target& Driver::target_for(Role role) const noexcept {
    return role == Role::Publisher && options_.publisher_target ? *options_.publisher_target : options_.target;
}

void Driver::top_up_setup() {
    const uint32_t subscribers = options_.scenario == Scenario::Broadcast ? options_.connections : setup_target_;
    // idle with --server-pid: the first connection goes alone, and the server's RSS is read once it
    // is up (on_open), so that one-time costs are not counted per connection.
    const bool priming = options_.scenario == Scenario::Idle && options_.server_pid && !rss_primed_;
    const uint32_t limit = priming ? 1 : subscribers;
    while (setup_started_ < limit && connecting_ < options_.setup_concurrency && phase_ == Phase::Setup) {
        const Role role = options_.scenario == Scenario::Echo        ? Role::Echo
                          : options_.scenario == Scenario::Broadcast ? Role::Subscriber
                                                                     : Role::Idler;
        const uint32_t index = setup_started_++;
        open_client(role, index, room_for(index));
    }
    // The publishers join last, once every subscriber is in its room (wsrelay joins before it
    // answers 101), so a first message reaches them all. On another instance (--publisher-url)
    // the room is its URL's path; the subscribers' instance subscribed to the room's channel when
    // the first of them joined, long before this.
    if (options_.scenario == Scenario::Broadcast && phase_ == Phase::Setup && open_ == options_.connections &&
        setup_started_ == options_.connections) {
        for (uint32_t j = 0; j < publishers_.size() && phase_ == Phase::Setup; ++j) {
            ++setup_started_;
            if (open_client(Role::Publisher, j, options_.publisher_target ? options_.publisher_target->path : room_for(j)))
                publishers_[j] = live_.back();
        }
    }
    if (phase_ == Phase::Setup && open_ == setup_target_ && setup_started_ == setup_target_) start_traffic();
}

void Driver::start_traffic() {
    phase_ = Phase::Warmup;
    phase_end_ns_ = now_ns_ + options_.warmup_ms * kMs;
    traffic_start_ns_ = now_ns_;
    switch (options_.scenario) {
        case Scenario::Echo:
            if (options_.rate) {
                senders_.assign(options_.connections, nullptr);
                for (Client& c : live_) senders_[c.index()] = &c;
                break;
            }
            for (Client& c : live_)
                for (uint32_t i = 0; i < options_.depth; ++i) c.send_message();
            break;
        case Scenario::Broadcast:
            if (!options_.rate)
                for (Client* p : publishers_)
                    if (p) publish(*p, options_.window);
            break;
        case Scenario::Connect:
        case Scenario::Idle: break;
    }
    if (phase_end_ns_ <= now_ns_) start_measure();
}

void Driver::start_measure() {
    phase_ = Phase::Measure;
    refresh_now();
    measure_start_ns_ = now_ns_;
    phase_end_ns_ = now_ns_ + options_.duration_ms * kMs;
    results_.latency.reset();
    results_.messages = results_.published = results_.publish_skipped = results_.closes = 0;
    own_cpu_start_ = own_cpu();
    if (options_.server_pid) server_cpu_start_ = process_cpu_s(options_.server_pid);
    if (options_.scenario == Scenario::Connect && options_.server_pid)
        results_.server_rss_first = process_rss_bytes(options_.server_pid);  // the churn's baseline
    cpu_pids_start_.clear();
    for (const CpuPid& p : options_.cpu_pids) cpu_pids_start_.push_back(process_cpu_s(p.pid));
}

void Driver::end_measure() {
    refresh_now();
    results_.measured_s = static_cast<double>(now_ns_ - measure_start_ns_) / 1e9;
    results_.bench_cpu_s = own_cpu().total() - own_cpu_start_.total();
    if (options_.server_pid && server_cpu_start_) {
        if (const auto end = process_cpu_s(options_.server_pid)) results_.server_cpu_s = *end - *server_cpu_start_;
    }
    results_.cpu_pids_s.clear();
    for (size_t i = 0; i < options_.cpu_pids.size(); ++i) {
        const auto end = process_cpu_s(options_.cpu_pids[i].pid);
        const auto& start = cpu_pids_start_[i];
        results_.cpu_pids_s.push_back(end && start ? std::optional(*end - *start) : std::nullopt);
    }
    if (options_.scenario == Scenario::Idle && options_.server_pid)
        results_.server_rss_after = process_rss_bytes(options_.server_pid);
    results_.connections_open = open_;
    results_.completed = true;
    start_drain();
}

void Driver::fail_run(std::string why) {
    if (results_.error.empty()) results_.error = std::move(why);
    start_drain();
}

void Driver::start_drain() {
    if (phase_ == Phase::Drain || phase_ == Phase::Done) return;
    phase_ = Phase::Drain;
    phase_end_ns_ = now_ns_ + kDrainNs;
    // begin_close() may finish a client, which moves it to the graveyard: walk a detached list.
    LiveList all;
    all.splice_back(live_);
    while (Client* c = all.pop_front()) {
        live_.push_back(*c);
        c->begin_close();
    }
}

// --- Scenario rules ------------------------------------------------------------------------------

void Driver::on_open(Client& c) {
    --connecting_;
    ++open_;
    if (c.role() == Role::Subscriber && acked_by_subscriber_) ack_subscriber_ = &c;  // the last one stays
    if (c.role() == Role::Idler && options_.server_pid && !rss_primed_) {
        rss_primed_ = true;
        results_.server_rss_first = process_rss_bytes(options_.server_pid);
    }
    if (c.role() == Role::Connector) {
        if (phase_ == Phase::Measure) {
            ++results_.messages;
            results_.latency.record(now_ns_ - c.started_ns());
        }
        ++progress_count_;
        c.begin_close();  // each handshake is closed at once, with a close handshake
    }
}

void Driver::on_message(Client& c, bool timed, uint64_t sent_ns) {
    const bool measuring = phase_ == Phase::Measure;
    timed = timed && sent_ns <= now_ns_;  // a stranger's message in the room carries no time of ours
    switch (c.role()) {
        case Role::Echo:
            ++progress_count_;
            if (measuring) {
                ++results_.messages;
                if (timed) results_.latency.record(now_ns_ - sent_ns);
            }
            if (options_.rate) break;
            // Keep `depth` in flight per member (see "Rooms" in driver.h); not in Drain: the client
            // is Closing there and sends nothing.
            if (++c.tally >= room_members(c.index())) {
                c.tally = 0;
                c.send_message();
            }
            break;
        case Role::Subscriber:
            ++progress_count_;
            if (measuring) {
                ++results_.messages;
                if (timed) results_.latency.record(now_ns_ - sent_ns);
            }
            if (&c == ack_subscriber_ && publishers_[0]) {
                last_ack_ns_ = now_ns_;
                acknowledge(*publishers_[0]);
            }
            break;
        case Role::Publisher:
            // Its own message came back: acknowledged, unless the subscribers are elsewhere.
            if (!acked_by_subscriber_) acknowledge(c);
            break;
        case Role::Connector:
        case Role::Idler: break;
    }
}

void Driver::on_done(Client& c, Outcome outcome, std::string_view why) {
    if (c.opened()) --open_;
    else --connecting_;
    graveyard_.push_back(c);
    if (c.role() == Role::Publisher) publishers_[c.index()] = nullptr;
    if (c.role() == Role::Echo && !senders_.empty()) senders_[c.index()] = nullptr;
    const bool acker = &c == ack_subscriber_;
    if (acker) ack_subscriber_ = nullptr;
    if (c.role() == Role::Connector) {
        --connectors_;
        if (outcome == Outcome::Closed && phase_ == Phase::Measure) ++results_.closes;
    }
    if (outcome != Outcome::Failed) return;
    if (phase_ == Phase::Setup) return fail_run("setup failed: " + std::string(why));
    if (phase_ == Phase::Drain) return;  // the run is over; closing errors do not change it
    ++results_.errors;
    if (results_.error.empty()) results_.error = std::string(why);
    if (c.role() == Role::Publisher) fail_run("the publisher failed: " + std::string(why));
    if (acker) fail_run("the acknowledging subscriber failed: " + std::string(why));
}

void Driver::acknowledge(Client& publisher) {
    if (publisher.tally) --publisher.tally;
    // Window mode refills the window at once (the sends of one loop turn leave in one write).
    if (!options_.rate && (phase_ == Phase::Warmup || phase_ == Phase::Measure))
        publish(publisher, options_.window - publisher.tally);
}

void Driver::check_stall() {
    const uint64_t unacked = publishers_[0] ? publishers_[0]->tally : 0;  // one publisher (no --rooms)
    if (unacked == 0 || now_ns_ - last_ack_ns_ <= kStallNs) return;
    fail_run("no message for " + std::to_string(kStallNs / 1'000'000'000) + " s at the acknowledging subscriber with " +
             std::to_string(unacked) + " unacknowledged: lost between the instances? (see the publisher's instance's "
             "wsrelay_cluster_messages_dropped_total)");
}

void Driver::publish(Client& publisher, uint64_t count) {
    if (publisher.state() != Client::State::Open) return;
    if (publisher.tally == 0 && count) last_ack_ns_ = now_ns_;  // the stall clock starts now
    for (uint64_t i = 0; i < count; ++i) publisher.send_message();
    publisher.tally += count;
    if (phase_ == Phase::Measure) results_.published += count;
}

void Driver::pace_publishers() {
    // The publishers take turns; a message due when its publisher's window is full is skipped (and
    // counted), so a slow server shows up as skips rather than a growing backlog.
    const uint64_t due = due_messages(now_ns_ - traffic_start_ns_, options_.rate);
    for (; rate_sent_ < due; ++rate_sent_) {
        Client* p = publishers_[rate_next_++ % publishers_.size()];
        if (p && p->tally < options_.window) publish(*p, 1);
        else if (phase_ == Phase::Measure) ++results_.publish_skipped;
    }
}

void Driver::pace_senders() {
    // echo --rate: every connection in turn sends one message; one that has finished skips its turn.
    const uint64_t due = due_messages(now_ns_ - traffic_start_ns_, options_.rate);
    for (; rate_sent_ < due; ++rate_sent_) {
        Client* c = senders_[rate_next_++ % senders_.size()];
        if (c && c->state() == Client::State::Open) {
            c->send_message();
            if (phase_ == Phase::Measure) ++results_.published;
        } else if (phase_ == Phase::Measure) {
            ++results_.publish_skipped;
        }
    }
}

void Driver::read_drained_rss() {
    // Every connection is closed; the server frees what they held at the end of its loop turn, and
    // may hand memory back to the system a little later (wsrelay checks every second): read it
    // kDrainedRssDelayNs after the end of the run.
    const timespec pause{static_cast<time_t>(kDrainedRssDelayNs / 1'000'000'000), static_cast<long>(kDrainedRssDelayNs % 1'000'000'000)};
    ::nanosleep(&pause, nullptr);
    results_.server_rss_drained = process_rss_bytes(options_.server_pid);
}

void Driver::top_up_connectors() {
    while (connectors_ < options_.connections && phase_ != Phase::Drain) {
        ++connectors_;
        const uint32_t serial = connect_serial_++;
        open_client(Role::Connector, serial, room_for(serial));
    }
}

void Driver::expire_stuck_clients() {
    // Bounded handshakes (connect) and bounded closes (every scenario's drain). Other phases have
    // their own bounds (the setup timeout), and open connections may rightly be quiet. A walk over
    // every client, so at most every 100 ms.
    if (options_.scenario != Scenario::Connect && phase_ != Phase::Drain) return;
    if (now_ns_ < next_expiry_check_ns_) return;
    next_expiry_check_ns_ = now_ns_ + 100 * kMs;
    const uint64_t limit = options_.setup_timeout_ms * kMs;
    LiveList all;
    all.splice_back(live_);
    while (Client* c = all.pop_front()) {
        live_.push_back(*c);
        const Client::State s = c->state();
        if (s != Client::State::Open && s != Client::State::Closing && now_ns_ - c->started_ns() > limit)
            c->abort(Outcome::Failed, "handshake timed out");
        else if (s == Client::State::Closing && now_ns_ - c->closing_since_ns() > kDrainNs)
            c->abort(phase_ == Phase::Drain ? Outcome::Aborted : Outcome::Failed, "close handshake timed out");
    }
}

void Driver::progress_tick() {
    const double interval_s = static_cast<double>(now_ns_ - (next_progress_ns_ - 1000 * kMs)) / 1e9;
    next_progress_ns_ += 1000 * kMs;
    if (next_progress_ns_ <= now_ns_) next_progress_ns_ = now_ns_ + 1000 * kMs;
    const CpuTimes own = own_cpu();
    const double own_pct = 100.0 * (own.total() - progress_own_cpu_.total()) / interval_s;
    progress_own_cpu_ = own;
    char server[48] = "";
    if (options_.server_pid) {
        const auto s = process_cpu_s(options_.server_pid);
        if (s && progress_server_cpu_)
            std::snprintf(server, sizeof server, "  server cpu %3.0f%%", 100.0 * (*s - *progress_server_cpu_) / interval_s);
        progress_server_cpu_ = s;
    }
    std::string others;  // --cpu-pid: "  A 45%  B 80%"
    for (size_t i = 0; i < options_.cpu_pids.size(); ++i) {
        const auto s = process_cpu_s(options_.cpu_pids[i].pid);
        if (s && progress_cpu_pids_[i]) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "  %s %3.0f%%", options_.cpu_pids[i].name.c_str(),
                          100.0 * (*s - *progress_cpu_pids_[i]) / interval_s);
            others += buf;
        }
        progress_cpu_pids_[i] = s;
    }
    static constexpr const char* kPhase[] = {"setup", "warmup", "measure", "drain", "done"};
    const char* unit = options_.scenario == Scenario::Connect ? "handshakes/s" : options_.scenario == Scenario::Broadcast ? "deliveries/s" : "msg/s";
    std::fprintf(stderr, "wsrelay-bench: %6.1fs %-7s %10.0f %s  %u open  cpu %3.0f%%%s%s\n",
                 static_cast<double>(now_ns_) / 1e9, kPhase[static_cast<int>(phase_)],
                 static_cast<double>(progress_count_) / interval_s, unit, open_, own_pct, server, others.c_str());
    progress_count_ = 0;
}

}  // namespace wsrelay::bench
