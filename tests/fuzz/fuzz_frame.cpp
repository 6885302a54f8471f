// SPDX-License-Identifier: Apache-2.0
// Fuzz target for FrameDecoder: one direction of a connection, cut into reads.
//
// Input: [control byte][wire bytes...]. Control bits: 0 role (0 Server: frames must be masked,
// 1 Client), 1 allow_rsv1, 2 validate_utf8 off, 3 max_message_bytes = 200 instead of 1 MiB,
// 4-7 how the bytes are cut into reads (an index into kSplits).
//
// The bytes are decoded twice: in one buffer, and read by read the way frame.h's header comment
// prescribes (keep the unconsumed tail after NeedMore, append the next read to it in a fresh
// buffer). next() unmasks in place, so each run works on its own copy. Both runs must report the
// same messages (payload joined across pieces and fragments), control frames, close codes and final
// error. Every complete message and control frame is then encoded again (encode_frame,
// encode_close_payload) and must decode to the same thing. Any violation is __builtin_trap(): a
// crash libFuzzer records as a reproducer.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_split.h"
#include "proto/frame.h"

using namespace wsrelay::proto;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

// The 16 read patterns the control byte's high nibble picks, as split_points() selectors: a cut
// at 0, 1/6, 1/2 and 5/6 of the input; reads of 1, 2, 3, 5, 7, 13 and 16 bytes; five random ones.
constexpr uint8_t kSplits[16] = {0, 5, 15, 26, 32, 33, 34, 36, 38, 44, 47, 48, 51, 55, 59, 63};

// What a run reported, with streamed pieces joined: one entry per message or control frame, in
// the order they began, and the error that ended the run, if any.
struct Item {
    enum Type : uint8_t { Message, Control } type = Message;
    Opcode opcode = Opcode::Continuation;
    bool compressed = false;
    bool complete = false;  // Message: its FIN frame ended
    std::vector<std::byte> bytes;
    uint16_t close_code = 0;
    std::string close_reason;
    bool operator==(const Item&) const = default;
};

struct Trace {
    std::vector<Item> items;
    size_t current = SIZE_MAX;  // index of the message in progress (control frames may follow it)
    bool failed = false;
    CloseCode error = CloseCode::Normal;
    std::vector<std::byte> leftover;  // bytes not consumed when the input ran out
};

bool inside(std::span<const std::byte> part, std::span<const std::byte> buf) {
    return part.empty() || (part.data() >= buf.data() && part.data() + part.size() <= buf.data() + buf.size());
}

