// SPDX-License-Identifier: Apache-2.0
#include "bench/wire.h"

#include <algorithm>
#include <cstring>

#include "proto/mask.h"

namespace wsrelay::bench {

void write_timestamp(std::byte* out, uint64_t ns, bool text) noexcept {
    if (!text) {
        for (size_t i = 0; i < kTimestampBytes; ++i) out[i] = std::byte{static_cast<uint8_t>(ns >> (8 * i))};
        return;
    }
    for (size_t i = 0; i < kTimestampBytes; ++i) out[i] = std::byte{static_cast<uint8_t>('0' + ((ns >> (6 * i)) & 63))};
}

bool read_timestamp(const std::byte* in, bool text, uint64_t& ns) noexcept {
    ns = 0;
    if (!text) {
        for (size_t i = 0; i < kTimestampBytes; ++i) ns |= std::to_integer<uint64_t>(in[i]) << (8 * i);
        return true;
    }
    for (size_t i = 0; i < kTimestampBytes; ++i) {
        const unsigned c = std::to_integer<unsigned>(in[i]);
        if (c < '0' || c > '0' + 63) return false;
        ns |= static_cast<uint64_t>(c - '0') << (6 * i);
    }
    return true;
}

// --- OutBuffer -------------------------------------------------------------------------------

void OutBuffer::reserve(size_t bytes) {
    if (capacity_ - tail_ >= bytes) return;
    prepare(bytes);
}

std::byte* OutBuffer::prepare(size_t n) {
    if (capacity_ - tail_ >= n) return data_.get() + tail_;
    const size_t used = tail_ - head_;
    if (capacity_ - used >= n && head_ >= used) {
        // Enough room once the written part is dropped, and the move is cheap: slide down.
        std::memmove(data_.get(), data_.get() + head_, used);
    } else {
        size_t cap = capacity_ ? capacity_ : 4096;
        while (cap - used < n) cap *= 2;
        auto bigger = std::make_unique_for_overwrite<std::byte[]>(cap);
        if (used) std::memcpy(bigger.get(), data_.get() + head_, used);
        data_ = std::move(bigger);
        capacity_ = cap;
    }
    head_ = 0;
    tail_ = used;
    return data_.get() + tail_;
}

void OutBuffer::consume(size_t n) noexcept {
    head_ += n;
    if (head_ == tail_) head_ = tail_ = 0;  // empty: the next burst starts at the front
}

void OutBuffer::append(std::span<const std::byte> bytes) {
    if (bytes.empty()) return;
    std::memcpy(prepare(bytes.size()), bytes.data(), bytes.size());
    commit(bytes.size());
}

// --- MessageTemplate ---------------------------------------------------------------------------

MessageTemplate::MessageTemplate(bool raw, bool text, size_t payload_bytes, proto::MaskKey key)
    : key_(key), masked_(!raw), text_(text), timed_(payload_bytes >= kTimestampBytes) {
    const size_t header = raw ? kRawHeaderBytes : proto::frame_header_size(payload_bytes, true);
    size_ = header + payload_bytes;
    payload_offset_ = header;
    bytes_ = std::make_unique<std::byte[]>(size_);
    if (raw) {
        for (size_t i = 0; i < kRawHeaderBytes; ++i)
            bytes_[i] = std::byte{static_cast<uint8_t>(payload_bytes >> (8 * (kRawHeaderBytes - 1 - i)))};
    } else {
        proto::FrameHeader h;
        h.opcode = text ? proto::Opcode::Text : proto::Opcode::Binary;
        h.payload_len = payload_bytes;
        h.masked = true;
        h.mask_key = key;
        proto::encode_frame_header({bytes_.get(), header}, h);
    }
    const std::span<std::byte> payload(bytes_.get() + header, payload_bytes);
    std::fill(payload.begin(), payload.end(), std::byte{'x'});
    if (masked_) proto::apply_mask(payload, key, 0);
}

void MessageTemplate::append_to(OutBuffer& out, uint64_t now_ns) const {
    std::byte* p = out.prepare(size_);
    std::memcpy(p, bytes_.get(), size_);
    if (timed_) {
        const std::span<std::byte> ts(p + payload_offset_, kTimestampBytes);
        write_timestamp(ts.data(), now_ns, text_);
        if (masked_) proto::apply_mask(ts, key_, 0);  // the payload starts at mask phase 0
    }
    out.commit(size_);
}

// --- One-off frames ------------------------------------------------------------------------------

void append_ws_frame(OutBuffer& out, proto::Opcode op, std::span<const std::byte> payload, proto::MaskKey key) {
    proto::FrameHeader h;
    h.opcode = op;
    h.payload_len = payload.size();
    h.masked = true;
    h.mask_key = key;
    const size_t header = proto::frame_header_size(payload.size(), true);
    std::byte* p = out.prepare(header + payload.size());
    proto::encode_frame_header({p, header}, h);
    if (!payload.empty()) std::memcpy(p + header, payload.data(), payload.size());
    proto::apply_mask({p + header, payload.size()}, key, 0);
    out.commit(header + payload.size());
}

void append_raw_message(OutBuffer& out, std::span<const std::byte> payload) {
    std::byte* p = out.prepare(kRawHeaderBytes + payload.size());
    for (size_t i = 0; i < kRawHeaderBytes; ++i)
        p[i] = std::byte{static_cast<uint8_t>(payload.size() >> (8 * (kRawHeaderBytes - 1 - i)))};
    if (!payload.empty()) std::memcpy(p + kRawHeaderBytes, payload.data(), payload.size());
    out.commit(kRawHeaderBytes + payload.size());
}

// --- RawDecoder ----------------------------------------------------------------------------------

proto::DecodeStep RawDecoder::next(std::span<std::byte> in) noexcept {
    size_t header = 0;
    if (!in_message_) {
        if (in.size() < kRawHeaderBytes) return {};
        uint32_t len = 0;
        for (size_t i = 0; i < kRawHeaderBytes; ++i) len = (len << 8) | std::to_integer<uint32_t>(in[i]);
        remaining_ = len;
        in_message_ = true;
        header = kRawHeaderBytes;
        in = in.subspan(kRawHeaderBytes);
    } else if (in.empty()) {
        return {};
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
    proto::DecodeStep s;
    s.kind = proto::StepKind::Data;
    s.consumed = header + n;
    s.payload = in.first(n);
    s.opcode = proto::Opcode::Binary;
    s.message_begins = header != 0;
    remaining_ -= n;
    s.message_ends = remaining_ == 0;
    if (s.message_ends) in_message_ = false;
    return s;
}

}  // namespace wsrelay::bench
