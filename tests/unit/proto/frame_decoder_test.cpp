// SPDX-License-Identifier: Apache-2.0
// FrameDecoder (proto/frame.h): RFC 6455 §5 framing as a server (Role::Server unless stated)
// receives it. Every rule is checked through expect_decodes(), which feeds the same wire image
// whole, at every split point, in random reads and byte by byte, and wants the same result.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "proto/frame.h"
#include "test_support.h"

using namespace wsrelay::proto;
using namespace wsrelay::test;

namespace {

constexpr unsigned kCont = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA;

// A masked frame with raw opcode and RSV bits (RSV1 = 4, RSV2 = 2, RSV3 = 1).
Bytes frame(unsigned op, std::string_view payload, bool fin = true, unsigned rsv = 0) {
    return raw_frame({.opcode = op, .fin = fin, .rsv = rsv}, payload);
}

// Only the header of a masked frame announcing `len` payload bytes.
Bytes header_only(unsigned op, uint64_t len, bool fin = true, LenForm form = LenForm::Minimal) {
    return raw_frame({.opcode = op, .fin = fin, .len_form = form, .length = len}, "");
}

Event data_event(Opcode op, std::string payload, bool begins, bool ends) {
    return {.kind = StepKind::Data, .opcode = op, .payload = std::move(payload), .begins = begins, .ends = ends};
}

Event control_event(Opcode op, std::string payload) {
    return {.kind = StepKind::Control, .opcode = op, .payload = std::move(payload)};
}

const std::vector<Item> kProtocolError = {want::error(CloseCode::ProtocolError)};
const std::vector<Item> kTooBig = {want::error(CloseCode::MessageTooBig)};
const std::vector<Item> kInvalidPayload = {want::error(CloseCode::InvalidPayload)};

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
}

}  // namespace

TEST_CASE("frame decoder: RFC 6455 §5.2 reserved bits", "[frame]") {
    SECTION("RSV1, RSV2 and RSV3 without a negotiated extension -> 1002") {
        expect_decodes(frame(kText, "Hello"), limits(), {want::text("Hello")});  // the same frames without them are fine
        for (unsigned rsv = 1; rsv <= 7; ++rsv) {
            INFO("rsv bits " << rsv);
            expect_decodes(frame(kText, "Hello", true, rsv), limits(), kProtocolError);
            expect_decodes(frame(kBinary, std::string("\x00\xFF", 2), true, rsv), limits(), kProtocolError);
            expect_decodes(frame(kPing, "", true, rsv), limits(), kProtocolError);
            expect_decodes(frame(kPong, "x", true, rsv), limits(), kProtocolError);
            expect_decodes(frame(kClose, close_body(1000), true, rsv), limits(), kProtocolError);
            expect_decodes(cat({frame(kText, "a", false), frame(kCont, "b", true, rsv)}), limits(), kProtocolError);
        }
    }
    SECTION("RFC 7692 §6: RSV1 on the first frame of a data message is allowed with allow_rsv1") {
        DecoderOptions o = limits();
        o.allow_rsv1 = true;
        // Compressed text is not UTF-8 until inflated, so the decoder does not validate it.
        const std::string deflated("\xF2\x48\xCD\xC9\xC9\x07\x00", 7);
        expect_decodes(frame(kText, deflated, true, 4), o, {want::compressed(Opcode::Text, deflated)});
        expect_decodes(frame(kBinary, deflated, true, 4), o, {want::compressed(Opcode::Binary, deflated)});
        // The flag covers every piece of the message and is not carried into the next one.
        expect_decodes(cat({frame(kText, "ab", false, 4), frame(kPing, "p"), frame(kCont, "cd"), frame(kText, "plain")}), o,
                       {want::ping("p"), want::compressed(Opcode::Text, "abcd"), want::text("plain")});
    }
    SECTION("RSV1 on a continuation frame -> 1002, even with allow_rsv1") {
        DecoderOptions o = limits();
        o.allow_rsv1 = true;
        expect_decodes(cat({frame(kText, "ab", false, 4), frame(kCont, "cd", true, 4)}), o, kProtocolError);
        expect_decodes(cat({frame(kText, "ab", false), frame(kCont, "cd", true, 4)}), o, kProtocolError);
    }
    SECTION("RSV1 on a control frame -> 1002, even with allow_rsv1") {
        DecoderOptions o = limits();
        o.allow_rsv1 = true;
        expect_decodes(frame(kPing, "p", true, 4), o, kProtocolError);
        expect_decodes(frame(kPong, "p", true, 4), o, kProtocolError);
        expect_decodes(frame(kClose, close_body(1000), true, 4), o, kProtocolError);
    }
    SECTION("RSV2 and RSV3 stay reserved with allow_rsv1") {
        DecoderOptions o = limits();
        o.allow_rsv1 = true;
        for (const unsigned rsv : {1u, 2u, 3u, 5u, 6u, 7u}) {
            INFO("rsv bits " << rsv);
            expect_decodes(frame(kText, "Hello", true, rsv), o, kProtocolError);
        }
    }
}

