// SPDX-License-Identifier: Apache-2.0
// frame_header_size, encode_frame_header, encode_close_payload and encode_frame (proto/frame.h):
// RFC 6455 §5.2 headers in minimal form, §5.5.1 close payloads, and round trips through the decoder.
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "proto/frame.h"
#include "proto/utf8.h"
#include "test_support.h"

using namespace wsrelay::proto;
using namespace wsrelay::test;

namespace {

MaskKey key_from_wire(std::array<uint8_t, 4> k) {
    MaskKey key;
    std::memcpy(&key, k.data(), 4);
    return key;
}

// encode_frame_header() into a buffer pre-filled with 0xEE; returns the bytes it wrote and checks
// that it wrote nothing past them.
Bytes header_bytes(const FrameHeader& h) {
    Bytes out(kMaxFrameHeaderBytes + 8, std::byte{0xEE});
    const size_t n = encode_frame_header(out, h);
    CHECK(n == frame_header_size(h.payload_len, h.masked));
    for (size_t i = n; i < out.size(); ++i) CHECK(out[i] == std::byte{0xEE});
    out.resize(n);
    return out;
}

std::string close_payload(uint16_t code, std::string_view reason) {
    std::array<std::byte, kMaxControlPayload> out{};
    const size_t n = encode_close_payload(out, code, reason);
    REQUIRE(n <= kMaxControlPayload);
    return str(std::span(out).first(n));
}

}  // namespace

TEST_CASE("frame encoder: frame_header_size()", "[frame][encoder]") {
    // RFC 6455 §5.2: 7-bit length up to 125, 16-bit up to 65535, else 64-bit; +4 for a mask key.
    struct Case {
        uint64_t len;
        size_t unmasked;
    };
    for (const Case c : {Case{0, 2}, Case{125, 2}, Case{126, 4}, Case{65535, 4}, Case{65536, 10}, Case{uint64_t{1} << 32, 10},
                         Case{(uint64_t{1} << 63) - 1, 10}}) {
        INFO("length " << c.len);
        CHECK(frame_header_size(c.len, false) == c.unmasked);
        CHECK(frame_header_size(c.len, true) == c.unmasked + 4);
    }
    STATIC_REQUIRE(frame_header_size(65536, true) == kMaxFrameHeaderBytes);
}

TEST_CASE("frame encoder: encode_frame_header() writes RFC 6455 §5.2 headers", "[frame][encoder]") {
    SECTION("the three length forms, minimal, in network byte order") {
        struct Case {
            uint64_t len;
            Bytes expected;
        };
        const std::vector<Case> cases = {
            {0, hex_bytes({0x81, 0x00})},
            {125, hex_bytes({0x81, 0x7D})},
            {126, hex_bytes({0x81, 0x7E, 0x00, 0x7E})},
            {65535, hex_bytes({0x81, 0x7E, 0xFF, 0xFF})},
            {65536, hex_bytes({0x81, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00})},
            {uint64_t{1} << 32, hex_bytes({0x81, 0x7F, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00})},
            {0x0102030405060708, hex_bytes({0x81, 0x7F, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08})},
        };
        for (const Case& c : cases) {
            INFO("length " << c.len);
            CHECK(printable(header_bytes({.opcode = Opcode::Text, .payload_len = c.len})) == printable(c.expected));
        }
    }
    SECTION("FIN, RSV1 and the opcode in the first byte") {
        CHECK(header_bytes({.opcode = Opcode::Binary, .fin = false})[0] == std::byte{0x02});
        CHECK(header_bytes({.opcode = Opcode::Continuation, .fin = true})[0] == std::byte{0x80});
        CHECK(header_bytes({.opcode = Opcode::Continuation, .fin = false})[0] == std::byte{0x00});
        CHECK(header_bytes({.opcode = Opcode::Text, .fin = true, .rsv1 = true})[0] == std::byte{0xC1});
        CHECK(header_bytes({.opcode = Opcode::Close})[0] == std::byte{0x88});
        CHECK(header_bytes({.opcode = Opcode::Ping})[0] == std::byte{0x89});
        CHECK(header_bytes({.opcode = Opcode::Pong})[0] == std::byte{0x8A});
    }
    SECTION("RFC 6455 §5.3: a masked header has the MASK bit and the key in wire order") {
        const MaskKey key = key_from_wire({0x37, 0xFA, 0x21, 0x3D});
        CHECK(printable(header_bytes({.opcode = Opcode::Text, .payload_len = 5, .masked = true, .mask_key = key})) ==
              printable(hex_bytes({0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D})));
        CHECK(printable(header_bytes({.opcode = Opcode::Binary, .payload_len = 300, .masked = true, .mask_key = key})) ==
              printable(hex_bytes({0x82, 0xFE, 0x01, 0x2C, 0x37, 0xFA, 0x21, 0x3D})));
        CHECK(printable(header_bytes({.opcode = Opcode::Binary, .payload_len = 65536, .masked = true, .mask_key = key})) ==
              printable(hex_bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 0x37, 0xFA, 0x21, 0x3D})));
    }
    SECTION("a header for 2^32 bytes decodes as a frame header of that length (header only)") {
        Bytes h = header_bytes({.opcode = Opcode::Binary, .payload_len = uint64_t{1} << 32});
        FrameDecoder d(client_limits(uint64_t{1} << 33));
        const DecodeStep s = d.next(h);
        CHECK(s.kind == StepKind::NeedMore);
        CHECK(s.consumed == 10);
        CHECK(d.in_message());
    }
}

