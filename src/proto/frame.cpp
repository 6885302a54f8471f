// SPDX-License-Identifier: Apache-2.0
#include "proto/frame.h"

#include <algorithm>
#include <cstring>

namespace wsrelay::proto {
namespace {

uint16_t load_be16(const std::byte* p) noexcept {
    return static_cast<uint16_t>((std::to_integer<unsigned>(p[0]) << 8) | std::to_integer<unsigned>(p[1]));
}

uint64_t load_be64(const std::byte* p) noexcept {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | std::to_integer<uint64_t>(p[i]);
    return v;
}

bool known_opcode(unsigned op) noexcept { return op <= 0x2 || (op >= 0x8 && op <= 0xA); }

}  // namespace

DecodeStep FrameDecoder::fail(CloseCode code, std::string_view reason) noexcept {
    state_ = State::Failed;
    DecodeStep s;
    s.kind = StepKind::Error;
    s.error = {code, reason};
    return s;
}

DecodeStep FrameDecoder::next(std::span<std::byte> in) noexcept {
    if (state_ == State::Failed) return fail(CloseCode::ProtocolError, "decoder already failed");
    if (state_ == State::Payload) return take_payload(in, 0);

    // --- Frame header (RFC 6455 §5.2) ---
    if (in.size() < 2) return {};
    const unsigned b0 = std::to_integer<unsigned>(in[0]);
    const unsigned b1 = std::to_integer<unsigned>(in[1]);
    const bool fin = (b0 & 0x80) != 0;
    const bool rsv1 = (b0 & 0x40) != 0;
    const unsigned op_bits = b0 & 0x0F;
    const bool masked = (b1 & 0x80) != 0;
    const unsigned len7 = b1 & 0x7F;

    if (!known_opcode(op_bits)) return fail(CloseCode::ProtocolError, "reserved opcode");
    const auto op = static_cast<Opcode>(op_bits);
    // RFC 6455 §5.2: RSV bits must be 0 unless an extension defines them. RFC 7692 §6 defines RSV1
    // for the first frame of a data message only.
    if ((b0 & 0x30) != 0) return fail(CloseCode::ProtocolError, "reserved bits set");
    if (rsv1 && !(options_.allow_rsv1 && (op == Opcode::Text || op == Opcode::Binary)))
        return fail(CloseCode::ProtocolError, "reserved bits set");
    // RFC 6455 §5.1: a client masks every frame, a server masks none.
    if (options_.role == Role::Server && !masked) return fail(CloseCode::ProtocolError, "client frame not masked");
    if (options_.role == Role::Client && masked) return fail(CloseCode::ProtocolError, "server frame masked");

    const size_t len_bytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const size_t header_len = 2 + len_bytes + (masked ? 4 : 0);
    if (in.size() < header_len) return {};

    uint64_t len = len7;
    if (len7 == 126) {
        len = load_be16(in.data() + 2);
        if (len < 126) return fail(CloseCode::ProtocolError, "length not minimally encoded");
    } else if (len7 == 127) {
        len = load_be64(in.data() + 2);
        // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
        if (len >> 63) return fail(CloseCode::ProtocolError, "length has the top bit set");
        if (len <= 0xFFFF) return fail(CloseCode::ProtocolError, "length not minimally encoded");
    }
    MaskKey key = 0;
    if (masked) std::memcpy(&key, in.data() + 2 + len_bytes, 4);

    if (is_control(op)) {
        // RFC 6455 §5.5: control frames carry <= 125 bytes and must not be fragmented.
        if (!fin) return fail(CloseCode::ProtocolError, "fragmented control frame");
        if (len > kMaxControlPayload) return fail(CloseCode::ProtocolError, "control frame too long");
        const size_t frame_bytes = header_len + static_cast<size_t>(len);
        if (in.size() < frame_bytes) return {};
        const auto payload = in.subspan(header_len, static_cast<size_t>(len));
        if (masked) apply_mask(payload, key, 0);
        return control_frame(op, payload, frame_bytes);
    }

    // RFC 6455 §5.4: continuation frames continue a message; a new message may not start inside one.
    if (op == Opcode::Continuation) {
        if (!in_message_) return fail(CloseCode::ProtocolError, "continuation without a message");
        if (rsv1) return fail(CloseCode::ProtocolError, "reserved bits set");
    } else if (in_message_) {
        return fail(CloseCode::ProtocolError, "new message inside a fragmented message");
    }
    const uint64_t so_far = op == Opcode::Continuation ? message_bytes_ : 0;
    if (len > options_.max_message_bytes || so_far > options_.max_message_bytes - len)
        return fail(CloseCode::MessageTooBig, "message too big");

    if (op != Opcode::Continuation) {
        message_opcode_ = op;
        in_message_ = true;
        begins_pending_ = true;
        compressed_ = rsv1;
        message_bytes_ = 0;
        utf8_.reset();
    }
    message_bytes_ += len;
    remaining_ = len;
    mask_ = key;
    mask_phase_ = 0;
    masked_ = masked;
    frame_fin_ = fin;
    state_ = State::Payload;
    return take_payload(in.subspan(header_len), header_len);
}

DecodeStep FrameDecoder::take_payload(std::span<std::byte> in, size_t already_consumed) noexcept {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
    // An empty piece is reported only when it finishes a frame (zero-length frames): otherwise it
    // carries nothing and the caller should just read more.
    if (n == 0 && remaining_ != 0) {
        DecodeStep more;
        more.consumed = already_consumed;
        return more;
    }

    const auto chunk = in.first(n);
    if (masked_) apply_mask(chunk, mask_, mask_phase_);
    mask_phase_ = static_cast<uint8_t>((mask_phase_ + n) & 3);
    remaining_ -= n;
    const bool ends = remaining_ == 0 && frame_fin_;

    if (message_opcode_ == Opcode::Text && options_.validate_utf8 && !compressed_) {
        if (!utf8_.feed(chunk)) return fail(CloseCode::InvalidPayload, "invalid UTF-8 in text message");
        if (ends && !utf8_.complete()) return fail(CloseCode::InvalidPayload, "text message ends inside a code point");
    }

    DecodeStep s;
    s.kind = StepKind::Data;
    s.consumed = already_consumed + n;
    s.payload = chunk;
    s.opcode = message_opcode_;
    s.message_begins = begins_pending_;
    s.message_ends = ends;
    s.compressed = compressed_;
    begins_pending_ = false;
    if (remaining_ == 0) {
        state_ = State::Header;
        if (frame_fin_) in_message_ = false;
    }
    return s;
}

DecodeStep FrameDecoder::control_frame(Opcode op, std::span<std::byte> payload, size_t frame_bytes) noexcept {
    DecodeStep s;
    s.kind = StepKind::Control;
    s.consumed = frame_bytes;
    s.opcode = op;
    s.payload = payload;
    if (op == Opcode::Close) {
        // RFC 6455 §5.5.1: an empty body means "no status"; otherwise a 2-byte code, then UTF-8.
        if (payload.size() == 1) return fail(CloseCode::ProtocolError, "close frame with a 1-byte body");
        if (payload.empty()) {
            s.close_code = to_wire(CloseCode::NoStatus);
        } else {
            s.close_code = load_be16(payload.data());
            if (!is_valid_wire_close_code(s.close_code)) return fail(CloseCode::ProtocolError, "invalid close code");
            const auto reason = payload.subspan(2);
            if (!is_valid_utf8(reason)) return fail(CloseCode::InvalidPayload, "close reason is not UTF-8");
            s.close_reason = {reinterpret_cast<const char*>(reason.data()), reason.size()};
        }
    }
    return s;
}

size_t encode_frame_header(std::span<std::byte> out, const FrameHeader& h) noexcept {
    std::byte* p = out.data();
    p[0] = std::byte{static_cast<uint8_t>((h.fin ? 0x80 : 0) | (h.rsv1 ? 0x40 : 0) | static_cast<uint8_t>(h.opcode))};
    const uint8_t mask_bit = h.masked ? 0x80 : 0;
    size_t n;
    if (h.payload_len <= 125) {
        p[1] = std::byte{static_cast<uint8_t>(mask_bit | h.payload_len)};
        n = 2;
    } else if (h.payload_len <= 0xFFFF) {
        p[1] = std::byte{static_cast<uint8_t>(mask_bit | 126)};
        p[2] = std::byte{static_cast<uint8_t>(h.payload_len >> 8)};
        p[3] = std::byte{static_cast<uint8_t>(h.payload_len)};
        n = 4;
    } else {
        p[1] = std::byte{static_cast<uint8_t>(mask_bit | 127)};
        for (int i = 0; i < 8; ++i) p[2 + i] = std::byte{static_cast<uint8_t>(h.payload_len >> (56 - 8 * i))};
        n = 10;
    }
    if (h.masked) {
        std::memcpy(p + n, &h.mask_key, 4);
        n += 4;
    }
    return n;
}

size_t encode_close_payload(std::span<std::byte, kMaxControlPayload> out, uint16_t code,
                            std::string_view reason) noexcept {
    out[0] = std::byte{static_cast<uint8_t>(code >> 8)};
    out[1] = std::byte{static_cast<uint8_t>(code)};
    size_t n = std::min(reason.size(), kMaxControlPayload - 2);
    // Never cut a code point in half: back up over continuation bytes (10xxxxxx).
    if (n < reason.size())
        while (n > 0 && (static_cast<uint8_t>(reason[n]) & 0xC0) == 0x80) --n;
    if (n) std::memcpy(out.data() + 2, reason.data(), n);
    return 2 + n;
}

std::vector<std::byte> encode_frame(const FrameHeader& header, std::span<const std::byte> payload) {
    FrameHeader h = header;
    h.payload_len = payload.size();
    std::vector<std::byte> out(frame_header_size(h.payload_len, h.masked) + payload.size());
    const size_t hn = encode_frame_header(out, h);
    if (!payload.empty()) std::memcpy(out.data() + hn, payload.data(), payload.size());
    if (h.masked) apply_mask(std::span(out).subspan(hn), h.mask_key, 0);
    return out;
}

}  // namespace wsrelay::proto