TEST_CASE("frame decoder: RFC 6455 §5.2 reserved opcodes -> 1002", "[frame]") {
    SECTION("non-control opcodes 0x3 to 0x7") {
        for (unsigned op = 0x3; op <= 0x7; ++op) {
            INFO("opcode " << op);
            expect_decodes(frame(op, ""), limits(), kProtocolError);
            expect_decodes(frame(op, "reserved opcode payload"), limits(), kProtocolError);
        }
    }
    SECTION("control opcodes 0xB to 0xF") {
        for (unsigned op = 0xB; op <= 0xF; ++op) {
            INFO("opcode " << op);
            expect_decodes(frame(op, ""), limits(), kProtocolError);
            expect_decodes(frame(op, "reserved opcode payload"), limits(), kProtocolError);
        }
    }
    SECTION("after a message, and inside a fragmented one") {
        for (const unsigned op : {0x3u, 0x7u, 0xBu, 0xFu}) {
            INFO("opcode " << op);
            expect_decodes(cat({frame(kText, "Hello, world!"), frame(op, "x"), frame(kPing, "")}), limits(),
                           {want::text("Hello, world!"), want::error(CloseCode::ProtocolError)});
            expect_decodes(cat({frame(kText, "Hello", false), frame(op, "x"), frame(kCont, "!")}), limits(), kProtocolError);
        }
    }
}

TEST_CASE("frame decoder: RFC 6455 §5.5 control frames", "[frame]") {
    SECTION("ping, pong and close carry 0 to 125 bytes, delivered whole") {
        for (const size_t n : {0u, 1u, 125u}) {
            const std::string payload(n, '\xFE');
            expect_decodes(frame(kPing, payload), limits(), {want::ping(payload)});
            expect_decodes(frame(kPong, payload), limits(), {want::pong(payload)});
        }
        expect_decodes(frame(kClose, close_body(1000, std::string(123, '*'))), limits(),
                       {want::close(1000, std::string(123, '*'))});
    }
    SECTION("a control frame longer than 125 bytes -> 1002, refused from its header") {
        for (const unsigned op : {kPing, kPong, kClose}) {
            INFO("opcode " << op);
            expect_decodes(frame(op, std::string(126, '\xFE')), limits(), kProtocolError);
            expect_decodes(header_only(op, 126), limits(), kProtocolError);
            expect_decodes(header_only(op, 65536), limits(), kProtocolError);
        }
    }
    SECTION("a fragmented control frame -> 1002") {
        for (const unsigned op : {kPing, kPong, kClose}) {
            INFO("opcode " << op);
            expect_decodes(cat({frame(op, "fragment1", false), frame(kCont, "fragment2")}), limits(), kProtocolError);
            expect_decodes(header_only(op, 5, false), limits(), kProtocolError);
        }
    }
    SECTION("RFC 6455 §5.4: control frames between fragments are delivered between the pieces") {
        const Bytes wire = cat({frame(kText, "frag1", false), frame(kPing, "p"), frame(kCont, "frag2", false),
                                frame(kPong, "q"), frame(kCont, "frag3")});
        const Decoded whole = decode_whole(wire);
        CHECK(whole.events == std::vector<Event>{
                                  data_event(Opcode::Text, "frag1", true, false),
                                  control_event(Opcode::Ping, "p"),
                                  data_event(Opcode::Text, "frag2", false, false),
                                  control_event(Opcode::Pong, "q"),
                                  data_event(Opcode::Text, "frag3", false, true),
                              });
        expect_decodes(wire, limits(), {want::ping("p"), want::pong("q"), want::text("frag1frag2frag3")});
    }
    SECTION("a control frame is only taken whole: a partial one is left for the next read") {
        Bytes wire = frame(kPing, "hello");
        for (size_t n = 0; n < wire.size(); ++n) {
            FrameDecoder d(limits());
            const DecodeStep s = d.next(std::span(wire).first(n));
            INFO(n << " of " << wire.size() << " bytes");
            CHECK(s.kind == StepKind::NeedMore);
            CHECK(s.consumed == 0);
        }
        FrameDecoder d(limits());
        const DecodeStep s = d.next(wire);
        CHECK(s.kind == StepKind::Control);
        CHECK(s.consumed == wire.size());
    }
}