// Decodes as much of `buf` as possible into `t`; returns the unconsumed tail (empty after Error).
std::span<std::byte> decode(FrameDecoder& dec, std::span<std::byte> buf, Trace& t) {
    const DecoderOptions& opt = dec.options();
    for (;;) {
        const DecodeStep s = dec.next(buf);
        check(s.consumed <= buf.size());
        check(inside(s.payload, buf.first(s.consumed)));
        switch (s.kind) {
            case StepKind::NeedMore:
                return buf.subspan(s.consumed);
            case StepKind::Error:
                check(dec.failed() && s.consumed == 0);
                t.failed = true;
                t.error = s.error.code;
                check(!s.error.reason.empty());
                check(s.error.code == CloseCode::ProtocolError || s.error.code == CloseCode::InvalidPayload ||
                      s.error.code == CloseCode::MessageTooBig);
                // The decoder stays failed.
                check(dec.next(buf).kind == StepKind::Error);
                return {};
            case StepKind::Data: {
                check(s.consumed > 0);  // otherwise the caller's loop would never end
                check(s.opcode == Opcode::Text || s.opcode == Opcode::Binary);
                check(s.compressed ? opt.allow_rsv1 : true);
                if (s.message_begins) {
                    check(t.current == SIZE_MAX);
                    Item m;
                    m.opcode = s.opcode;
                    m.compressed = s.compressed;
                    t.items.push_back(std::move(m));
                    t.current = t.items.size() - 1;
                }
                check(t.current != SIZE_MAX);
                Item& m = t.items[t.current];
                check(m.opcode == s.opcode && m.compressed == s.compressed);
                m.bytes.insert(m.bytes.end(), s.payload.begin(), s.payload.end());
                check(m.bytes.size() <= opt.max_message_bytes);
                if (s.message_ends) {
                    m.complete = true;
                    t.current = SIZE_MAX;
                    if (m.opcode == Opcode::Text && opt.validate_utf8 && !m.compressed) check(is_valid_utf8(m.bytes));
                }
                check(dec.in_message() == (t.current != SIZE_MAX));
                break;
            }
            case StepKind::Control: {
                check(s.opcode == Opcode::Close || s.opcode == Opcode::Ping || s.opcode == Opcode::Pong);
                check(s.payload.size() <= kMaxControlPayload);
                check(s.consumed >= 2 + s.payload.size());
                Item c;
                c.type = Item::Control;
                c.opcode = s.opcode;
                c.bytes.assign(s.payload.begin(), s.payload.end());
                if (s.opcode == Opcode::Close) {
                    if (s.payload.empty()) {
                        check(s.close_code == to_wire(CloseCode::NoStatus) && s.close_reason.empty());
                    } else {
                        check(s.payload.size() >= 2);
                        const unsigned code = (std::to_integer<unsigned>(s.payload[0]) << 8) | std::to_integer<unsigned>(s.payload[1]);
                        check(s.close_code == code && is_valid_wire_close_code(s.close_code));
                        check(s.close_reason.size() == s.payload.size() - 2);
                        check(is_valid_utf8(std::as_bytes(std::span(s.close_reason))));
                    }
                    c.close_code = s.close_code;
                    c.close_reason.assign(s.close_reason);
                }
                t.items.push_back(std::move(c));
                break;
            }
        }
        buf = buf.subspan(s.consumed);
    }
}

