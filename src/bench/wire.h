// SPDX-License-Identifier: Apache-2.0
// The client side of the two wire formats wsrelay-bench speaks, sans I/O:
//
//  - WebSocket (RFC 6455): frames built with proto::encode_frame_header(), masked with the
//    connection's key; server frames decoded by proto::FrameDecoder in Role::Client.
//  - Raw, for the ceiling server (wsrelay-raw-ceiling): every message is a 4-byte big-endian
//    length and that many payload bytes. A connection's first message names its room; the server
//    answers it with an empty message (the "welcome", the raw counterpart of 101), then relays
//    every message to every member of the room, the sender included.
//
// Every benchmark message carries its send time in its first 8 payload bytes, so latency is
// measured from the payload alone; the rest is filler. Messages are built once per connection
// (MessageTemplate) and stamped as they are sent, so sending copies bytes and allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "proto/frame.h"

namespace wsrelay::bench {

constexpr size_t kTimestampBytes = 8;
constexpr size_t kRawHeaderBytes = 4;

// Timestamps are nanoseconds since the run started. Binary messages carry them as 8 little-endian
// bytes; text messages as 8 characters of 6 bits each ('0' + 0..63, all ASCII, valid UTF-8),
// which holds 2^48 ns, about 78 hours.
void write_timestamp(std::byte* out, uint64_t ns, bool text) noexcept;
// Returns false when the bytes are not a timestamp of that kind (another client's message).
bool read_timestamp(const std::byte* in, bool text, uint64_t& ns) noexcept;

// Bytes waiting to be written: appended at the tail, written from the head. Grows (by doubling)
// only when a burst outgrows it; sized up front for the scenario, so steady traffic never grows it.
class OutBuffer {
public:
    std::span<const std::byte> pending() const noexcept { return {data_.get() + head_, tail_ - head_}; }
    size_t size() const noexcept { return tail_ - head_; }
    bool empty() const noexcept { return head_ == tail_; }

    void reserve(size_t bytes);
    // Room for `n` more bytes at the tail; fill it, then commit(n).
    std::byte* prepare(size_t n);
    void commit(size_t n) noexcept { tail_ += n; }
    void consume(size_t n) noexcept;
    void append(std::span<const std::byte> bytes);

private:
    std::unique_ptr<std::byte[]> data_;
    size_t head_ = 0;
    size_t tail_ = 0;
    size_t capacity_ = 0;
};

// One connection's outgoing benchmark message, encoded once: the header (masked WebSocket frame
// header or raw length) and a filler payload, already masked. append_to() copies it and stamps
// the time into its first 8 payload bytes, masking those 8 bytes with the connection's key.
class MessageTemplate {
public:
    MessageTemplate() = default;
    // `key` is ignored for raw messages.
    MessageTemplate(bool raw, bool text, size_t payload_bytes, proto::MaskKey key);

    size_t size() const noexcept { return size_; }
    bool timed() const noexcept { return timed_; }
    void append_to(OutBuffer& out, uint64_t now_ns) const;

private:
    std::unique_ptr<std::byte[]> bytes_;
    size_t size_ = 0;
    size_t payload_offset_ = 0;
    proto::MaskKey key_ = 0;
    bool masked_ = false;
    bool text_ = false;
    bool timed_ = false;  // the payload is big enough for a timestamp
};

// Appends a masked WebSocket frame (control frames: pong, close) to `out`.
void append_ws_frame(OutBuffer& out, proto::Opcode op, std::span<const std::byte> payload, proto::MaskKey key);
// Appends a raw message (the room name at connection start).
void append_raw_message(OutBuffer& out, std::span<const std::byte> payload);

// Decodes raw messages the way proto::FrameDecoder decodes frames: next() returns Data steps that
// carry payload pieces (views into the input) with message_begins/ends, and NeedMore with a
// partial length header (< 4 bytes) left unconsumed for the caller to present again.
class RawDecoder {
public:
    proto::DecodeStep next(std::span<std::byte> in) noexcept;

private:
    uint64_t remaining_ = 0;  // payload bytes of the current message still to come
    bool in_message_ = false;
};

}  // namespace wsrelay::bench