TEST_CASE("frame decoder: RFC 6455 §5.1 masking direction", "[frame]") {
    SECTION("a server refuses an unmasked frame -> 1002") {
        for (const Opcode op : {Opcode::Text, Opcode::Binary, Opcode::Ping, Opcode::Pong})
            expect_decodes(server_frame(op, "x"), limits(), kProtocolError);
        expect_decodes(server_frame(Opcode::Close, close_body(1000)), limits(), kProtocolError);
        expect_decodes(cat({masked_frame(Opcode::Text, "a", false), server_frame(Opcode::Continuation, "b")}), limits(),
                       kProtocolError);
    }
    SECTION("a client refuses a masked frame -> 1002") {
        for (const Opcode op : {Opcode::Text, Opcode::Binary, Opcode::Ping, Opcode::Pong})
            expect_decodes(masked_frame(op, "x"), client_limits(), kProtocolError);
        expect_decodes(masked_frame(Opcode::Close, close_body(1000)), client_limits(), kProtocolError);
    }
    SECTION("a client decodes unmasked frames") {
        expect_decodes(cat({server_frame(Opcode::Text, "h\xC3\xA9", false), server_frame(Opcode::Ping, "p"),
                            server_frame(Opcode::Continuation, "llo"), server_frame(Opcode::Binary, std::string(300, '\0')),
                            server_frame(Opcode::Close, close_body(1001, "going"))}),
                       client_limits(),
                       {want::ping("p"), want::text("h\xC3\xA9llo"), want::binary(std::string(300, '\0')),
                        want::close(1001, "going")});
    }
    SECTION("a server unmasks with any key, at any payload offset") {
        const std::string payload = pattern(70);
        for (const auto& key : std::vector<std::array<uint8_t, 4>>{{0, 0, 0, 0}, {0xFF, 0xFF, 0xFF, 0xFF}, {1, 2, 3, 4}}) {
            INFO("key " << printable(hex_bytes({key[0], key[1], key[2], key[3]})));
            expect_decodes(raw_frame({.opcode = kText, .key = key}, payload), limits(), {want::text(payload)});
            expect_decodes(raw_frame({.opcode = kPing, .key = key}, "ping"), limits(), {want::ping("ping")});
        }
    }
}

TEST_CASE("frame decoder: RFC 6455 §5.2 payload length encoding", "[frame]") {
    SECTION("a 64-bit length with the most significant bit set -> 1002") {
        for (const uint64_t len : {uint64_t{1} << 63, (uint64_t{1} << 63) | 5, std::numeric_limits<uint64_t>::max()}) {
            INFO("length " << len);
            expect_decodes(header_only(kBinary, len, true, LenForm::Len64), limits(), kProtocolError);
            expect_decodes(header_only(kBinary, len, true, LenForm::Len64), limits(std::numeric_limits<uint64_t>::max()),
                           kProtocolError);
        }
    }
    SECTION("a 16-bit length below 126 is not minimal -> 1002") {
        for (const uint64_t len : {0u, 1u, 125u}) {
            INFO("length " << len);
            expect_decodes(raw_frame({.opcode = kBinary, .len_form = LenForm::Len16}, std::string(len, 'x')), limits(),
                           kProtocolError);
        }
    }
    SECTION("a 64-bit length below 65536 is not minimal -> 1002") {
        for (const uint64_t len : {0u, 125u, 126u, 65535u}) {
            INFO("length " << len);
            expect_decodes(raw_frame({.opcode = kBinary, .len_form = LenForm::Len64}, std::string(len, 'x')), limits(),
                           kProtocolError);
        }
    }
    SECTION("7-bit (0, 125), 16-bit (126, 65535) and 64-bit (65536, 1 MiB) lengths") {
        Rng rng(0x1E46);
        for (const size_t n : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{127}, size_t{65535}, size_t{65536},
                               size_t{1} << 20}) {
            INFO("length " << n);
            const std::string payload = str(rng.bytes(n));
            const Bytes wire = frame(kBinary, payload);
            CHECK(wire.size() == n + (n <= 125 ? 2 : n <= 65535 ? 4 : 10) + 4);  // the builder used the minimal form
            expect_decodes(wire, limits(), {want::binary(payload)});
        }
    }
}

