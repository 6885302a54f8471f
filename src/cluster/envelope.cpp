// SPDX-License-Identifier: Apache-2.0
#include "cluster/envelope.h"

#include <algorithm>
#include <cstring>

#include "proto/utf8.h"

namespace wsrelay::cluster {

namespace {
constexpr std::string_view kRoomInfix = "room:";
}

std::string channel_for(std::string_view prefix, std::string_view room) {
    std::string c;
    c.reserve(prefix.size() + kRoomInfix.size() + room.size());
    c.append(prefix).append(kRoomInfix).append(room);
    return c;
}

std::string_view room_of(std::string_view prefix, std::string_view channel) noexcept {
    if (channel.size() <= prefix.size() + kRoomInfix.size() || !channel.starts_with(prefix) ||
        channel.substr(prefix.size(), kRoomInfix.size()) != kRoomInfix)
        return {};
    return channel.substr(prefix.size() + kRoomInfix.size());
}

void EnvelopeWriter::start(std::string_view node_id) {
    out_.clear();
    messages_ = 0;
    node_id = node_id.substr(0, kMaxNodeIdBytes);
    out_.append(kEnvelopeMagic);
    out_.push_back(static_cast<char>(node_id.size()));
    out_.append(node_id);
}

void EnvelopeWriter::add(proto::Opcode op, std::span<const std::byte> payload) {
    const auto n = static_cast<uint32_t>(payload.size());
    const char head[5] = {static_cast<char>(op), static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                          static_cast<char>(n >> 8), static_cast<char>(n)};
    out_.append(head, sizeof head);
    out_.append(reinterpret_cast<const char*>(payload.data()), payload.size());
    ++messages_;
}

Envelope decode_envelope(std::span<const std::byte> bytes, size_t max_message_bytes) {
    Envelope e;
    auto fail = [&](std::string_view why) {
        e.ok = false;
        e.error = why;
        e.messages.clear();
        return e;
    };
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    size_t left = bytes.size();
    if (left < kEnvelopeMagic.size() + 1 || std::memcmp(p, kEnvelopeMagic.data(), kEnvelopeMagic.size()) != 0)
        return fail("not a wsrelay envelope");
    p += kEnvelopeMagic.size();
    left -= kEnvelopeMagic.size();
    const size_t id_len = *p++;
    --left;
    if (left < id_len) return fail("truncated node id");
    e.node_id = std::string_view(reinterpret_cast<const char*>(p), id_len);
    p += id_len;
    left -= id_len;
    if (left == 0) return fail("no messages");
    while (left > 0) {
        if (left < 5) return fail("truncated message header");
        const uint8_t op = p[0];
        const size_t n = (size_t{p[1]} << 24) | (size_t{p[2]} << 16) | (size_t{p[3]} << 8) | size_t{p[4]};
        p += 5;
        left -= 5;
        if (op != static_cast<uint8_t>(proto::Opcode::Text) && op != static_cast<uint8_t>(proto::Opcode::Binary))
            return fail("a message that is neither text nor binary");
        if (n > max_message_bytes) return fail("a message over max_message_bytes");
        if (n > left) return fail("truncated message");
        const std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(p), n);
        if (op == static_cast<uint8_t>(proto::Opcode::Text) && !proto::is_valid_utf8(payload))
            return fail("a text message that is not UTF-8");
        e.messages.push_back({static_cast<proto::Opcode>(op), payload});
        p += n;
        left -= n;
    }
    e.ok = true;
    return e;
}

}  // namespace wsrelay::cluster
