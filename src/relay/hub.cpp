// SPDX-License-Identifier: Apache-2.0
#include "relay/hub.h"

#include <cstring>
#include <functional>
#include <new>

namespace wsrelay::relay {

const FramePtr& Outgoing::plain() {
    if (!plain_) plain_ = Frame::encode(op_, payload_);  // one allocation: header and payload together
    return plain_;
}

const FramePtr& Outgoing::deflated(int window_bits) {
    const size_t i = static_cast<size_t>(window_bits - 9);
    if (!tried_[i]) {
        tried_[i] = true;
        deflated_[i] = hub_.compress(op_, payload_, window_bits);
    }
    return deflated_[i];
}

// --- Rooms by name ---------------------------------------------------------------------------------

Room* Hub::create_room(std::string_view name, const config::RoomSettings& settings) {
    // One allocation: the object, then its name (Room::name() reads it from behind the object).
    void* memory = ::operator new(sizeof(Room) + name.size());
    Room* r = new (memory) Room(name, settings);
    if (!name.empty()) std::memcpy(reinterpret_cast<char*>(r + 1), name.data(), name.size());
    return r;
}

void Hub::destroy_room(Room* r) noexcept {
    r->~Room();
    ::operator delete(static_cast<void*>(r));
}

Room** Hub::bucket_of(std::string_view name) noexcept {
    return &buckets_[std::hash<std::string_view>{}(name) & (buckets_.size() - 1)];
}

void Hub::rehash(size_t buckets) {
    std::vector<Room*> old(buckets, nullptr);
    old.swap(buckets_);
    for (Room* head : old)
        while (Room* r = head) {
            head = r->next_;
            Room** b = bucket_of(r->name());
            r->next_ = *b;
            *b = r;
        }
}

void Hub::unlink_room(Room* r) noexcept {
    for (Room** p = bucket_of(r->name()); *p; p = &(*p)->next_)
        if (*p == r) {
            *p = r->next_;
            return;
        }
}

Room* Hub::lookup(std::string_view name) noexcept {
    if (buckets_.empty()) return nullptr;
    for (Room* r = *bucket_of(name); r; r = r->next_)
        if (r->name() == name) return r;
    return nullptr;
}

Room& Hub::room(std::string_view name, const config::Config& config) {
    if (Room* r = lookup(name)) return *r;
    // Up to two rooms per bucket on average: a short chain costs less than the bucket slots.
    if (room_total_ + 1 > 2 * buckets_.size()) rehash(std::max(kMinBuckets, 2 * buckets_.size()));
    Room* r = create_room(name, config.room_settings(name));
    Room** b = bucket_of(name);
    r->next_ = *b;
    *b = r;
    ++room_total_;
    return *r;
}

Room* Hub::find(std::string_view name) noexcept {
    Room* r = lookup(name);
    return r && r->size() != 0 ? r : nullptr;
}

void Hub::collect_empty_rooms() {
    for (Room* r : maybe_empty_) {
        r->listed_ = false;
        if (r->size() != 0) continue;  // someone joined again in the same turn
        if (r->batch_) recycle(r->batch_);  // its members took their shares as they left
        unlink_room(r);
        destroy_room(r);
        --room_total_;
    }
    maybe_empty_.clear();
    // Give the bucket array back as the rooms go (a spike of 100,000 rooms must not pin 1 MiB).
    if (buckets_.size() > kMinBuckets && room_total_ < buckets_.size() / 8) {
        size_t n = buckets_.size();
        while (n > kMinBuckets && room_total_ < n / 8) n /= 2;
        rehash(n);
    }
    // The list itself was sized for the spike too.
    if (maybe_empty_.capacity() > 1024) std::vector<Room*>().swap(maybe_empty_);
}

Hub::~Hub() {
    batched_.clear();
    for (Room* head : buckets_)
        while (Room* r = head) {
            head = r->next_;
            if (r->batch_) delete r->batch_;
            destroy_room(r);
        }
}

void Hub::apply(const config::Config& config) {
    if (deflate_level_ != static_cast<int>(config.deflate_level)) {
        deflate_level_ = static_cast<int>(config.deflate_level);
        for (auto& d : deflaters_) d.reset();  // recreated at the new level on next use
    }
    // The Config that the rooms point into is being replaced: every room re-points now, before
    // anything reads its settings again.
    for (Room* head : buckets_)
        for (Room* r = head; r; r = r->next_) {
            seal(*r);  // batched under the old settings
            r->settings_ = &config.room_settings(r->name());
        }
}

// --- Membership ------------------------------------------------------------------------------------

void Hub::join(Room& room, Connection& c) {
    seal(room);  // messages batched before it joined are not for it
    room.members_.push_back(c);
    if (c.takes_compressed()) ++room.deflate_members_;
    if (room.size_++ == 0) {
        ++nonempty_rooms_;
        if (backplane_) backplane_->room_active(room.name());
    }
    ++members_;
}

void Hub::leave(Room& room, Connection& c) {
    // Taking its share below may close `c` (its queue is full), and closing leaves again: that
    // nested call finds it gone already and changes nothing.
    if (!c.room_hook_.is_linked()) return;
    decltype(room.members_)::erase(c);
    if (c.takes_compressed()) --room.deflate_members_;
    --members_;
    if (--room.size_ == 0) {
        --nonempty_rooms_;
        if (!room.listed_) {
            room.listed_ = true;
            maybe_empty_.push_back(&room);
        }
        if (backplane_) backplane_->room_inactive(room.name());
    }
    // The messages batched this turn while it was a member are for it too: it takes its share now,
    // before whatever it queues next (its close frame). The batch stays pending for the others.
    // Not a seal: a seal would hand the batch to every member here, and one of them closing in
    // turn (queue full) would leave the room while a walk over the members (a broadcast's
    // compressed pass, a seal) may hold an iterator to it. Leaving only ever unlinks the leaver.
    const Batch* b = room.batch_;
    if (!b || c.takes_compressed()) return;
    const FramePtr share = b->frames.size() == 1 ? b->frames.front() : Frame::join(b->frames, b->bytes);
    c.enqueue_batch(share, static_cast<uint32_t>(b->frames.size()), b->payload_bytes);
}

// --- Broadcast -------------------------------------------------------------------------------------

void Hub::broadcast(Room& room, proto::Opcode op, std::span<const std::byte> payload, const Connection* origin) {
    // A local member's message goes to the other instances too (recorded now, published at the
    // end of the turn); one from another instance (origin null) came from there.
    if (origin && backplane_) backplane_->publish(room.name(), op, payload);
    Outgoing message(*this, op, payload);
    const bool batchable = (room.settings_->echo || !origin) &&
                           proto::frame_header_size(payload.size(), false) + payload.size() <= kBatchFrameMax;
    if (!batchable) {
        seal(room);  // what was batched before goes first
        return send_direct(room, message, origin);
    }
    // Members that compress get their own form now; everyone else gets it in the batch.
    if (room.deflate_members_ != 0)
        for (auto it = room.members_.begin(); it != room.members_.end();) {
            Connection& c = *it;
            ++it;
            if (c.takes_compressed()) c.enqueue(message);
        }
    const FramePtr& frame = message.plain();
    if (room.batch_ && room.batch_->bytes + frame->size() > kBatchMaxBytes) seal(room);
    Batch& b = batch_of(room);
    b.frames.push_back(frame);
    b.bytes += frame->size();
    b.payload_bytes += payload.size();
}

void Hub::send_direct(Room& room, Outgoing& message, const Connection* origin) {
    // Advance before visiting: enqueue() may make that member leave (slow consumer closed), which
    // unlinks only that member.
    for (auto it = room.members_.begin(); it != room.members_.end();) {
        Connection& c = *it;
        ++it;
        if (&c == origin && !room.settings_->echo) continue;
        c.enqueue(message);
    }
}

Batch& Hub::batch_of(Room& room) {
    if (room.batch_) return *room.batch_;
    Batch* b;
    if (spare_batches_.empty()) {
        b = new Batch;
    } else {
        b = spare_batches_.back().release();
        spare_batches_.pop_back();
    }
    b->room = &room;
    room.batch_ = b;
    batched_.push_back(*b);
    return *b;
}

void Hub::recycle(Batch* b) noexcept {
    b->hook_.unlink();
    b->room = nullptr;
    b->frames.clear();
    b->bytes = 0;
    b->payload_bytes = 0;
    // A burst of tiny messages may have grown the vector to thousands of handles: give that back
    // rather than keep it. Steady traffic stays below this.
    if (b->frames.capacity() > kKeepBatchCapacity || spare_batches_.size() >= kMaxSpareBatches) {
        delete b;
        return;
    }
    spare_batches_.emplace_back(b);
}

void Hub::seal(Room& room) {
    Batch* b = room.batch_;
    if (!b) return;
    // One frame as it is; several are joined into one buffer. Taken out of the room first: a
    // member closed during the walk (slow consumer) leaves, and leaving must find no batch.
    room.batch_ = nullptr;
    FramePtr frame = b->frames.size() == 1 ? std::move(b->frames.front()) : Frame::join(b->frames, b->bytes);
    const auto messages = static_cast<uint32_t>(b->frames.size());
    const uint64_t payload_bytes = b->payload_bytes;
    recycle(b);
    for (auto it = room.members_.begin(); it != room.members_.end();) {
        Connection& c = *it;
        ++it;
        if (!c.takes_compressed()) c.enqueue_batch(frame, messages, payload_bytes);
    }
}

void Hub::seal_batches() {
    while (Batch* b = batched_.front()) seal(*b->room);
}

FramePtr Hub::compress(proto::Opcode op, std::span<const std::byte> payload, int window_bits) {
    auto& d = deflaters_[static_cast<size_t>(window_bits - 9)];
    if (!d) d = std::make_unique<proto::Deflater>(window_bits, deflate_level_);
    if (!d->compress(payload, compressed_)) return FramePtr();
    return Frame::encode(op, compressed_, /*rsv1=*/true);
}

size_t Hub::post(std::string_view name, proto::Opcode op, std::span<const std::byte> payload) {
    if (backplane_) backplane_->publish(name, op, payload);
    Room* r = find(name);
    if (!r) return 0;
    const size_t members = r->size();
    broadcast(*r, op, payload, nullptr);  // no member sent it: every member gets it
    return members;
}

}  // namespace wsrelay::relay