TEST_CASE("frame decoder: RFC 6455 §5.4 fragmentation", "[frame]") {
    SECTION("a message in several fragments is one message") {
        expect_decodes(cat({frame(kText, "fragment1", false), frame(kCont, "fragment2", false), frame(kCont, "fragment3")}),
                       limits(), {want::text("fragment1fragment2fragment3")});
        expect_decodes(cat({frame(kBinary, "\x01\x02", false), frame(kCont, "\x03")}), limits(),
                       {want::binary("\x01\x02\x03")});
    }
    SECTION("a continuation frame without a started message -> 1002") {
        expect_decodes(frame(kCont, "non-continuation payload"), limits(), kProtocolError);
        expect_decodes(frame(kCont, "non-continuation payload", false), limits(), kProtocolError);
        expect_decodes(cat({frame(kText, "done"), frame(kCont, "more")}), limits(),
                       {want::text("done"), want::error(CloseCode::ProtocolError)});
        expect_decodes(cat({frame(kText, "a", false), frame(kCont, "b"), frame(kCont, "c")}), limits(),
                       {want::text("ab"), want::error(CloseCode::ProtocolError)});
    }
    SECTION("a new Text or Binary frame inside a fragmented message -> 1002") {
        expect_decodes(cat({frame(kText, "fragment1", false), frame(kText, "fragment2")}), limits(), kProtocolError);
        expect_decodes(cat({frame(kText, "fragment1", false), frame(kBinary, "fragment2")}), limits(), kProtocolError);
        expect_decodes(cat({frame(kBinary, "fragment1", false), frame(kText, "fragment2", false)}), limits(), kProtocolError);
    }
    SECTION("zero-length fragments") {
        expect_decodes(cat({frame(kText, "", false), frame(kCont, "", false), frame(kCont, "")}), limits(), {want::text("")});
        expect_decodes(cat({frame(kText, "", false), frame(kCont, "middle", false), frame(kCont, "")}), limits(),
                       {want::text("middle")});
        expect_decodes(cat({frame(kBinary, "", false), frame(kCont, "")}), limits(), {want::binary("")});
    }
    SECTION("the message after a fragmented one starts fresh") {
        expect_decodes(cat({frame(kText, "a", false), frame(kCont, "b"), frame(kBinary, "c"), frame(kText, "d", false),
                            frame(kCont, "e")}),
                       limits(), {want::text("ab"), want::binary("c"), want::text("de")});
    }
    SECTION("in_message() is true from the first fragment's header until the FIN frame ends") {
        Bytes wire = cat({frame(kText, "ab", false), frame(kPing, ""), frame(kCont, "cd")});
        FrameDecoder d(limits());
        std::span<std::byte> buf(wire);
        std::vector<bool> seen;
        for (;;) {
            const DecodeStep s = d.next(buf);
            buf = buf.subspan(s.consumed);
            if (s.kind == StepKind::NeedMore) break;
            seen.push_back(d.in_message());
        }
        CHECK(seen == std::vector<bool>{true, true, false});  // after "ab", after the ping, after "cd"
        CHECK(buf.empty());
    }
}

