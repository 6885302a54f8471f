// SPDX-License-Identifier: Apache-2.0
// Rooms and who is in them. A room exists while it has members: created on the first join, and
// freed at the end of the loop turn in which its last member left (never during a broadcast, which
// may be what made it empty).
//
// Hub::broadcast() is the one place a message fans out. It takes the payload as bytes, not a
// Connection's message, so a message that arrives from elsewhere (another instance, through a
// pub/sub engine) takes the same path with `origin == nullptr`.
//
// Batches. The small messages a room broadcasts during one loop turn are collected and handed to
// each member as one queue entry (their frames back to back in one buffer) when the batch is
// sealed: at the end of the turn, before the connections are flushed. A member then costs one
// queue entry, one reference and one iovec per turn rather than per message (a 1000-member room
// under load spent a third of its user time on per-message queue work). Order is kept because a
// batch is sealed before anything else can reach a member's queue out of turn: before a member
// joins, before a message takes the direct path, and when the batch is full; a member that leaves
// takes its own share of the pending batch as it goes (a closing member leaves before its close
// frame is queued), and the others keep theirs for the seal. Control frames may go ahead of data
// anyway (RFC 6455 §5.4). Members that negotiated permessage-deflate, large messages, and rooms that do
// not echo to the sender take the direct path: one queue entry per message, as before.
//
// Small rooms. Many deployments have a room per user, document or match: thousands of rooms of one
// to ten members, so a room must cost little next to the connection in it (measured with
// `wsrelay-bench idle --rooms`: about 90 bytes of RSS per room, a connection about 420). Hence:
//  - a Room is one allocation with its name stored right behind it (Hub::create_room());
//  - it points at its settings in the running Config (the [rooms] table, or its [[room]] entry)
//    instead of holding a copy; Hub::apply() re-points every room when a reload replaces the Config;
//  - its batch (a vector of frames and two counters) is not part of it: a room with messages
//    pending in this turn borrows a Batch from the Hub's pool, and gives it back when sealed;
//  - the Hub finds rooms by name in its own chained hash table, linked through the rooms
//    themselves (Room::next_), so a room costs one pointer per bucket and no node of its own;
//  - a room that empties is listed once for collection (Room::listed_) instead of by a copy of its
//    name.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proto/deflate.h"
#include "proto/frame.h"
#include "relay/connection.h"
#include "relay/stats.h"
#include "util/intrusive_list.h"

namespace wsrelay::relay {

class Hub;

// Another instance's view of the rooms (the cluster link, src/cluster/): it hears of every message
// a local member relays, and of rooms gaining their first or losing their last local member. It
// delivers what other instances relay through Hub::find() and Hub::broadcast(origin = nullptr),
// which it never hears of again. Calls come from inside walks over members: an implementation only
// records what to do and does it in flush(), once per loop turn.
class Backplane {
public:
    virtual void publish(std::string_view room, proto::Opcode op, std::span<const std::byte> payload) = 0;
    virtual void room_active(std::string_view room) = 0;
    virtual void room_inactive(std::string_view room) = 0;
    // End of a loop turn, after the rooms' batches are sealed: send what was recorded.
    virtual void flush() = 0;

protected:
    ~Backplane() = default;
};

// One message on its way to the members of a room. Its frame is built lazily, once per form that a
// recipient needs — plain, or compressed for a given window size — and every recipient of that form
// shares the same bytes.
class Outgoing {
public:
    Outgoing(Hub& hub, proto::Opcode op, std::span<const std::byte> payload) : hub_(hub), op_(op), payload_(payload) {}
    const FramePtr& plain();
    // The permessage-deflate form for a client that agreed on `window_bits`; null if it cannot be
    // compressed (the caller then sends the plain one).
    const FramePtr& deflated(int window_bits);
    std::span<const std::byte> payload() const noexcept { return payload_; }

private:
    Hub& hub_;
    proto::Opcode op_;
    std::span<const std::byte> payload_;
    FramePtr plain_;
    std::array<FramePtr, 7> deflated_;  // by window bits 9..15
    std::array<bool, 7> tried_{};
};

struct Batch;

// A room: its members and where its settings are. Created and freed by the Hub (see "Small rooms"
// above); the name lives in the same allocation, right behind the object.
class Room {
public:
    Room(const Room&) = delete;
    Room& operator=(const Room&) = delete;

    std::string_view name() const noexcept { return {reinterpret_cast<const char*>(this + 1), name_size_}; }
    size_t size() const noexcept { return size_; }
    bool full() const noexcept { return settings_->max_members != 0 && size_ >= settings_->max_members; }
    const config::RoomSettings& settings() const noexcept { return *settings_; }
    template <class F>
    void for_each_member(F&& f) {
        for (const Connection& c : members_) f(c);
    }

private:
    friend class Hub;
    Room(std::string_view name, const config::RoomSettings& settings) noexcept
        : settings_(&settings), name_size_(static_cast<uint32_t>(name.size())) {}
    ~Room() { members_.clear(); }

