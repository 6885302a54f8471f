// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the unit tests.
//
// - Byte helpers: string <-> std::byte conversions, concatenation, printable dumps, and
//   difference() for CHECKs on large or binary data.
// - Rng: a fixed-seed SplitMix64, so random tests draw the same values with every compiler and
//   standard library (<random>'s distributions are not specified bit-for-bit).
// - raw_frame(): a WebSocket frame builder written from RFC 6455 §5.2 independently of
//   encode_frame_header(), able to build illegal frames (reserved bits and opcodes, non-minimal
//   lengths, lengths that differ from the payload) so decoder tests never trust the encoder.
// - SplitFeeder: drives a FrameDecoder over bytes arriving in arbitrary pieces, keeping the bytes a
//   NeedMore step left unconsumed and presenting them again with the next piece, exactly as the
//   header comment of proto/frame.h asks. It records every step as an owned Event and notes any
//   broken promise of that comment (payload views outside the input, NeedMore leaving more than
//   a header plus a control frame, steps that make no progress) as a contract violation.
// - normalize(): turns events into Items (whole messages, control frames, the error), a form that
//   does not depend on where the input was cut; for_each_feeding()/expect_decodes() feed one wire
//   image whole, at every split point, in random pieces and byte by byte, and compare.
// - reference_utf8(): a UTF-8 checker written from the definition (shortest form, scalar values,
//   RFC 3629 §3) rather than from Unicode Table 3-7, to cross-check the validator's DFA.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "proto/frame.h"
#include "proto/handshake.h"

// Failure messages name these enumerators instead of printing numbers.
CATCH_REGISTER_ENUM(wsrelay::proto::StepKind, wsrelay::proto::StepKind::NeedMore, wsrelay::proto::StepKind::Data,
                    wsrelay::proto::StepKind::Control, wsrelay::proto::StepKind::Error)
CATCH_REGISTER_ENUM(wsrelay::proto::Opcode, wsrelay::proto::Opcode::Continuation, wsrelay::proto::Opcode::Text,
                    wsrelay::proto::Opcode::Binary, wsrelay::proto::Opcode::Close, wsrelay::proto::Opcode::Ping,
                    wsrelay::proto::Opcode::Pong)
CATCH_REGISTER_ENUM(wsrelay::proto::ParseStatus, wsrelay::proto::ParseStatus::NeedMore, wsrelay::proto::ParseStatus::Done,
                    wsrelay::proto::ParseStatus::Error)
CATCH_REGISTER_ENUM(wsrelay::proto::RequestKind, wsrelay::proto::RequestKind::WebSocket, wsrelay::proto::RequestKind::Http)

namespace wsrelay::test {

using proto::CloseCode;
using proto::DecoderOptions;
using proto::DecodeStep;
using proto::FrameDecoder;
using proto::Opcode;
using proto::Role;
using proto::StepKind;

using Bytes = std::vector<std::byte>;

// ---------------------------------------------------------------------------------------------
// Bytes

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline Bytes bytes(std::string_view s) { return Bytes(as_bytes(s).begin(), as_bytes(s).end()); }

inline Bytes hex_bytes(std::initializer_list<unsigned> values) {
    Bytes out;
    for (const unsigned v : values) out.push_back(std::byte{static_cast<uint8_t>(v)});
    return out;
}

inline std::string str(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

inline Bytes cat(std::initializer_list<std::span<const std::byte>> parts) {
    Bytes out;
    for (const auto part : parts) out.insert(out.end(), part.begin(), part.end());
    return out;
}

// Printable form for failure messages: ASCII as is, anything else as \xNN, long strings cut short.
inline std::string printable(std::string_view s, size_t max_shown = 48) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    const size_t shown = std::min(s.size(), max_shown);
    for (size_t i = 0; i < shown; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '\\' && c != '"') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
        }
    }
    if (s.size() > shown) out += "...(" + std::to_string(s.size()) + " bytes)";
    return out;
}

inline std::string printable(std::span<const std::byte> b, size_t max_shown = 48) {
    return printable(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), max_shown);
}