bool is_prefix(const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// Split and whole runs must agree exactly, with one exception. Text is validated piece by piece, so
// when a frame carries invalid UTF-8 (1007), a split run has already delivered the valid pieces of
// that frame before the bad one, while the whole run refuses the frame at once. Then the message in
// progress may be longer in the split run (or exist only there, when its first frame was the bad
// one); it must still start with what the whole run delivered.
bool agree(const Trace& split, const Trace& whole) {
    if (split.failed != whole.failed || split.error != whole.error) return false;
    if (!split.failed && split.leftover != whole.leftover) return false;
    if (split.items == whole.items) return true;
    if (!split.failed || split.error != CloseCode::InvalidPayload || split.current == SIZE_MAX) return false;

    std::vector<Item> a = split.items;
    std::vector<Item> b = whole.items;
    if (whole.current == SIZE_MAX) {
        // The whole run never saw the message: it must be the split run's last item.
        if (split.current != a.size() - 1) return false;
        a.pop_back();
        return a == b;
    }
    if (split.current != whole.current || a.size() != b.size()) return false;
    if (!is_prefix(b[whole.current].bytes, a[split.current].bytes)) return false;
    b[whole.current].bytes = a[split.current].bytes;
    return a == b;
}

// The encoder side: a complete message or control frame, encoded again as the peer would send it
// (masked towards a server), decodes to the same item; a close payload re-encodes byte for byte.
void round_trip(const Item& item, const DecoderOptions& opt, MaskKey key) {
    if (item.type == Item::Message && !item.complete) return;
    FrameHeader h;
    h.opcode = item.opcode;
    h.rsv1 = item.compressed;
    h.masked = opt.role == Role::Server;
    h.mask_key = key;
    std::vector<std::byte> wire = encode_frame(h, item.bytes);
    check(wire.size() == frame_header_size(item.bytes.size(), h.masked) + item.bytes.size());
    Trace t;
    FrameDecoder dec(opt);
    check(decode(dec, wire, t).empty());
    check(!t.failed && t.items.size() == 1 && t.items.front() == item);

    // The 64-bit length form, which inputs this small never reach through encode_frame(): the
    // decoder takes the header and waits for the payload.
    if (item.type == Item::Message) {
        FrameHeader big = h;
        big.payload_len = 0x10000 + item.bytes.size();
        std::array<std::byte, kMaxFrameHeaderBytes> header;
        const size_t n = encode_frame_header(header, big);
        check(n == frame_header_size(big.payload_len, big.masked) && n == (h.masked ? 14u : 10u));
        DecoderOptions big_opt = opt;
        big_opt.max_message_bytes = big.payload_len;
        FrameDecoder big_dec(big_opt);
        const DecodeStep s = big_dec.next(std::span(header).first(n));
        check(s.kind == StepKind::NeedMore && s.consumed == n && big_dec.in_message());
    }
    if (item.type == Item::Control && item.opcode == Opcode::Close && !item.bytes.empty()) {
        std::array<std::byte, kMaxControlPayload> out;
        // No reason is passed the way a caller would: an empty (null) view.
        const std::string_view reason = item.close_reason.empty() ? std::string_view{} : std::string_view(item.close_reason);
        const size_t n = encode_close_payload(out, item.close_code, reason);
        check(n == item.bytes.size() && std::equal(item.bytes.begin(), item.bytes.end(), out.begin()));
    }
    // A reason too long for a close frame is cut at a code point boundary: still valid UTF-8.
    if (item.type == Item::Message && item.opcode == Opcode::Text && is_valid_utf8(item.bytes)) {
        std::array<std::byte, kMaxControlPayload> out;
        const std::string_view reason(reinterpret_cast<const char*>(item.bytes.data()), item.bytes.size());
        const size_t n = encode_close_payload(out, 1000, reason);
        const size_t kept = n - 2;
        check(n <= kMaxControlPayload && kept <= reason.size());
        check(reason.size() <= kMaxControlPayload - 2 ? kept == reason.size() : kept + 3 >= kMaxControlPayload - 2);
        check(std::equal(reason.begin(), reason.begin() + static_cast<ptrdiff_t>(kept),
                         reinterpret_cast<const char*>(out.data() + 2)));
        check(is_valid_utf8(std::span(out).subspan(2, kept)));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t control = data[0];
    DecoderOptions opt;
    opt.role = (control & 1) ? Role::Client : Role::Server;
    opt.allow_rsv1 = (control & 2) != 0;
    opt.validate_utf8 = (control & 4) == 0;
    if (control & 8) opt.max_message_bytes = 200;  // between the 7-bit and 64-bit length classes
    const auto* wire = reinterpret_cast<const std::byte*>(data + 1);
    const size_t wire_size = size - 1;

    // apply_mask must equal its byte-by-byte definition for any key, phase, length and alignment.
    if (wire_size >= 4) {
        MaskKey key;
        std::memcpy(&key, wire, 4);
        std::vector<std::byte> fast(wire, wire + wire_size), slow = fast;
        const size_t skew = control % 8;  // start off the vector's alignment
        const size_t phase = control >> 6;
        apply_mask(std::span(fast).subspan(std::min(skew, wire_size)), key, phase);
        apply_mask_reference(std::span(slow).subspan(std::min(skew, wire_size)), key, phase);
        check(fast == slow);
    }

    // The reference run: the whole input in one buffer.
    Trace whole;
    {
        std::vector<std::byte> buf(wire, wire + wire_size);
        FrameDecoder dec(opt);
        const auto rest = decode(dec, buf, whole);
        whole.leftover.assign(rest.begin(), rest.end());
    }

    // Read by read: leftover + next read in a fresh buffer, as frame.h describes.
    Trace split;
    {
        FrameDecoder dec(opt);
        std::vector<std::byte> leftover;
        size_t begin = 0;
        for (const size_t end : wsrelay::fuzz::split_points(kSplits[control >> 4], wire_size)) {
            std::vector<std::byte> buf = leftover;
            buf.insert(buf.end(), wire + begin, wire + end);
            begin = end;
            const auto rest = decode(dec, buf, split);
            if (split.failed) break;
            // frame.h: what NeedMore leaves is at most a header and a control frame's payload.
            check(rest.size() <= kMaxFrameHeaderBytes + kMaxControlPayload);
            leftover.assign(rest.begin(), rest.end());
        }
        split.leftover = leftover;
    }

    check(agree(split, whole));
    for (size_t i = 0; i < whole.items.size(); ++i) round_trip(whole.items[i], opt, 0x9E3779B9u * static_cast<MaskKey>(i + control));
    return 0;
}
