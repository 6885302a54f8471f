// SPDX-License-Identifier: Apache-2.0
// One benchmark run: the event loop, every Client, the scenario's rules, the clock and the
// counters. Single-threaded: everything happens in run(), in the loop turns of one epoll.
//
// A run goes through phases, each bounded in time:
//   Setup    open the scenario's connections (at most --setup-concurrency attempts at once);
//            all must be up within --setup-timeout, or the run fails. (connect has no setup.)
//   Warmup   traffic as in the measurement, not counted (--warmup)
//   Measure  traffic counted, CPU and latency measured (--duration)
//   Drain    no new messages; every connection is closed politely, then dropped after 2 s
//
// Loop turn: phase and timer work, then "write before sleep" (one flush per dirty client, so a
// turn's messages for a connection leave in one write), then epoll_wait until the next deadline.
//
// Rooms (--rooms N): connection i is in room PATH/<i mod N>. echo in rooms of k members: every
// member receives every member's messages, so a member sends its next message after k deliveries
// (in the rooms' steady state each message it sends comes back as k deliveries spread over the
// members; with k = 1 this is "one out per echo"): the room keeps k x depth messages in flight.
// broadcast: a publisher per room, each with its own window, joining after its room's subscribers.
// echo --rate: no window; messages are sent at the given total rate by the connections in turn.
//
// broadcast flow control. The publisher keeps at most --window messages unacknowledged. In one
// room on one server, a message is acknowledged by the publisher's own copy coming back: the
// publisher joined the room last, and wsrelay serves members in the order they joined, so its copy
// is written after every subscriber's, in the same pass. With --publisher-url the publisher is on
// another instance, whose echo says nothing about the subscribers (the message still has Redis and
// the subscribers' instance to cross); a message is then acknowledged by the subscriber that opened
// last (wsrelay joins a connection before it answers 101), which holds the same place in the
// subscribers' instance's order. Either way the window bounds what is still upstream of the last
// recipient end to end (in A, Redis, B), messages keep arriving in bursts of the same size, and
// what the other subscribers lag behind is what the generator has not read yet. A message lost
// between the instances would hold its window slot for ever, so 2 s without a copy at that
// subscriber while messages are unacknowledged fails the run rather than measuring a stall.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bench/client.h"
#include "bench/histogram.h"
#include "bench/options.h"
#include "bench/proc_stats.h"
#include "bench/report.h"
#include "bench/tls_client.h"
#include "io/event_loop.h"
#include "io/unique_fd.h"
#include "util/intrusive_list.h"

namespace wsrelay::bench {

class Driver {
public:
    // `tls` must be set (ok()) for a wss:// target. Throws std::system_error if epoll or the
    // signalfd cannot be created.
    Driver(const Options& options, const TlsClient* tls);
    ~Driver();
    Driver(const Driver&) = delete;
    Driver& operator=(const Driver&) = delete;

    // Runs to the end (bounded in time) and returns what was measured.
    Results run();

    // --- For clients ---
    const Options& options() const noexcept { return options_; }
    const TlsClient* tls() const noexcept { return tls_; }
    io::EventLoop& loop() noexcept { return loop_; }
    std::span<std::byte> scratch() noexcept { return {scratch_.get(), kScratchBytes}; }
    std::span<std::byte> write_staging() noexcept { return {scratch_.get() + kScratchBytes, kWriteStagingBytes}; }
    // Nanoseconds since the run started, as of the last refresh (after each wait and each read).
    uint64_t now_ns() const noexcept { return now_ns_; }
    void refresh_now() noexcept;
    uint64_t random() noexcept;  // splitmix64: mask keys and handshake keys
    void mark_dirty(Client& c) noexcept { dirty_.push_back(c); }

    void on_open(Client& c);
    // A whole message arrived; `sent_ns` is its timestamp when `timed`.
    void on_message(Client& c, bool timed, uint64_t sent_ns);
    void on_done(Client& c, Outcome outcome, std::string_view why);

private:
    enum class Phase : uint8_t { Setup, Warmup, Measure, Drain, Done };
    class SignalWatch;