TEST_CASE("frame decoder: max_message_bytes -> 1009 (RFC 6455 §7.4.1, §10.4)", "[frame]") {
    SECTION("a frame announcing N+1 bytes is refused from its header, before any payload") {
        struct Case {
            uint64_t max;
            uint64_t len;
        };
        for (const Case c : {Case{0, 1}, Case{10, 11}, Case{1000, 1001}, Case{70000, 70001}, Case{70000, uint64_t{1} << 40}}) {
            INFO("max " << c.max << " length " << c.len);
            expect_decodes(header_only(kBinary, c.len), limits(c.max), kTooBig);
            expect_decodes(header_only(kText, c.len, false), limits(c.max), kTooBig);
        }
    }
    SECTION("exactly N bytes is accepted") {
        expect_decodes(frame(kText, ""), limits(0), {want::text("")});
        expect_decodes(frame(kText, pattern(10)), limits(10), {want::text(pattern(10))});
        expect_decodes(frame(kBinary, pattern(1000)), limits(1000), {want::binary(pattern(1000))});
        expect_decodes(frame(kBinary, pattern(70000)), limits(70000), {want::binary(pattern(70000))});
    }
    SECTION("fragments whose sum passes N are refused at the header of the fragment that passes it") {
        SplitFeeder feeder(limits(12));
        feeder.feed(cat({frame(kText, "hello", false), frame(kCont, "world", false)}));
        CHECK_FALSE(feeder.failed());
        CHECK(joined_text(feeder.events()) == "helloworld");
        feeder.feed(header_only(kCont, 3));  // 13 > 12: no payload byte needed to refuse it
        REQUIRE_FALSE(feeder.events().empty());
        CHECK(feeder.events().back() == Event{.kind = StepKind::Error, .error = CloseCode::MessageTooBig});
        expect_decodes(cat({frame(kText, "hello", false), frame(kCont, "world", false), header_only(kCont, 3)}), limits(12),
                       kTooBig);
    }
    SECTION("fragments that add up to exactly N are accepted") {
        expect_decodes(cat({frame(kText, "hello", false), frame(kCont, "world", false), frame(kCont, "!!")}), limits(12),
                       {want::text("helloworld!!")});
        expect_decodes(cat({frame(kText, "hello", false), frame(kCont, "world", false), frame(kCont, "!!", false),
                            frame(kCont, "")}),
                       limits(12), {want::text("helloworld!!")});
    }
    SECTION("control frames between fragments do not count towards the message") {
        expect_decodes(cat({frame(kText, "12345", false), frame(kPing, std::string(100, 'p')), frame(kCont, "67890")}),
                       limits(10), {want::ping(std::string(100, 'p')), want::text("1234567890")});
        expect_decodes(frame(kPing, std::string(100, 'p')), limits(10), {want::ping(std::string(100, 'p'))});
    }
    SECTION("the count starts over with each message") {
        expect_decodes(cat({frame(kText, "abcde"), frame(kBinary, "fgh", false), frame(kCont, "ij"), frame(kText, "klmno")}),
                       limits(5), {want::text("abcde"), want::binary("fghij"), want::text("klmno")});
    }
    SECTION("set_options() between messages applies from the next frame header") {
        SplitFeeder feeder(limits(100));
        feeder.feed(frame(kText, pattern(50)));
        CHECK_FALSE(feeder.failed());
        feeder.decoder().set_options(limits(10));
        CHECK(feeder.decoder().options().max_message_bytes == 10);
        feeder.feed(frame(kText, pattern(50)));
        REQUIRE(feeder.events().size() == 2);
        CHECK(feeder.events().back().error == CloseCode::MessageTooBig);
    }
}

