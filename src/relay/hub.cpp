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
    Outgoing message(hub_, op, payload);
    // Advance before visiting: enqueue() may make that member leave (slow consumer closed), which
    // unlinks only that member.
    for (auto it = members_.begin(); it != members_.end();) {
        Connection& c = *it;
        ++it;
        if (&c == origin && !settings_.echo) continue;
        c.enqueue(message);
    }
}

FramePtr Hub::compress(proto::Opcode op, std::span<const std::byte> payload, int window_bits) {
    auto& d = deflaters_[static_cast<size_t>(window_bits - 9)];
    if (!d) d = std::make_unique<proto::Deflater>(window_bits, deflate_level_);
    if (!d->compress(payload, compressed_)) return FramePtr();
    return Frame::encode(op, compressed_, /*rsv1=*/true);
}

Hub::~Hub() {
    for (auto& [name, room] : rooms_) room->members_.clear();
}

Room& Hub::room(std::string_view name, const config::Config& config) {
    if (const auto it = rooms_.find(name); it != rooms_.end()) return *it->second;
    auto r = std::make_unique<Room>(*this, std::string(name), config.room_settings(name));
    Room& ref = *r;
    rooms_.emplace(std::string_view(ref.name()), std::move(r));
    return ref;
}

void Hub::join(Room& room, Connection& c) {
    room.members_.push_back(c);
    if (room.size_++ == 0) ++nonempty_rooms_;
    ++members_;
}

void Hub::leave(Room& room, Connection& c) {
    decltype(room.members_)::erase(c);
    --members_;
    if (--room.size_ == 0) {
        --nonempty_rooms_;
        maybe_empty_.push_back(room.name());
    }
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
    for (auto& [name, room] : rooms_) room->settings_ = config.room_settings(name);
}

}  // namespace wsrelay::relay