    static constexpr size_t kScratchBytes = 256 * 1024;
    static constexpr size_t kWriteStagingBytes = io::Transport::kStagingBytes;
    static constexpr uint64_t kDrainNs = 2'000'000'000;
    static constexpr uint64_t kMs = 1'000'000;
    static constexpr uint64_t kStallNs = 2'000'000'000;  // --publisher-url: see "flow control" above
    static constexpr uint64_t kDrainedRssDelayNs = 2'000'000'000;  // idle, connect: see read_drained_rss()

    using LiveList = util::IntrusiveList<Client, &Client::live_hook_>;

    bool open_client(Role role, uint32_t index, std::string room);
    std::string room_for(uint32_t index) const;
    uint32_t room_members(uint32_t index) const noexcept;
    const Target& target_for(Role role) const noexcept;
    void acknowledge(Client& publisher);
    void check_stall();
    void top_up_setup();
    void start_traffic();
    void start_measure();
    void end_measure();
    void start_drain();
    void fail_run(std::string why);
    void publish(Client& publisher, uint64_t count);
    void pace_publishers();
    void pace_senders();
    void read_drained_rss();
    void top_up_connectors();
    void expire_stuck_clients();
    void progress_tick();
    uint64_t next_deadline_ns() const noexcept;
    void free_finished() noexcept;

    const Options& options_;
    const TlsClient* tls_;
    io::EventLoop loop_;
    std::unique_ptr<SignalWatch> signals_;
    std::unique_ptr<std::byte[]> scratch_;
    uint64_t t0_mono_ns_ = 0;  // CLOCK_MONOTONIC at the start of the run
    uint64_t now_ns_ = 0;
    uint64_t rng_state_;

    Phase phase_ = Phase::Setup;
    uint64_t phase_end_ns_ = 0;  // end of the current phase (Setup: its timeout)
    bool stop_requested_ = false;
    LiveList live_;
    LiveList graveyard_;
    util::IntrusiveList<Client, &Client::dirty_hook_> dirty_;
    size_t next_source_ = 0;

    // Setup bookkeeping.
    uint32_t setup_target_ = 0;   // clients the setup must open (broadcast: subscribers + 1)
    uint32_t setup_started_ = 0;
    uint32_t connecting_ = 0;     // started, not open yet
    uint32_t open_ = 0;           // open now
    std::vector<Client*> publishers_;   // broadcast: by index; null once finished
    std::vector<Client*> senders_;      // echo --rate: by index; null once finished
    bool rss_primed_ = false;     // idle: the first connection is up and the server's RSS was read

    // Traffic.
    uint64_t traffic_start_ns_ = 0;
    const bool acked_by_subscriber_;  // broadcast with --publisher-url (see "flow control" above)
    Client* ack_subscriber_ = nullptr;  // then: the subscriber that opened last; its copies acknowledge
    uint64_t last_ack_ns_ = 0;        // its last copy, or the publish that made the tally nonzero
    uint64_t rate_sent_ = 0;        // --rate: sends scheduled so far
    size_t rate_next_ = 0;          // --rate: the publisher or sender whose turn it is
    uint64_t connectors_ = 0;       // connect: connections under way
    uint32_t connect_serial_ = 0;   // connect: handshakes started (picks the room)
    uint64_t next_expiry_check_ns_ = 0;

    // Measurement.
    Results results_;
    uint64_t measure_start_ns_ = 0;
    CpuTimes own_cpu_start_;
    std::optional<double> server_cpu_start_;
    std::vector<std::optional<double>> cpu_pids_start_;  // by Options::cpu_pids

    // Progress line.
    bool progress_ = false;
    uint64_t next_progress_ns_ = 0;
    uint64_t progress_count_ = 0;   // messages (any phase) since the last line
    CpuTimes progress_own_cpu_;
    std::optional<double> progress_server_cpu_;
    std::vector<std::optional<double>> progress_cpu_pids_;
};

}  // namespace wsrelay::bench