    const config::RoomSettings* settings_;  // in the Hub's current Config (see Hub::apply())
    Room* next_ = nullptr;                  // the next room in its bucket of Hub::buckets_
    util::IntrusiveList<Connection, &Connection::room_hook_> members_;
    Batch* batch_ = nullptr;                // this turn's pending frames; borrowed from the Hub's pool
    uint32_t size_ = 0;
    uint32_t deflate_members_ = 0;          // members that take compressed frames (never batched)
    uint32_t name_size_;
    bool listed_ = false;                   // on Hub::maybe_empty_
};

// The frames a room broadcasts in one loop turn, in order, until sealed (see "Batches" above).
struct Batch {
    util::ListHook hook_;            // Hub::batched_ while pending
    Room* room = nullptr;            // whose batch it is
    std::vector<FramePtr> frames;    // capacity kept while pooled (at most kKeepBatchCapacity)
    size_t bytes = 0;                // frame bytes
    uint64_t payload_bytes = 0;
};

class Hub {
public:
    explicit Hub(Stats& stats) : stats_(stats) {}
    ~Hub();
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;

    // Compresses `payload` as one permessage-deflate message for `window_bits` (9..15). The
    // compressors are created on first use, one per window size, and shared by all connections.
    FramePtr compress(proto::Opcode op, std::span<const std::byte> payload, int window_bits);

    // The room for `name`, created (with its settings from `config`) if it does not exist. The
    // Config must be the one the Hub was last given to apply(), or outlive the next apply().
    Room& room(std::string_view name, const config::Config& config);
    // The room for `name` if it has members; else null.
    Room* find(std::string_view name) noexcept;
    // Frames `payload` once and queues the same bytes for every member of `room` (the origin too
    // when the room echoes), now or in this turn's batch. A member whose queue is full applies its
    // own slow-consumer policy, which may make it leave the room during this call; the walk
    // tolerates that. The room stays allocated until the end of the turn.
    void broadcast(Room& room, proto::Opcode op, std::span<const std::byte> payload, const Connection* origin);
    // A message from the HTTP API: to every local member of `name` (if it has any) and, through
    // the backplane, to the other instances. Returns the local members it was queued for.
    size_t post(std::string_view name, proto::Opcode op, std::span<const std::byte> payload);
    // Every room with members.
    template <class F>
    void for_each_room(F&& f) const {
        for (Room* head : buckets_)
            for (Room* r = head; r; r = r->next_)
                if (r->size() != 0) f(*r);
    }
    // The cluster link, if any (not owned); see Backplane.
    void set_backplane(Backplane* b) noexcept { backplane_ = b; }
    void flush_backplane() {
        if (backplane_) backplane_->flush();
    }
    void join(Room& room, Connection& c);
    // Unlinks `c` and hands it its share of the room's pending batch (which may close it: a nested
    // leave() is a no-op). Never touches another member.
    void leave(Room& room, Connection& c);
    // Seals every room's pending batch: once per turn, before connections are flushed.
    void seal_batches();
    // Frees rooms that became empty this turn (unless someone joined again).
    void collect_empty_rooms();
    // Config reload: each room takes its (possibly new) settings, pointing into `config`.
    void apply(const config::Config& config);

    // Rooms with at least one member (an emptied room is freed only at the end of the turn).
    size_t room_count() const noexcept { return nonempty_rooms_; }
    // Rooms allocated: those with members and those emptied in this turn (tests: nothing leaks).
    size_t rooms_allocated() const noexcept { return room_total_; }
    size_t member_count() const noexcept { return members_; }
    Stats& stats() noexcept { return stats_; }

private:
    // A batch holds at most this many bytes of frames; a frame larger than kBatchFrameMax goes
    // the direct path (it is sent without a copy).
    static constexpr size_t kBatchMaxBytes = 16 * 1024;
    static constexpr size_t kBatchFrameMax = 1024;
    static constexpr size_t kKeepBatchCapacity = 64;  // frame handles a pooled batch keeps (512 bytes)
    // Spare batches kept for the next turn: enough for this many rooms busy in one turn; beyond
    // that a turn allocates, and the extra batches are freed when sealed.
    static constexpr size_t kMaxSpareBatches = 4096;
    static constexpr size_t kMinBuckets = 16;

    static Room* create_room(std::string_view name, const config::RoomSettings& settings);
    static void destroy_room(Room* r) noexcept;
    Room** bucket_of(std::string_view name) noexcept;
    Room* lookup(std::string_view name) noexcept;  // with members or not
    void rehash(size_t buckets);
    void unlink_room(Room* r) noexcept;

    void send_direct(Room& room, Outgoing& message, const Connection* origin);
    // Hands the room's pending batch to its members (see the header comment). A member closed
    // during the walk (queue full) leaves; leaving unlinks only that member, and the batch is
    // already taken from the room.
    void seal(Room& room);
    Batch& batch_of(Room& room);
    void recycle(Batch* b) noexcept;

    Stats& stats_;
    std::vector<Room*> buckets_;  // chains through Room::next_; a power of two, or empty
    size_t room_total_ = 0;       // rooms allocated (with members, or emptied this turn)
    std::vector<Room*> maybe_empty_;
    util::IntrusiveList<Batch, &Batch::hook_> batched_;  // pending batches, one per room
    std::vector<std::unique_ptr<Batch>> spare_batches_;
    Backplane* backplane_ = nullptr;
    size_t members_ = 0;  // WebSocket connections in any room
    size_t nonempty_rooms_ = 0;
    int deflate_level_ = 6;
    std::array<std::unique_ptr<proto::Deflater>, 7> deflaters_;  // by window bits 9..15
    std::vector<std::byte> compressed_;  // scratch output of the last compression
};

}  // namespace wsrelay::relay
