// SPDX-License-Identifier: Apache-2.0
// The Redis pub/sub backplane: rooms that span instances. Each instance publishes what its local
// members relay in a room on the room's channel (cluster/envelope.h), and subscribes to the
// channels of the rooms that have local members; what arrives from other instances goes to the
// local members through Room::broadcast(), the same framed-once, batched path as local messages.
//
// Two connections to Redis (a subscribed connection can only (un)subscribe), driven by the
// server's own epoll loop: no thread, and nothing here ever waits for Redis. hiredis's async API
// makes the non-blocking connection and buffers the output; hiredis formats the commands and
// parses the replies, which this class reads from the socket and handles itself (so a reply
// nobody asked for, from a hostile or broken server, is ignored rather than fatal). The publisher
// runs with CLIENT REPLY OFF: a PUBLISH costs one write, and no read or wake-up for its answer. Publications are gathered per room during a loop turn and sent as one PUBLISH per room at
// the end of it (Backplane::flush()). While the link is down, or when more than max_pending_bytes
// are already waiting to be written to Redis (Redis slow or stopped), messages are not published
// and are counted as dropped; local delivery never depends on Redis.
//
// The link reconnects with exponential backoff (100 ms doubling to 2 s), then subscribes every
// room that has local members. It logs one warning when it goes down and one notice when it is
// back, with the outage's length and the messages dropped meanwhile.
//
// Owned by main(), beside the Server whose Hub it is plugged into (Hub::set_backplane()); tick()
// runs from the server's timer.
#pragma once

#include <hiredis/async.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cluster/envelope.h"
#include "config/config.h"
#include "io/event_loop.h"
#include "relay/hub.h"
#include "relay/server.h"

namespace wsrelay::cluster {

// Lets the maps below be searched with a string_view (no allocation per message).
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// "hostname:pid", the default node id.
std::string default_node_id();

class RedisLink final : public relay::Backplane {
public:
    // Starts connecting at once (never blocks, except that a host name is resolved: configure an
    // address). `password` comes from password_file or the URL; empty: no AUTH.
    RedisLink(relay::Server& server, io::EventLoop& loop, const config::Cluster& settings, std::string password);
    ~RedisLink();
    RedisLink(const RedisLink&) = delete;
    RedisLink& operator=(const RedisLink&) = delete;

    // From the server's timer, every kTickMs: reconnects when due, gives up a connect that hangs.
    void tick();
    static constexpr uint64_t kTickMs = 100;
    // Reload: the password for the next connection (the current one stays).
    void set_password(std::string password) { password_ = std::move(password); }

    bool up() const noexcept { return up_; }
    const std::string& node_id() const noexcept { return node_id_; }

    // relay::Backplane
    void publish(std::string_view room, proto::Opcode op, std::span<const std::byte> payload) override;
    void room_active(std::string_view room) override;
    void room_inactive(std::string_view room) override;
    void flush() override;

private:
    // One hiredis connection and its registration in the loop. A new one per connection attempt:
    // a retired one (its context being freed) stays allocated until the end of the loop turn, so
    // an event already fetched for its fd finds it, retired, rather than a newer connection.
    struct Side final : io::Pollable {
        RedisLink* link = nullptr;
        const char* name = "";         // "publisher" / "subscriber", for logs
        redisAsyncContext* ac = nullptr;
        int fd = -1;
        bool want_write = false;       // output queued (by send(), or hiredis's addWrite hook)
        bool ready = false;            // connected, AUTH/SELECT accepted, PING answered
        std::deque<const char*> setup; // the setup commands whose answers are still due, in order
        bool retired = false;          // given up: its callbacks change nothing
        void on_event(uint32_t events) override;
    };

    void connect();
    std::unique_ptr<Side> open_side(const char* name);
    void send(Side& side, int argc, const char** argv, const size_t* len);  // may lose the link
    void read_replies(Side& side, bool closed);
    void on_reply(Side& side, const redisReply& reply);
    void subscriber_reply(const redisReply& reply);
    void lost(Side* side, const std::string& why);
    void close_sides();
    void side_ready(Side& side);
    void update_subscriptions();
    void send_subscriptions(const char* command, std::vector<std::string>& channels);
    void on_message(std::string_view channel, std::span<const std::byte> envelope);
    size_t bytes_waiting() const noexcept;

    static void on_connect(const redisAsyncContext* ac, int status);
    static void on_disconnect(const redisAsyncContext* ac, int status);

    relay::Server& server_;
    io::EventLoop& loop_;
    config::Cluster settings_;
    std::string password_;
    std::string node_id_;
    std::unique_ptr<Side> pub_;
    std::unique_ptr<Side> sub_;
    std::vector<std::unique_ptr<Side>> retired_;  // freed at the end of the turn
    bool up_ = false;
    bool was_up_ = false;            // up at least once (a later up is a reconnect)
    uint64_t retry_at_ms_ = 0;       // next connection attempt, while down with no sides open
    uint64_t backoff_ms_ = 0;
    uint64_t connect_started_ms_ = 0;
    uint64_t down_since_ms_ = 0;
    uint64_t dropped_at_down_ = 0;   // stats().cluster_dropped when the outage began
    bool outage_logged_ = false;     // the warning for this outage is out
    std::string last_error_;         // the last reason logged in this outage (repeats go to debug)
    std::unordered_set<std::string, StringHash, std::equal_to<>> active_;  // rooms with local members
    // Subscriptions follow active_, reconciled once per turn (a member that joins and leaves in
    // one turn changes nothing). A room is re-subscribed only once Redis has answered its
    // UNSUBSCRIBE: at most one of the two is in flight per room, and subscribed_rooms follows
    // Redis's answers.
    std::unordered_set<std::string, StringHash, std::equal_to<>> changed_;        // rooms to reconsider
    std::unordered_set<std::string, StringHash, std::equal_to<>> subscribed_;     // SUBSCRIBE sent
    std::unordered_set<std::string, StringHash, std::equal_to<>> unsubscribing_;  // UNSUBSCRIBE unanswered
    // This turn's messages, by room; the writers keep their buffers between turns.
    std::unordered_map<std::string, EnvelopeWriter, StringHash, std::equal_to<>> pending_;
    std::vector<std::string> pending_rooms_;  // rooms with messages this turn, in first-message order
};

}  // namespace wsrelay::cluster
