// SPDX-License-Identifier: Apache-2.0
// RFC 6455 §5 framing, sans I/O: FrameDecoder turns received bytes into message pieces and control
// frames; encode_frame_header() writes the header that goes in front of a payload.
//
// Decoding is a pull loop over a caller-owned, mutable buffer:
//
//     for (;;) {
//         const DecodeStep s = decoder.next(buf);
//         buf = buf.subspan(s.consumed);
//         if (s.kind == StepKind::NeedMore) break;   // keep `buf` (<= 14 + 125 bytes) for later
//         ...handle s...
//     }
//
// Payloads are unmasked in place and handed out as views into the caller's buffer, so nothing is
// copied. Data frames are streamed: a step carries whatever part of the payload has arrived, so a
// large frame never has to fit in the buffer. A frame header and a whole control frame (<= 127 +
// 4 bytes) are only consumed once complete; until then next() says NeedMore and the caller must
// present those bytes again, followed by more. Errors are values carrying the close code to send.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "proto/close_code.h"
#include "proto/mask.h"
#include "proto/utf8.h"

namespace wsrelay::proto {

enum class Opcode : uint8_t {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
};

constexpr bool is_control(Opcode op) noexcept { return (static_cast<uint8_t>(op) & 0x8) != 0; }

constexpr size_t kMaxFrameHeaderBytes = 14;  // 2 + 8 (64-bit length) + 4 (mask key)
constexpr size_t kMaxControlPayload = 125;   // RFC 6455 §5.5

// Which side of the connection decodes: a server receives masked frames, a client unmasked ones.
enum class Role : uint8_t { Server, Client };

struct DecoderOptions {
    // Largest message (sum of its fragments' payloads) accepted; more is refused with 1009 as soon
    // as a frame header announces it, before any of it is buffered.
    uint64_t max_message_bytes = 1u << 20;
    Role role = Role::Server;  // after the 8-byte field: every connection's decoder holds a copy
    // Check text messages for UTF-8 as they stream in (RFC 6455 §8.1) and refuse them with 1007.
    bool validate_utf8 = true;
    // A negotiated extension (permessage-deflate, RFC 7692) gives RSV1 a meaning on the first frame
    // of a data message. Without one, any RSV bit is a protocol error.
    bool allow_rsv1 = false;
};

struct ProtocolError {
    CloseCode code = CloseCode::ProtocolError;
    std::string_view reason;  // static text, short enough for a close frame
};

enum class StepKind : uint8_t {
    NeedMore,  // nothing more can be decoded from the input; present the rest again with more bytes
    Data,      // a piece of a Text or Binary message's payload
    Control,   // a whole Ping, Pong or Close frame
    Error,     // the peer broke the protocol; the decoder stays failed
};

struct DecodeStep {
    StepKind kind = StepKind::NeedMore;
    size_t consumed = 0;                  // bytes of the input this step used up
    std::span<const std::byte> payload;   // Data/Control: unmasked bytes inside the caller's buffer
    Opcode opcode = Opcode::Continuation; // Data: the message's opcode; Control: the frame's
    bool message_begins = false;          // Data: first piece of a new message
    bool message_ends = false;            // Data: last piece of the message (its FIN frame ended)
    bool compressed = false;              // Data: RSV1 was set on the message's first frame
    uint16_t close_code = 0;              // Close: the code, or 1005 when the frame carried none
    std::string_view close_reason;        // Close: the UTF-8 reason (a view into the payload)
    ProtocolError error;                  // Error: what to send in our close frame
};

// Decodes one direction of one connection. Holds no buffers: about 32 bytes of state.
class FrameDecoder {
public:
    explicit FrameDecoder(const DecoderOptions& options = {}) noexcept : options_(options) {}

    // Decodes the next event at the front of `in`, unmasking payload bytes in place.
    DecodeStep next(std::span<std::byte> in) noexcept;

    // Limits may change between messages (config reload); they apply from the next frame header.
    void set_options(const DecoderOptions& options) noexcept { options_ = options; }
    const DecoderOptions& options() const noexcept { return options_; }

    bool in_message() const noexcept { return in_message_; }
    bool failed() const noexcept { return state_ == State::Failed; }

private:
    enum class State : uint8_t { Header, Payload, Failed };

    DecodeStep fail(CloseCode code, std::string_view reason) noexcept;
    DecodeStep take_payload(std::span<std::byte> in, size_t already_consumed) noexcept;
    DecodeStep control_frame(Opcode op, std::span<std::byte> payload, size_t frame_bytes) noexcept;

    DecoderOptions options_;
    uint64_t remaining_ = 0;      // payload bytes still to come in the current data frame
    uint64_t message_bytes_ = 0;  // payload bytes announced so far for the current message
    MaskKey mask_ = 0;
    uint8_t mask_phase_ = 0;
    State state_ = State::Header;
    Opcode message_opcode_ = Opcode::Continuation;
    bool masked_ = false;
    bool frame_fin_ = false;
    bool in_message_ = false;      // a data message has begun and its FIN frame has not ended yet
    bool begins_pending_ = false;  // the next data piece is the first of its message
    bool compressed_ = false;
    Utf8Validator utf8_;
};

struct FrameHeader {
    Opcode opcode = Opcode::Text;
    bool fin = true;
    bool rsv1 = false;
    uint64_t payload_len = 0;
    bool masked = false;  // clients mask (RFC 6455 §5.3); a server never does
    MaskKey mask_key = 0;
};

// Size of the header encode_frame_header() writes: 2, 4 or 10 bytes, plus 4 when masked.
constexpr size_t frame_header_size(uint64_t payload_len, bool masked) noexcept {
    const size_t base = payload_len <= 125 ? 2 : payload_len <= 0xFFFF ? 4 : 10;
    return base + (masked ? 4 : 0);
}

// Writes the header (7-, 16- or 64-bit length, minimal form) into `out`, which must hold
// frame_header_size() bytes. The payload is not touched: the caller places the header in front of
// it, so one encoded frame can be shared by any number of recipients. Returns the header size.
size_t encode_frame_header(std::span<std::byte> out, const FrameHeader& header) noexcept;

// A close frame's payload: the code in network order, then `reason` cut to fit the 125-byte
// control limit at a UTF-8 boundary. Returns the payload size.
size_t encode_close_payload(std::span<std::byte, kMaxControlPayload> out, uint16_t code,
                            std::string_view reason) noexcept;

// Header and payload in one new buffer, masked when header.masked; for clients, tests and tools.
std::vector<std::byte> encode_frame(const FrameHeader& header, std::span<const std::byte> payload);

}  // namespace wsrelay::proto