TEST_CASE("frame encoder: encode_close_payload() (RFC 6455 §5.5.1)", "[frame][encoder]") {
    SECTION("the code in network byte order, then the reason") {
        CHECK(difference(close_payload(1000, ""), std::string("\x03\xE8", 2)) == "");
        CHECK(difference(close_payload(1001, "bye"), std::string("\x03\xE9" "bye", 5)) == "");
        CHECK(difference(close_payload(4999, ""), std::string("\x13\x87", 2)) == "");
    }
    SECTION("a reason of up to 123 bytes is kept whole") {
        const std::string reason(123, 'r');
        CHECK(difference(close_payload(1000, reason), close_body(1000, reason)) == "");
    }
    SECTION("a longer ASCII reason is cut to 123 bytes") {
        CHECK(difference(close_payload(1000, std::string(124, 'r')), close_body(1000, std::string(123, 'r'))) == "");
        CHECK(difference(close_payload(1000, std::string(1000, 'r')), close_body(1000, std::string(123, 'r'))) == "");
    }
    SECTION("a long reason of 3-byte characters is cut at a code point boundary") {
        // "a" + 50 x "€": 123 bytes would end inside the 41st euro sign; the cut backs up to 121.
        std::string reason = "a";
        for (int i = 0; i < 50; ++i) reason += "\xE2\x82\xAC";
        const std::string p = close_payload(1008, reason);
        CHECK(difference(p, close_body(1008, reason.substr(0, 121))) == "");
        CHECK(is_valid_utf8(as_bytes(p.substr(2))));
    }
    SECTION("for every alignment of 2-, 3- and 4-byte characters, the longest valid prefix is kept") {
        for (const std::string_view ch : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9D\x84\x9E"}) {
            for (size_t ascii = 0; ascii < 8; ++ascii) {
                std::string reason(ascii, 'x');
                while (reason.size() < 200) reason += ch;
                const std::string p = close_payload(1000, reason);
                const std::string kept = p.substr(2);
                INFO(printable(ch) << " after " << ascii << " ASCII bytes");
                CHECK(reason.compare(0, kept.size(), kept) == 0);          // a prefix of the reason
                CHECK(is_valid_utf8(as_bytes(kept)));                       // cut at a boundary
                CHECK(kept.size() <= kMaxControlPayload - 2);               // fits
                CHECK(kept.size() > kMaxControlPayload - 2 - ch.size());    // and no shorter than needed
            }
        }
    }
    SECTION("the payload decodes as the same close frame") {
        const std::string p = close_payload(3000, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5");
        expect_decodes(server_frame(Opcode::Close, p), client_limits(),
                       {want::close(3000, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5")});
    }
}

TEST_CASE("frame encoder: encode_frame() round-trips through the decoder", "[frame][encoder]") {
    Rng rng(0xE1C0DE);
    SECTION("unmasked, as a server sends, through a Role::Client decoder") {
        for (const size_t n : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{65535}, size_t{65536}}) {
            INFO("length " << n);
            const std::string text(n, 'T');
            const std::string bin = str(rng.bytes(n));
            const Bytes t = encode_frame({.opcode = Opcode::Text}, as_bytes(text));
            const Bytes b = encode_frame({.opcode = Opcode::Binary}, as_bytes(bin));
            CHECK(t.size() == frame_header_size(n, false) + n);
            expect_decodes(cat({t, b}), client_limits(), {want::text(text), want::binary(bin)});
        }
        const std::string ping = str(rng.bytes(125));
        expect_decodes(cat({encode_frame({.opcode = Opcode::Ping}, as_bytes(ping)),
                            encode_frame({.opcode = Opcode::Pong}, {}),
                            encode_frame({.opcode = Opcode::Text, .fin = false}, as_bytes(std::string("frag1"))),
                            encode_frame({.opcode = Opcode::Continuation}, as_bytes(std::string("frag2"))),
                            encode_frame({.opcode = Opcode::Close}, as_bytes(close_body(1000, "done")))}),
                       client_limits(), {want::ping(ping), want::pong(""), want::text("frag1frag2"), want::close(1000, "done")});
    }
    SECTION("masked, as a client sends, through a Role::Server decoder") {
        for (const auto& k : std::vector<std::array<uint8_t, 4>>{{0x37, 0xFA, 0x21, 0x3D}, {0, 0, 0, 0}, {0xFF, 0x01, 0x80, 0x7F}}) {
            const MaskKey key = key_from_wire(k);
            for (const size_t n : {size_t{0}, size_t{3}, size_t{125}, size_t{126}, size_t{65536}}) {
                INFO("length " << n);
                const std::string bin = str(rng.bytes(n));
                const Bytes wire = encode_frame({.opcode = Opcode::Binary, .masked = true, .mask_key = key}, as_bytes(bin));
                // On the wire the payload is masked (RFC 6455 §5.3): compare with the reference masking.
                Bytes masked = bytes(bin);
                apply_mask_reference(masked, key, 0);
                CHECK(difference(str(std::span(wire).subspan(frame_header_size(n, true))), str(masked)) == "");
                expect_decodes(wire, limits(), {want::binary(bin)});
            }
            expect_decodes(encode_frame({.opcode = Opcode::Ping, .masked = true, .mask_key = key}, as_bytes(std::string("hi"))),
                           limits(), {want::ping("hi")});
        }
    }
    SECTION("RSV1 survives the round trip when the decoder allows it") {
        DecoderOptions o = client_limits();
        o.allow_rsv1 = true;
        expect_decodes(encode_frame({.opcode = Opcode::Binary, .rsv1 = true}, as_bytes(std::string("zz"))), o,
                       {want::compressed(Opcode::Binary, "zz")});
    }
    SECTION("the payload length comes from the payload, not from header.payload_len") {
        const Bytes wire = encode_frame({.opcode = Opcode::Text, .payload_len = 999}, as_bytes(std::string("abc")));
        CHECK(wire.size() == 2 + 3);
        expect_decodes(wire, client_limits(), {want::text("abc")});
    }
}
