// SPDX-License-Identifier: Apache-2.0
// What one instance publishes on a room's Redis channel, and the channel's name. Pure: bytes in,
// bytes or views out; no Redis, no sockets, no logging (like proto/).
//
// An envelope carries the messages one instance relayed in a room during one loop turn (one
// PUBLISH for all of them), each with its opcode, behind the id of the node that sent it, so that
// an instance skips its own publications when Redis delivers them back:
//
//   "WSR1"  u8 node_id_len  node_id  then, per message:  u8 opcode (1 text, 2 binary)  u32 length
//   (big-endian)  payload
//
// Decoding treats the input as hostile (a corrupt or impostor Redis): every length is checked
// against the bytes there are and against max_message_bytes, opcodes must be text or binary, and
// text must be valid UTF-8, so nothing reaches a member that a member could not have sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/frame.h"

namespace wsrelay::cluster {

constexpr std::string_view kEnvelopeMagic = "WSR1";
constexpr size_t kMaxNodeIdBytes = 255;

// `<prefix>room:<room path>`: Redis channel names are binary-safe, so the path goes in as it is.
std::string channel_for(std::string_view prefix, std::string_view room);
// The room of a channel named by channel_for(); empty if `channel` is not one of ours.
std::string_view room_of(std::string_view prefix, std::string_view channel) noexcept;

// Builds one envelope: start() once, then add() per message.
class EnvelopeWriter {
public:
    // `node_id` longer than kMaxNodeIdBytes is cut (config limits it to 200 bytes).
    void start(std::string_view node_id);
    void add(proto::Opcode op, std::span<const std::byte> payload);
    bool empty() const noexcept { return messages_ == 0; }
    uint32_t messages() const noexcept { return messages_; }
    const std::string& bytes() const noexcept { return out_; }
    void clear() noexcept {
        out_.clear();
        messages_ = 0;
    }

private:
    std::string out_;
    uint32_t messages_ = 0;
};

struct EnvelopeMessage {
    proto::Opcode op;
    std::span<const std::byte> payload;  // a view into the decoded bytes
};

struct Envelope {
    bool ok = false;
    std::string_view error;        // what is wrong, when !ok
    std::string_view node_id;      // a view into the decoded bytes
    std::vector<EnvelopeMessage> messages;
};

// Decodes `bytes`; every message must be at most `max_message_bytes`.
Envelope decode_envelope(std::span<const std::byte> bytes, size_t max_message_bytes);

}  // namespace wsrelay::cluster