// Empty when equal; otherwise where two byte strings first differ. For CHECKs on large or binary
// data, whose failure would otherwise print megabytes of raw bytes.
inline std::string difference(std::string_view got, std::string_view expected) {
    if (got == expected) return {};
    size_t i = 0;
    while (i < got.size() && i < expected.size() && got[i] == expected[i]) ++i;
    return "sizes " + std::to_string(got.size()) + " and " + std::to_string(expected.size()) + ", first difference at byte " +
           std::to_string(i) + ": \"" + printable(got.substr(i), 16) + "\" vs \"" + printable(expected.substr(i), 16) + "\"";
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

class Rng {
public:
    explicit Rng(uint64_t seed) noexcept : state_(seed) {}
    uint64_t next() noexcept {  // SplitMix64
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    size_t below(size_t n) noexcept { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
    size_t between(size_t lo, size_t hi) noexcept { return lo + below(hi - lo + 1); }  // inclusive
    std::byte byte() noexcept { return std::byte{static_cast<uint8_t>(next())}; }
    Bytes bytes(size_t n) {
        Bytes out(n);
        for (auto& b : out) b = byte();
        return out;
    }

private:
    uint64_t state_;
};

// ---------------------------------------------------------------------------------------------
// Building frames (RFC 6455 §5.2), independently of proto's encoder

// RFC 6455 §5.7's example masking key.
constexpr std::array<uint8_t, 4> kMaskKey{0x37, 0xFA, 0x21, 0x3D};

enum class LenForm : uint8_t { Minimal, Len16, Len64 };

struct RawFrame {
    unsigned opcode = 0x1;  // 4 raw bits: reserved opcodes can be built too
    bool fin = true;
    unsigned rsv = 0;       // 3 raw bits: RSV1 = 4, RSV2 = 2, RSV3 = 1 (Autobahn's numbering)
    bool masked = true;     // clients mask (RFC 6455 §5.3)
    std::array<uint8_t, 4> key = kMaskKey;
    LenForm len_form = LenForm::Minimal;
    std::optional<uint64_t> length{};  // the header's length field if not the payload size (header-only tests)
};

inline Bytes raw_frame(const RawFrame& f, std::span<const std::byte> payload) {
    const uint64_t len = f.length.value_or(payload.size());
    Bytes out;
    out.push_back(std::byte{static_cast<uint8_t>((f.fin ? 0x80 : 0) | ((f.rsv & 7) << 4) | (f.opcode & 0xF))});
    const uint8_t mask_bit = f.masked ? 0x80 : 0;
    LenForm form = f.len_form;
    if (form == LenForm::Minimal) form = len <= 125 ? LenForm::Minimal : len <= 0xFFFF ? LenForm::Len16 : LenForm::Len64;
    if (form == LenForm::Minimal) {
        out.push_back(std::byte{static_cast<uint8_t>(mask_bit | len)});
    } else if (form == LenForm::Len16) {
        out.push_back(std::byte{static_cast<uint8_t>(mask_bit | 126)});
        for (int shift = 8; shift >= 0; shift -= 8) out.push_back(std::byte{static_cast<uint8_t>(len >> shift)});
    } else {
        out.push_back(std::byte{static_cast<uint8_t>(mask_bit | 127)});
        for (int shift = 56; shift >= 0; shift -= 8) out.push_back(std::byte{static_cast<uint8_t>(len >> shift)});
    }
    if (f.masked)
        for (const uint8_t k : f.key) out.push_back(std::byte{k});
    for (size_t i = 0; i < payload.size(); ++i)
        out.push_back(f.masked ? (payload[i] ^ std::byte{f.key[i % 4]}) : payload[i]);
    return out;
}

inline Bytes raw_frame(const RawFrame& f, std::string_view payload = {}) { return raw_frame(f, as_bytes(payload)); }

// A frame as a client sends it (masked), for a Role::Server decoder.
inline Bytes masked_frame(Opcode op, std::string_view payload, bool fin = true) {
    return raw_frame({.opcode = static_cast<unsigned>(op), .fin = fin}, payload);
}

// A frame as a server sends it (unmasked), for a Role::Client decoder.
inline Bytes server_frame(Opcode op, std::string_view payload, bool fin = true) {
    return raw_frame({.opcode = static_cast<unsigned>(op), .fin = fin, .masked = false}, payload);
}

// A close frame body (RFC 6455 §5.5.1): the code in network order, then the reason.
inline std::string close_body(uint16_t code, std::string_view reason = {}) {
    std::string out;
    out += static_cast<char>(code >> 8);
    out += static_cast<char>(code & 0xFF);
    out += reason;
    return out;
}

// Decoder options for a server (the default side) with a message limit.
inline DecoderOptions limits(uint64_t max_message_bytes = 1u << 20) {
    DecoderOptions o;
    o.role = Role::Server;
    o.max_message_bytes = max_message_bytes;
    return o;
}

inline DecoderOptions client_limits(uint64_t max_message_bytes = 1u << 20) {
    DecoderOptions o = limits(max_message_bytes);
    o.role = Role::Client;
    return o;
}

// ---------------------------------------------------------------------------------------------
// Decoding

inline std::string_view kind_name(StepKind k) {
    switch (k) {
        case StepKind::NeedMore: return "NeedMore";
        case StepKind::Data: return "Data";
        case StepKind::Control: return "Control";
        case StepKind::Error: return "Error";
    }
    return "?";
}

inline std::string opcode_name(Opcode op) {
    switch (op) {
        case Opcode::Continuation: return "Continuation";
        case Opcode::Text: return "Text";
        case Opcode::Binary: return "Binary";
        case Opcode::Close: return "Close";
        case Opcode::Ping: return "Ping";
        case Opcode::Pong: return "Pong";
    }
    return "Opcode(" + std::to_string(static_cast<unsigned>(op)) + ")";
}

// One DecodeStep other than NeedMore, with its views copied out of the feeder's buffer.
struct Event {
    StepKind kind = StepKind::NeedMore;
    Opcode opcode = Opcode::Continuation;
    std::string payload{};
    bool begins = false;
    bool ends = false;
    bool compressed = false;
    uint16_t close_code = 0;
    std::string close_reason{};
    CloseCode error = CloseCode::Normal;
    bool operator==(const Event&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Event& e) {
    os << kind_name(e.kind);
    if (e.kind == StepKind::Error) return os << "(" << static_cast<unsigned>(e.error) << ")";
    os << "(" << opcode_name(e.opcode) << " \"" << printable(e.payload) << "\"";
    if (e.kind == StepKind::Data) os << (e.begins ? " begins" : "") << (e.ends ? " ends" : "") << (e.compressed ? " rsv1" : "");
    if (e.opcode == Opcode::Close) os << " code=" << e.close_code << " reason=\"" << printable(e.close_reason) << "\"";
    return os << ")";
}

// What a connection acts on, independent of how the bytes were cut into reads: a whole (or, at
// the end of the input, unfinished) data message, a control frame, or the error.
struct Item {
    enum class Kind : uint8_t { Message, Control, Error };
    Kind kind = Kind::Message;
    Opcode opcode = Opcode::Text;
    std::string payload{};
    bool complete = true;     // Message: its FIN frame ended (false: the input stopped inside it)
    bool compressed = false;  // Message: RSV1 on its first frame
    uint16_t close_code = 0;
    std::string close_reason{};
    CloseCode error = CloseCode::Normal;
    bool operator==(const Item&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Item& it) {
    switch (it.kind) {
        case Item::Kind::Error: return os << "Error(" << static_cast<unsigned>(it.error) << ")";
        case Item::Kind::Control:
            os << opcode_name(it.opcode) << "(\"" << printable(it.payload) << "\"";
            if (it.opcode == Opcode::Close) os << " code=" << it.close_code << " reason=\"" << printable(it.close_reason) << "\"";
            return os << ")";
        case Item::Kind::Message:
            return os << (it.complete ? "" : "unfinished ") << opcode_name(it.opcode) << (it.compressed ? "[rsv1]" : "")
                      << "(\"" << printable(it.payload) << "\")";
    }
    return os;
}

// Expected items, e.g. expect_decodes(wire, limits(), {want::text("hi"), want::ping("x")}).
namespace want {
inline Item text(std::string s) { return {.kind = Item::Kind::Message, .opcode = Opcode::Text, .payload = std::move(s)}; }
inline Item binary(std::string s) { return {.kind = Item::Kind::Message, .opcode = Opcode::Binary, .payload = std::move(s)}; }
inline Item compressed(Opcode op, std::string s) {
    return {.kind = Item::Kind::Message, .opcode = op, .payload = std::move(s), .compressed = true};
}
inline Item unfinished(Opcode op, std::string s) {
    return {.kind = Item::Kind::Message, .opcode = op, .payload = std::move(s), .complete = false};
}
inline Item ping(std::string s) { return {.kind = Item::Kind::Control, .opcode = Opcode::Ping, .payload = std::move(s)}; }
inline Item pong(std::string s) { return {.kind = Item::Kind::Control, .opcode = Opcode::Pong, .payload = std::move(s)}; }
// A close frame with a code (and reason): its payload is the close body.
inline Item close(uint16_t code, std::string reason = {}) {
    return {.kind = Item::Kind::Control, .opcode = Opcode::Close, .payload = close_body(code, reason),
            .close_code = code, .close_reason = std::move(reason)};
}
// An empty close frame: reported as code 1005 (RFC 6455 §7.1.5).
inline Item close_empty() {
    return {.kind = Item::Kind::Control, .opcode = Opcode::Close, .close_code = proto::to_wire(CloseCode::NoStatus)};
}
inline Item error(CloseCode code) { return {.kind = Item::Kind::Error, .error = code}; }
}  // namespace want

// Drives one FrameDecoder over bytes that arrive in pieces (reads). After an Error it stops, as a
// connection would; FrameDecoder's own stickiness is tested separately.
class SplitFeeder {
public:
    explicit SplitFeeder(const DecoderOptions& options = limits()) : decoder_(options) {}

    // One read: appends `piece` to the bytes left unconsumed and decodes everything it can.
    // Returns the number of events this read produced.
    size_t feed(std::span<const std::byte> piece) {
        const size_t before = events_.size();
        if (failed_) return 0;
        pending_.insert(pending_.end(), piece.begin(), piece.end());
        std::span<std::byte> buf(pending_);
        for (;;) {
            const DecodeStep s = decoder_.next(buf);
            if (s.consumed > buf.size()) {
                violation("step consumed " + std::to_string(s.consumed) + " of " + std::to_string(buf.size()) + " bytes");
                failed_ = true;
                break;
            }
            if (!s.payload.empty() && (s.payload.data() < buf.data() ||
                                       s.payload.data() + s.payload.size() > buf.data() + s.consumed))
                violation("payload view is not inside the bytes the step consumed");
            if (s.kind == StepKind::NeedMore) {
                buf = buf.subspan(s.consumed);
                // Nothing more is decodable: at most a partial header, or a header and a partial
                // control frame, may be left over (frame.h: "<= 14 + 125 bytes").
                if (buf.size() > proto::kMaxFrameHeaderBytes + proto::kMaxControlPayload)
                    violation("NeedMore left " + std::to_string(buf.size()) + " bytes unconsumed");
                break;
            }
            record(s);
            if (s.kind == StepKind::Error) {
                failed_ = true;
                break;
            }
            if (s.consumed == 0) {  // would loop forever
                violation(std::string(kind_name(s.kind)) + " step consumed nothing");
                failed_ = true;
                break;
            }
            buf = buf.subspan(s.consumed);
        }
        pending_.erase(pending_.begin(), pending_.end() - static_cast<std::ptrdiff_t>(buf.size()));
        return events_.size() - before;
    }
    size_t feed(std::string_view piece) { return feed(as_bytes(piece)); }

    const std::vector<Event>& events() const noexcept { return events_; }
    const std::vector<std::string>& violations() const noexcept { return violations_; }
    size_t leftover() const noexcept { return pending_.size(); }
    bool failed() const noexcept { return failed_; }
    FrameDecoder& decoder() noexcept { return decoder_; }

private:
    void violation(std::string what) { violations_.push_back(std::move(what)); }

    void record(const DecodeStep& s) {
        Event e;
        e.kind = s.kind;
        if (s.kind == StepKind::Error) {
            e.error = s.error.code;
            if (s.error.reason.empty()) violation("error without a reason");
            if (s.error.reason.size() > proto::kMaxControlPayload - 2) violation("error reason does not fit a close frame");
        } else {
            e.opcode = s.opcode;
            e.payload = str(s.payload);
            e.begins = s.message_begins;
            e.ends = s.message_ends;
            e.compressed = s.compressed;
            e.close_code = s.close_code;
            e.close_reason = std::string(s.close_reason);
            // Close: the reason is a view into the payload, after the 2-byte code.
            if (s.kind == StepKind::Control && s.opcode == Opcode::Close && s.payload.size() >= 2 &&
                (s.close_reason.size() != s.payload.size() - 2 ||
                 (!s.close_reason.empty() &&
                  reinterpret_cast<const std::byte*>(s.close_reason.data()) != s.payload.data() + 2)))
                violation("close_reason is not the payload after the code");
        }
        events_.push_back(std::move(e));
    }

    FrameDecoder decoder_;
    Bytes pending_;
    std::vector<Event> events_;
    std::vector<std::string> violations_;
    bool failed_ = false;
};

// Joins data pieces into messages. Pieces of a message left unfinished by an Error are dropped:
// how much of it was handed out before the error depends on where the input was cut.
inline std::vector<Item> normalize(const std::vector<Event>& events, std::vector<std::string>& violations) {
    std::vector<Item> items;
    std::optional<Item> open;
    for (const Event& e : events) {
        switch (e.kind) {
            case StepKind::Data:
                if (e.opcode != Opcode::Text && e.opcode != Opcode::Binary)
                    violations.push_back("data piece with opcode " + opcode_name(e.opcode));
                if (e.begins) {
                    if (open) violations.push_back("message_begins inside an unfinished message");
                    open = Item{.kind = Item::Kind::Message, .opcode = e.opcode, .complete = false, .compressed = e.compressed};
                } else if (!open) {
                    violations.push_back("data piece without message_begins outside a message");
                    open = Item{.kind = Item::Kind::Message, .opcode = e.opcode, .complete = false, .compressed = e.compressed};
                } else if (open->opcode != e.opcode || open->compressed != e.compressed) {
                    violations.push_back("opcode or compressed flag changed inside a message");
                }
                open->payload += e.payload;
                if (e.ends) {
                    open->complete = true;
                    items.push_back(std::move(*open));
                    open.reset();
                }
                break;
            case StepKind::Control:
                if (e.begins || e.ends) violations.push_back("control frame with message flags");
                items.push_back(Item{.kind = Item::Kind::Control, .opcode = e.opcode, .payload = e.payload,
                                     .close_code = e.close_code, .close_reason = e.close_reason});
                break;
            case StepKind::Error:
                open.reset();
                items.push_back(want::error(e.error));
                break;
            case StepKind::NeedMore:
                violations.push_back("NeedMore recorded as an event");
                break;
        }
    }
    if (open) items.push_back(std::move(*open));
    return items;
}

// Every data byte the decoder handed out, in order (STYLE.md's joined_text).
inline std::string joined_text(const std::vector<Event>& events) {
    std::string out;
    for (const Event& e : events)
        if (e.kind == StepKind::Data) out += e.payload;
    return out;
}

struct Decoded {
    std::vector<Event> events;
    std::vector<Item> items;
    std::vector<std::string> violations;
    size_t leftover = 0;
};

// Feeds `wire` as reads of the given sizes (the rest, if any, as one last read).
inline Decoded decode_pieces(std::span<const std::byte> wire, const DecoderOptions& options,
                             const std::vector<size_t>& piece_sizes) {
    SplitFeeder feeder(options);
    size_t at = 0;
    for (const size_t n : piece_sizes) {
        const size_t take = std::min(n, wire.size() - at);
        feeder.feed(wire.subspan(at, take));
        at += take;
    }
    if (at < wire.size() || piece_sizes.empty()) feeder.feed(wire.subspan(at));
    Decoded d{feeder.events(), {}, feeder.violations(), feeder.leftover()};
    d.items = normalize(d.events, d.violations);
    return d;
}

inline Decoded decode_whole(std::span<const std::byte> wire, const DecoderOptions& options = limits()) {
    return decode_pieces(wire, options, {});
}

inline Decoded decode_chopped(std::span<const std::byte> wire, const DecoderOptions& options, size_t chop) {
    return decode_pieces(wire, options, std::vector<size_t>(wire.size() / chop + 1, chop));
}

// Where frames start in a wire image, read with the same independent reading of RFC 6455 §5.2 as
// raw_frame() (stops at the first frame that does not fit).
inline std::vector<size_t> frame_starts(std::span<const std::byte> wire) {
    std::vector<size_t> starts;
    size_t at = 0;
    while (at + 2 <= wire.size()) {
        starts.push_back(at);
        const auto b1 = std::to_integer<unsigned>(wire[at + 1]);
        uint64_t len = b1 & 0x7F;
        size_t header = 2;
        if (len >= 126) {
            const size_t n = len == 126 ? 2 : 8;
            if (at + 2 + n > wire.size()) break;
            len = 0;
            for (size_t i = 0; i < n; ++i) len = (len << 8) | std::to_integer<uint64_t>(wire[at + 2 + i]);
            header += n;
        }
        header += (b1 & 0x80) ? 4 : 0;
        if (len > wire.size() - at - header) break;
        at += header + static_cast<size_t>(len);
    }
    return starts;
}

// Split points to try: all of them for short inputs. For long ones (big frames), every point within
// 20 bytes of a frame start or of the end, and an even sample in between: feeding a 1 MiB frame a
// million times would take minutes and exercise the same streaming path again and again.
inline std::vector<size_t> split_points(std::span<const std::byte> wire) {
    const size_t n = wire.size();
    std::vector<size_t> cuts;
    if (n <= 4096) {
        for (size_t i = 0; i <= n; ++i) cuts.push_back(i);
        return cuts;
    }
    for (const size_t s : frame_starts(wire))
        for (size_t i = s > 20 ? s - 20 : 0; i <= s + 20 && i <= n; ++i) cuts.push_back(i);
    for (size_t i = n - 20; i <= n; ++i) cuts.push_back(i);
    for (size_t i = 0; i < n; i += n / 97 + 1) cuts.push_back(i);
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    return cuts;
}

// Calls `f(how, decoded)` for: the whole input in one read; two reads at each split point; random
// cuttings (fixed seeds, empty reads included); one byte per read for inputs up to 16 KiB.
inline void for_each_feeding(std::span<const std::byte> wire, const DecoderOptions& options,
                             const std::function<void(const std::string&, const Decoded&)>& f) {
    f("in one read", decode_whole(wire, options));
    for (const size_t cut : split_points(wire))
        f("in two reads split at byte " + std::to_string(cut), decode_pieces(wire, options, {cut}));
    constexpr size_t kMaxPiece[] = {1, 2, 3, 5, 8, 16, 31, 64, 130, 300, 1500, 5000};
    for (uint64_t seed = 1; seed <= 24; ++seed) {
        Rng rng(seed);
        size_t max_piece = kMaxPiece[rng.below(std::size(kMaxPiece))];
        if (wire.size() > 16384) max_piece = std::max<size_t>(max_piece, 1024);  // keeps big inputs fast
        std::vector<size_t> pieces;
        for (size_t total = 0; total < wire.size();) {
            pieces.push_back(rng.between(0, max_piece));
            total += pieces.back();
        }
        f("in random reads of 0.." + std::to_string(max_piece) + " bytes (seed " + std::to_string(seed) + ")",
          decode_pieces(wire, options, pieces));
    }
    if (wire.size() <= 16384) f("one byte per read", decode_chopped(wire, options, 1));
}

// The wire decodes to `expected` however it is cut into reads, and the feeder saw no broken promise.
// Reports the whole-input result and, if any, the first other feeding that differs.
inline void expect_decodes(std::span<const std::byte> wire, const DecoderOptions& options,
                           const std::vector<Item>& expected) {
    size_t feedings = 0, differing = 0;
    std::string first_how;
    Decoded first_bad;
    for_each_feeding(wire, options, [&](const std::string& how, const Decoded& got) {
        ++feedings;
        if (feedings == 1) {
            INFO("wire fed in one read");
            CHECK(got.items == expected);
            CHECK(got.violations == std::vector<std::string>{});
            return;
        }
        if ((got.items != expected || !got.violations.empty()) && differing++ == 0) {
            first_how = how;
            first_bad = got;
        }
    });
    INFO(differing << " of " << feedings << " feedings differ; the first: wire fed " << first_how);
    CHECK(differing == 0);
    if (differing != 0) {
        CHECK(first_bad.items == expected);
        CHECK(first_bad.violations == std::vector<std::string>{});
    }
}

// ---------------------------------------------------------------------------------------------
// Reference UTF-8 check, from the definition (RFC 3629 §3-4): a code point is encoded in the
// shortest form for its value, is at most U+10FFFF and is not a surrogate (U+D800..U+DFFF).

struct Utf8Reference {
    std::optional<size_t> first_bad;  // the byte at which the input stops being a prefix of valid UTF-8
    bool truncated = false;           // no bad byte, but the input ends inside a code point
    bool valid() const noexcept { return !first_bad && !truncated; }
};

namespace detail {
// Does [lo, hi] contain a scalar value that needs exactly `len` bytes?
inline bool has_scalar_of_length(size_t len, uint32_t lo, uint32_t hi) noexcept {
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    static constexpr uint32_t kMax[] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    const uint32_t a = std::max(lo, kMin[len]), b = std::min(hi, kMax[len]);
    if (a > b) return false;
    return a < 0xD800 || b > 0xDFFF;  // not entirely inside the surrogates
}
}  // namespace detail

inline Utf8Reference reference_utf8(std::span<const std::byte> s) {
    Utf8Reference r;
    size_t i = 0;
    while (i < s.size()) {
        const auto b = std::to_integer<uint32_t>(s[i]);
        size_t len;
        uint32_t bits;
        if (b < 0x80) {
            ++i;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2, bits = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3, bits = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4, bits = b & 0x07;
        } else {  // a continuation byte, or F8..FF: cannot start a code point
            r.first_bad = i;
            return r;
        }
        for (size_t k = 1;; ++k) {
            // k bytes of the sequence are known: the code point lies in [lo, hi].
            const unsigned missing_bits = static_cast<unsigned>(6 * (len - k));
            const uint32_t lo = bits << missing_bits, hi = lo | ((1u << missing_bits) - 1);
            if (!detail::has_scalar_of_length(len, lo, hi)) {
                r.first_bad = i + k - 1;
                return r;
            }
            if (k == len) break;
            if (i + k == s.size()) {
                r.truncated = true;
                return r;
            }
            const auto c = std::to_integer<uint32_t>(s[i + k]);
            if ((c & 0xC0) != 0x80) {
                r.first_bad = i + k;
                return r;
            }
            bits = (bits << 6) | (c & 0x3F);
        }
        i += len;
    }
    return r;
}

// UTF-8 encoding of a code point by the RFC 3629 §3 bit layout (surrogates encode too: tests need them).
inline std::string utf8_encode(uint32_t cp) {
    std::string out;
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return out;
}

}  // namespace wsrelay::test
