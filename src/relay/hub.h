// Rooms and who is in them. A room exists while it has members: created on the first join, and
// freed at the end of the loop turn in which its last member left (never during a broadcast, which
// may be what made it empty).
//
// Room::broadcast() is the one place a message fans out. It takes the payload as bytes, not a
// Connection's message, so a message that arrives from elsewhere (another instance, through a
// pub/sub engine) takes the same path with `origin == nullptr`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "proto/frame.h"
#include "relay/connection.h"
#include "relay/stats.h"
#include "util/intrusive_list.h"

namespace wsrelay::relay {

class Room {
public:
    Room(std::string name, const config::RoomSettings& settings) : name_(std::move(name)), settings_(settings) {}
    ~Room() { members_.clear(); }

    const std::string& name() const noexcept { return name_; }
    size_t size() const noexcept { return size_; }
    bool full() const noexcept { return settings_.max_members != 0 && size_ >= settings_.max_members; }
    const config::RoomSettings& settings() const noexcept { return settings_; }

    // Frames `payload` once and queues the same bytes for every member (the origin too when the
    // room echoes). A member whose queue is full applies its own slow-consumer policy, which may
    // make it leave the room during this call; the walk tolerates that.
    void broadcast(proto::Opcode op, std::span<const std::byte> payload, const Connection* origin);

private:
    friend class Hub;
    std::string name_;
    config::RoomSettings settings_;
    size_t size_ = 0;
    util::IntrusiveList<Connection, &Connection::room_hook_> members_;
};

class Hub {
public:
    explicit Hub(Stats& stats) : stats_(stats) {}
    ~Hub();

    // The room for `name`, created with `settings` if it does not exist.
    Room& room(std::string_view name, const config::Config& config);
    void join(Room& room, Connection& c);
    void leave(Room& room, Connection& c);
    // Frees rooms that became empty this turn (unless someone joined again).
    void collect_empty_rooms();
    // Config reload: each room takes its (possibly new) settings.
    void apply(const config::Config& config);

    // Rooms with at least one member (an emptied room is freed only at the end of the turn).
    size_t room_count() const noexcept { return nonempty_rooms_; }
    size_t member_count() const noexcept { return members_; }
    Stats& stats() noexcept { return stats_; }

private:
    Stats& stats_;
    // Keyed by a view of the Room's own name, so a lookup allocates nothing.
    std::unordered_map<std::string_view, std::unique_ptr<Room>> rooms_;
    std::vector<std::string> maybe_empty_;
    size_t members_ = 0;  // WebSocket connections in any room
    size_t nonempty_rooms_ = 0;
};

}  // namespace wsrelay::relay
