// SPDX-License-Identifier: Apache-2.0
// Fuzz target: what arrives from Redis on a room's channel (cluster/envelope.h). A corrupt or
// hostile Redis must not crash wsrelay or get anything to a member that a member could not send:
// a decoded envelope has only text and binary messages within the size limit, its text is UTF-8,
// every view lies inside the input, and encoding the result again gives the same envelope back.
// The first byte picks the size limit (0..255 * 64 bytes); the rest is the channel message. The
// channel-name parser gets the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "cluster/envelope.h"
#include "proto/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wsrelay;
    if (size == 0) return 0;
    const size_t limit = size_t{data[0]} * 64;
    const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

    const std::string_view room = cluster::room_of("wsrelay:", text);
    if (!room.empty() && (room.data() < text.data() || room.data() + room.size() > text.data() + text.size()))
        __builtin_trap();

    const cluster::Envelope e = cluster::decode_envelope(in, limit);
    if (!e.ok) {
        if (!e.messages.empty() || e.error.empty()) __builtin_trap();
        return 0;
    }
    auto inside = [&](const void* p, size_t n) {
        const auto* b = static_cast<const std::byte*>(p);
        return b >= in.data() && b + n <= in.data() + in.size();
    };
    if (!inside(e.node_id.data(), e.node_id.size()) || e.messages.empty()) __builtin_trap();
    cluster::EnvelopeWriter w;
    w.start(e.node_id);
    for (const cluster::EnvelopeMessage& m : e.messages) {
        if (m.op != proto::Opcode::Text && m.op != proto::Opcode::Binary) __builtin_trap();
        if (m.payload.size() > limit || !inside(m.payload.data(), m.payload.size())) __builtin_trap();
        if (m.op == proto::Opcode::Text && !proto::is_valid_utf8(m.payload)) __builtin_trap();
        w.add(m.op, m.payload);
    }
    // The input decoded whole, so it is exactly what the writer makes of the same messages.
    if (w.bytes().size() != in.size() || std::memcmp(w.bytes().data(), in.data(), in.size()) != 0) __builtin_trap();
    return 0;
}