TEST_CASE("frame decoder: RFC 6455 §8.1 text must be UTF-8 -> 1007", "[frame]") {
    const std::string kosme = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5";
    SECTION("invalid UTF-8 is refused in the fragment where it appears; later fragments are not needed") {
        SplitFeeder feeder;
        feeder.feed(frame(kText, kosme, false));
        CHECK_FALSE(feeder.failed());
        feeder.feed(frame(kCont, "\xED\xA0\x80", false));
        CHECK(feeder.failed());
        REQUIRE_FALSE(feeder.events().empty());
        CHECK(feeder.events().back().error == CloseCode::InvalidPayload);
        expect_decodes(cat({frame(kText, kosme, false), frame(kCont, "\xED\xA0\x80", false)}), limits(), kInvalidPayload);
    }
    SECTION("inside a frame, as soon as the bad byte arrives") {
        const Bytes wire = frame(kText, "hello\xC0world");
        SplitFeeder feeder;
        feeder.feed(std::span(wire).first(6 + 5));  // header and "hello"
        CHECK_FALSE(feeder.failed());
        CHECK(joined_text(feeder.events()) == "hello");
        feeder.feed(std::span(wire).subspan(11, 1));  // \xC0
        CHECK(feeder.failed());
        expect_decodes(wire, limits(), kInvalidPayload);
    }
    SECTION("a code point split across fragments is accepted, wherever the split is") {
        const std::string s = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9D\x84\x9E!";
        for (size_t cut = 0; cut <= s.size(); ++cut) {
            INFO("fragments split at byte " << cut);
            expect_decodes(cat({frame(kText, s.substr(0, cut), false), frame(kCont, s.substr(cut))}), limits(),
                           {want::text(s)});
        }
        expect_decodes(cat({frame(kText, "\xF0\x9D", false), frame(kPing, "p"), frame(kCont, "\x84", false),
                            frame(kCont, "\x9E")}),
                       limits(), {want::ping("p"), want::text("\xF0\x9D\x84\x9E")});
    }
    SECTION("a text message that ends inside a code point -> 1007") {
        expect_decodes(frame(kText, "abc\xE2\x82"), limits(), kInvalidPayload);
        expect_decodes(cat({frame(kText, "abc", false), frame(kCont, "\xE2\x82")}), limits(), kInvalidPayload);
        expect_decodes(cat({frame(kText, "\xE2\x82", false), frame(kCont, "")}), limits(), kInvalidPayload);
        // Not yet an error while the message may still be finished.
        expect_decodes(frame(kText, "abc\xE2\x82", false), limits(), {want::unfinished(Opcode::Text, "abc\xE2\x82")});
    }
    SECTION("binary messages are not validated") {
        const std::string junk("\xFF\xC0\xED\xA0\x80\xE2", 6);
        expect_decodes(frame(kBinary, junk), limits(), {want::binary(junk)});
        expect_decodes(cat({frame(kBinary, "\xE2", false), frame(kCont, "\x82")}), limits(), {want::binary("\xE2\x82")});
    }
    SECTION("validate_utf8 = false accepts any bytes in text") {
        DecoderOptions o = limits();
        o.validate_utf8 = false;
        expect_decodes(frame(kText, "\xFF\xC0\x80"), o, {want::text("\xFF\xC0\x80")});
        expect_decodes(frame(kText, "abc\xE2\x82"), o, {want::text("abc\xE2\x82")});
    }
    SECTION("each text message is validated from a fresh start") {
        expect_decodes(cat({frame(kText, "\xE2\x82\xAC"), frame(kText, "\x82\xAC")}), limits(),
                       {want::text("\xE2\x82\xAC"), want::error(CloseCode::InvalidPayload)});
        expect_decodes(cat({frame(kBinary, "\xE2\x82"), frame(kText, "\xAC")}), limits(),
                       {want::binary("\xE2\x82"), want::error(CloseCode::InvalidPayload)});
        // Even when validation was switched off (a config reload) inside the previous message,
        // leaving it mid code point.
        SplitFeeder feeder;
        feeder.feed(frame(kText, "\xE2", false));
        DecoderOptions off = limits();
        off.validate_utf8 = false;
        feeder.decoder().set_options(off);
        feeder.feed(frame(kCont, "\x82"));
        feeder.decoder().set_options(limits());
        feeder.feed(frame(kText, "A"));
        std::vector<std::string> violations = feeder.violations();
        CHECK(normalize(feeder.events(), violations) == std::vector<Item>{want::text("\xE2\x82"), want::text("A")});
        CHECK(violations == std::vector<std::string>{});
    }
    SECTION("a close reason is checked on its own, not as part of the interrupted text message") {
        expect_decodes(cat({frame(kText, "\xE2", false), frame(kClose, close_body(1000, "ok")), frame(kCont, "\x82\xAC")}),
                       limits(), {want::close(1000, "ok"), want::text("\xE2\x82\xAC")});
    }
}

