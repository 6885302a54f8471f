// SPDX-License-Identifier: Apache-2.0
#include "relay/hub.h"

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

void Room::broadcast(proto::Opcode op, std::span<const std::byte> payload, const Connection* origin) {
    // A local member's message goes to the other instances too (recorded now, published at the
    // end of the turn); one from another instance (origin null) came from there.
    if (origin && hub_.backplane_) hub_.backplane_->publish(name_, op, payload);
    Outgoing message(hub_, op, payload);
    const bool batchable = (settings_.echo || !origin) && proto::frame_header_size(payload.size(), false) +
                                                               payload.size() <= kBatchFrameMax;
    if (!batchable) {
        seal();  // what was batched before goes first
        return send_direct(message, origin);
    }
    // Members that compress get their own form now; everyone else gets it in the batch.
    if (deflate_members_ != 0)
        for (auto it = members_.begin(); it != members_.end();) {
            Connection& c = *it;
            ++it;
            if (c.takes_compressed()) c.enqueue(message);
        }
    const FramePtr& frame = message.plain();
    if (batch_bytes_ + frame->size() > kBatchMaxBytes) seal();
    if (batch_.empty()) hub_.batched_.push_back(*this);
    batch_.push_back(frame);
    batch_bytes_ += frame->size();
    batch_payload_bytes_ += payload.size();
}

void Room::send_direct(Outgoing& message, const Connection* origin) {
    // Advance before visiting: enqueue() may make that member leave (slow consumer closed), which
    // unlinks only that member.
    for (auto it = members_.begin(); it != members_.end();) {
        Connection& c = *it;
        ++it;
        if (&c == origin && !settings_.echo) continue;
        c.enqueue(message);
    }
}

void Room::seal() {
    if (batch_.empty()) return;
    batch_hook_.unlink();
    // One frame as it is; several are joined into one buffer. Taken out of the room first: a
    // member closed during the walk (slow consumer) leaves, and leaving seals again.
    FramePtr frame = batch_.size() == 1 ? std::move(batch_.front()) : Frame::join(batch_, batch_bytes_);
    const auto messages = static_cast<uint32_t>(batch_.size());
    const uint64_t payload_bytes = batch_payload_bytes_;
    batch_.clear();
    // A burst of tiny messages may have grown the vector to thousands of handles: give that back
    // rather than keep it for every room that once had one. Steady traffic stays below this.
    if (batch_.capacity() > kKeepBatchCapacity) std::vector<FramePtr>().swap(batch_);
    batch_bytes_ = 0;
    batch_payload_bytes_ = 0;
    for (auto it = members_.begin(); it != members_.end();) {
        Connection& c = *it;
        ++it;
        if (!c.takes_compressed()) c.enqueue_batch(frame, messages, payload_bytes);
    }
}

void Hub::seal_batches() {
    while (Room* r = batched_.pop_front()) r->seal();
}

FramePtr Hub::compress(proto::Opcode op, std::span<const std::byte> payload, int window_bits) {
    auto& d = deflaters_[static_cast<size_t>(window_bits - 9)];
    if (!d) d = std::make_unique<proto::Deflater>(window_bits, deflate_level_);
    if (!d->compress(payload, compressed_)) return FramePtr();
    return Frame::encode(op, compressed_, /*rsv1=*/true);
}

Hub::~Hub() {
    batched_.clear();
    for (auto& [name, room] : rooms_) room->members_.clear();
}

Room* Hub::find(std::string_view name) noexcept {
    const auto it = rooms_.find(name);
    return it == rooms_.end() || it->second->size() == 0 ? nullptr : it->second.get();
}

size_t Hub::post(std::string_view name, proto::Opcode op, std::span<const std::byte> payload) {
    if (backplane_) backplane_->publish(name, op, payload);
    Room* r = find(name);
    if (!r) return 0;
    const size_t members = r->size();
    r->broadcast(op, payload, nullptr);  // no member sent it: every member gets it
    return members;
}

Room& Hub::room(std::string_view name, const config::Config& config) {
    if (const auto it = rooms_.find(name); it != rooms_.end()) return *it->second;
    auto r = std::make_unique<Room>(*this, std::string(name), config.room_settings(name));
    Room& ref = *r;
    rooms_.emplace(std::string_view(ref.name()), std::move(r));
    return ref;
}

void Hub::join(Room& room, Connection& c) {
    room.seal();  // messages batched before it joined are not for it
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
        maybe_empty_.push_back(room.name());
        if (backplane_) backplane_->room_inactive(room.name());
    }
    // The messages batched this turn while it was a member are for it too: it takes its share now,
    // before whatever it queues next (its close frame). The batch stays pending for the others.
    // Not a seal: a seal would hand the batch to every member here, and one of them closing in
    // turn (queue full) would leave the room while a walk over the members (a broadcast's
    // compressed pass, a seal) may hold an iterator to it. Leaving only ever unlinks the leaver.
    if (room.batch_.empty() || c.takes_compressed()) return;
    const FramePtr share = room.batch_.size() == 1 ? room.batch_.front() : Frame::join(room.batch_, room.batch_bytes_);
    c.enqueue_batch(share, static_cast<uint32_t>(room.batch_.size()), room.batch_payload_bytes_);
}

void Hub::collect_empty_rooms() {
    for (const std::string& name : maybe_empty_) {
        const auto it = rooms_.find(name);
        if (it != rooms_.end() && it->second->size() == 0) rooms_.erase(it);
    }
    maybe_empty_.clear();
}

void Hub::apply(const config::Config& config) {
    if (deflate_level_ != static_cast<int>(config.deflate_level)) {
        deflate_level_ = static_cast<int>(config.deflate_level);
        for (auto& d : deflaters_) d.reset();  // recreated at the new level on next use
    }
    for (auto& [name, room] : rooms_) {
        room->seal();  // batched under the old settings
        room->settings_ = config.room_settings(name);
    }
}

}  // namespace wsrelay::relay