TEST_CASE("frame decoder: RFC 6455 §5.5.1 and §7.4 close frames", "[frame]") {
    SECTION("an empty close frame reports code 1005 (RFC 6455 §7.1.5)") {
        expect_decodes(frame(kClose, ""), limits(), {want::close_empty()});
    }
    SECTION("a 1-byte close body -> 1002") {
        expect_decodes(frame(kClose, "a"), limits(), kProtocolError);
        expect_decodes(frame(kClose, std::string(1, '\x03')), limits(), kProtocolError);
    }
    SECTION("codes 0..5000 and 65535 are accepted exactly when is_valid_wire_close_code() says so") {
        size_t wrong = 0;
        std::vector<unsigned> first_wrong;
        auto check_code = [&](uint16_t code) {
            const Decoded d = decode_whole(frame(kClose, close_body(code, "r")));
            const std::vector<Item> expected =
                is_valid_wire_close_code(code) ? std::vector<Item>{want::close(code, "r")} : kProtocolError;
            if ((d.items != expected || !d.violations.empty()) && ++wrong <= 8) first_wrong.push_back(code);
        };
        for (unsigned code = 0; code <= 5000; ++code) check_code(static_cast<uint16_t>(code));
        check_code(65535);
        INFO(wrong << " codes decoded wrongly");
        CHECK(first_wrong == std::vector<unsigned>{});
    }
    SECTION("is_valid_wire_close_code(): RFC 6455 §7.4.1-7.4.2 and the IANA registry") {
        // Defined by RFC 6455 §7.4.1 and sendable.
        for (const uint16_t c : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011}) CHECK(is_valid_wire_close_code(c));
        // Registered later with IANA (service restart, try again later, bad gateway).
        for (const uint16_t c : {1012, 1013, 1014}) CHECK(is_valid_wire_close_code(c));
        // 1004 reserved; 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control frame".
        for (const uint16_t c : {1004, 1005, 1006, 1015}) CHECK_FALSE(is_valid_wire_close_code(c));
        // 0-999 not used; 1016-2999 reserved for future revisions; 3000-4999 for libraries and apps.
        for (const uint16_t c : {0, 1, 999, 1016, 1100, 2000, 2999, 5000, 65535}) CHECK_FALSE(is_valid_wire_close_code(c));
        for (const uint16_t c : {3000, 3999, 4000, 4999}) CHECK(is_valid_wire_close_code(c));
    }
    SECTION("a reason that is not UTF-8 -> 1007") {
        for (const std::string_view reason : {std::string_view("\xFF"), std::string_view("ok\xE2\x82"),
                                              std::string_view("\xED\xA0\x80"), std::string_view("\xC0\x80")}) {
            INFO(printable(reason));
            expect_decodes(frame(kClose, close_body(1000, reason)), limits(), kInvalidPayload);
        }
    }
    SECTION("a valid reason is returned in close_reason") {
        expect_decodes(frame(kClose, close_body(1000)), limits(), {want::close(1000)});
        expect_decodes(frame(kClose, close_body(1001, "bye")), limits(), {want::close(1001, "bye")});
        expect_decodes(frame(kClose, close_body(4000, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5")), limits(),
                       {want::close(4000, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5")});
        expect_decodes(frame(kClose, close_body(1000, std::string(123, 'r'))), limits(),
                       {want::close(1000, std::string(123, 'r'))});
    }
    SECTION("a close frame of 126 bytes is a control frame too long -> 1002") {
        expect_decodes(frame(kClose, close_body(1000, std::string(124, 'r'))), limits(), kProtocolError);
    }
}

TEST_CASE("frame decoder: zero-length data frames", "[frame]") {
    expect_decodes(frame(kText, ""), limits(), {want::text("")});
    expect_decodes(frame(kBinary, ""), limits(), {want::binary("")});
    expect_decodes(cat({frame(kText, ""), frame(kBinary, ""), frame(kText, "")}), limits(),
                   {want::text(""), want::binary(""), want::text("")});
    // Each zero-length frame is one Data step that both begins and ends its message.
    CHECK(decode_whole(frame(kText, "")).events == std::vector<Event>{data_event(Opcode::Text, "", true, true)});
}

TEST_CASE("frame decoder: a 1 MiB frame fed in 4 KiB reads is streamed piece by piece", "[frame]") {
    Rng rng(0xB16);
    const std::string payload = str(rng.bytes(size_t{1} << 20));
    const Bytes wire = frame(kBinary, payload);
    SplitFeeder feeder;
    size_t reads = 0;
    for (size_t at = 0; at < wire.size(); at += 4096, ++reads) {
        feeder.feed(std::span(wire).subspan(at, std::min<size_t>(4096, wire.size() - at)));
        CHECK(feeder.leftover() == 0);  // payload bytes are never held back
    }
    const auto& events = feeder.events();
    REQUIRE(events.size() == reads);  // one piece per read: the decoder does not wait for the whole frame
    std::string joined;
    size_t begins = 0, ends = 0, too_big = 0;
    for (const Event& e : events) {
        joined += e.payload;
        begins += e.begins;
        ends += e.ends;
        too_big += e.payload.size() > 4096;
    }
    CHECK(difference(joined, payload) == "");
    CHECK(events.front().begins);
    CHECK(events.back().ends);
    CHECK(begins == 1);
    CHECK(ends == 1);
    CHECK(too_big == 0);
    CHECK(feeder.violations() == std::vector<std::string>{});

    // The same for text, where each piece also goes through the UTF-8 validator.
    const std::string text = pattern(size_t{1} << 20);
    const Decoded d = decode_chopped(frame(kText, text), limits(), 4096);
    CHECK(d.items == std::vector<Item>{want::text(text)});
    CHECK(d.events.size() > 256);
}

TEST_CASE("frame decoder: after an Error, next() keeps returning Error", "[frame]") {
    DecoderOptions o = limits(100);
    const std::vector<Bytes> bad = {
        frame(0x3, ""),                                       // reserved opcode
        frame(kText, "x", true, 2),                           // RSV2
        server_frame(Opcode::Text, "unmasked"),               // unmasked client frame
        header_only(kBinary, 101),                            // 1009
        frame(kText, "\xFF"),                                 // 1007
        frame(kClose, close_body(1005)),                      // invalid close code
        frame(kCont, "x"),                                    // nothing to continue
        frame(kPing, "x", false),                             // fragmented control frame
    };
    for (const Bytes& b : bad) {
        INFO(printable(b));
        FrameDecoder d(o);
        Bytes first = b;
        const DecodeStep s = d.next(first);
        CHECK(s.kind == StepKind::Error);
        CHECK(d.failed());
        Bytes good = frame(kText, "fine");
        CHECK(d.next(good).kind == StepKind::Error);
        CHECK(d.next({}).kind == StepKind::Error);
        CHECK(d.failed());
    }
    // The error's reason fits in our own close frame.
    FrameDecoder d(o);
    Bytes b = frame(0x3, "");
    const DecodeStep s = d.next(b);
    CHECK(s.error.code == CloseCode::ProtocolError);
    CHECK_FALSE(s.error.reason.empty());
    CHECK(s.error.reason.size() <= kMaxControlPayload - 2);
}

TEST_CASE("frame decoder: NeedMore until a header is complete, then the header is consumed", "[frame]") {
    // frame.h: a header is only consumed once complete; until then NeedMore with nothing consumed.
    struct Case {
        const char* name;
        Bytes header;  // complete header of a masked data frame, payload not included
        size_t header_size;
    };
    const std::vector<Case> cases = {
        {"7-bit length", header_only(kBinary, 5), 2 + 4},
        {"16-bit length", header_only(kBinary, 300), 2 + 2 + 4},
        {"64-bit length", header_only(kBinary, 70000), 2 + 8 + 4},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        REQUIRE(c.header.size() == c.header_size);
        for (size_t n = 0; n < c.header.size(); ++n) {
            FrameDecoder d(limits());
            Bytes part(c.header.begin(), c.header.begin() + static_cast<std::ptrdiff_t>(n));
            const DecodeStep s = d.next(part);
            INFO(n << " header bytes");
            CHECK(s.kind == StepKind::NeedMore);
            CHECK(s.consumed == 0);
            CHECK_FALSE(d.in_message());
        }
        FrameDecoder d(limits());
        Bytes whole = c.header;
        const DecodeStep s = d.next(whole);
        CHECK(s.kind == StepKind::NeedMore);
        CHECK(s.consumed == c.header.size());  // the header is taken; the payload is awaited
        CHECK(d.in_message());
    }
}

TEST_CASE("frame decoder: payloads are views into the caller's buffer, unmasked in place", "[frame]") {
    Bytes wire = cat({frame(kText, "hello"), frame(kPing, "ping!")});
    FrameDecoder d(limits());
    const DecodeStep data = d.next(wire);
    REQUIRE(data.kind == StepKind::Data);
    CHECK(data.consumed == 6 + 5);
    CHECK(data.payload.data() == wire.data() + 6);
    CHECK(str(std::span(wire).subspan(6, 5)) == "hello");
    const DecodeStep ping = d.next(std::span(wire).subspan(data.consumed));
    REQUIRE(ping.kind == StepKind::Control);
    CHECK(ping.payload.data() == wire.data() + 11 + 6);
    CHECK(str(ping.payload) == "ping!");
}
