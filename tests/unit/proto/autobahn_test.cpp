// SPDX-License-Identifier: Apache-2.0
// The Autobahn TestSuite's fuzzingclient cases 1-7 and 10 (crossbario/autobahn-testsuite,
// autobahntestsuite/case/), expressed as decoder tests: the frames each case sends, and what the
// decoder must report so the server can behave as the case expects. Where a case is about what the
// server sends back (an echo, a pong, its close code), the test checks the event that carries what
// the server needs for it: the message bytes, the ping payload, the error's close code.
//
// Every case is also fed at every split point, in random reads and byte by byte (expect_decodes),
// and, where Autobahn sends it in particular chops (frame-wise, octet-wise, 997 bytes), in those.
#include <string>
#include <vector>

#include "proto/frame.h"
#include "test_support.h"

using namespace wsrelay::proto;
using namespace wsrelay::test;

namespace {

constexpr unsigned kCont = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA;

// sendFrame(opcode, payload, fin, rsv): rsv is Autobahn's 3-bit value, RSV1 = 4 ... RSV3 = 1.
Bytes frame(unsigned op, std::string_view payload = {}, bool fin = true, unsigned rsv = 0) {
    return raw_frame({.opcode = op, .fin = fin, .rsv = rsv}, payload);
}

Bytes close_frame(uint16_t code, std::string_view reason = {}) { return frame(kClose, close_body(code, reason)); }

const std::string kHello = "Hello, world!";
const std::string kKosme = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5";  // κόσμε
const std::string kUtf8Hello = "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!";  // Hello-µ@ßöäüàá-UTF-8!!

enum class Chops { None, FrameWise, OctetWise };

// The frames of one case decode to `expected` however they are cut; also in Autobahn's own chops.
void check_case(const std::vector<Bytes>& frames, const std::vector<Item>& expected, Chops chops = Chops::None,
                const DecoderOptions& options = limits()) {
    Bytes wire;
    std::vector<size_t> frame_sizes;
    for (const Bytes& f : frames) {
        wire.insert(wire.end(), f.begin(), f.end());
        frame_sizes.push_back(f.size());
    }
    expect_decodes(wire, options, expected);
    if (chops == Chops::FrameWise) {
        INFO("sent frame-wise (sync = True)");
        CHECK(decode_pieces(wire, options, frame_sizes).items == expected);
    } else if (chops == Chops::OctetWise) {
        INFO("sent octet-wise (chopsize = 1)");
        CHECK(decode_chopped(wire, options, 1).items == expected);
    }
}

// A text message sent as frames of `fragment_size` bytes (sendMessage(..., fragmentSize = n)).
std::vector<Bytes> fragmented(unsigned op, std::string_view payload, size_t fragment_size) {
    std::vector<Bytes> frames;
    for (size_t at = 0; at < payload.size() || at == 0; at += fragment_size) {
        const bool last = at + fragment_size >= payload.size();
        frames.push_back(frame(at == 0 ? op : kCont, payload.substr(at, fragment_size), last));
        if (last) break;
    }
    return frames;
}

const std::vector<Item> kProtocolError = {want::error(CloseCode::ProtocolError)};
const std::vector<Item> kInvalidPayload = {want::error(CloseCode::InvalidPayload)};

// Case 6.4.x: the part before the bad bytes is accepted; the part holding them fails the
// connection at once (fail fast on UTF-8), without waiting for the rest.
void check_fail_fast(const std::vector<Bytes>& parts) {
    REQUIRE(parts.size() == 3);
    SplitFeeder feeder;
    feeder.feed(parts[0]);
    CHECK_FALSE(feeder.failed());
    feeder.feed(parts[1]);
    CHECK(feeder.failed());
    REQUIRE_FALSE(feeder.events().empty());
    CHECK(feeder.events().back() == Event{.kind = StepKind::Error, .error = CloseCode::InvalidPayload});
    CHECK(feeder.violations() == std::vector<std::string>{});
    expect_decodes(cat({parts[0], parts[1], parts[2]}), limits(), kInvalidPayload);
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// 1 Framing: text and binary messages of each length form, whole and in 997-byte chops.

namespace {
void check_echo(unsigned op, size_t n, bool chops_of_997 = false) {
    const std::string payload(n, op == kText ? '*' : '\xFE');
    const Item expected = op == kText ? want::text(payload) : want::binary(payload);
    const Bytes wire = frame(op, payload);
    expect_decodes(wire, limits(), {expected});
    if (chops_of_997) CHECK(decode_chopped(wire, limits(), 997).items == std::vector<Item>{expected});
}
}  // namespace

TEST_CASE("autobahn 1.1.1: text message, empty payload", "[autobahn]") { check_echo(kText, 0); }
TEST_CASE("autobahn 1.1.2: text message, 125 bytes", "[autobahn]") { check_echo(kText, 125); }
TEST_CASE("autobahn 1.1.3: text message, 126 bytes", "[autobahn]") { check_echo(kText, 126); }
TEST_CASE("autobahn 1.1.4: text message, 127 bytes", "[autobahn]") { check_echo(kText, 127); }
TEST_CASE("autobahn 1.1.5: text message, 128 bytes", "[autobahn]") { check_echo(kText, 128); }
TEST_CASE("autobahn 1.1.6: text message, 65535 bytes", "[autobahn]") { check_echo(kText, 65535); }
TEST_CASE("autobahn 1.1.7: text message, 65536 bytes", "[autobahn]") { check_echo(kText, 65536); }
TEST_CASE("autobahn 1.1.8: text message, 65536 bytes sent in chops of 997", "[autobahn]") { check_echo(kText, 65536, true); }
TEST_CASE("autobahn 1.2.1: binary message, empty payload", "[autobahn]") { check_echo(kBinary, 0); }
TEST_CASE("autobahn 1.2.2: binary message, 125 bytes", "[autobahn]") { check_echo(kBinary, 125); }
TEST_CASE("autobahn 1.2.3: binary message, 126 bytes", "[autobahn]") { check_echo(kBinary, 126); }
TEST_CASE("autobahn 1.2.4: binary message, 127 bytes", "[autobahn]") { check_echo(kBinary, 127); }
TEST_CASE("autobahn 1.2.5: binary message, 128 bytes", "[autobahn]") { check_echo(kBinary, 128); }
TEST_CASE("autobahn 1.2.6: binary message, 65535 bytes", "[autobahn]") { check_echo(kBinary, 65535); }
TEST_CASE("autobahn 1.2.7: binary message, 65536 bytes", "[autobahn]") { check_echo(kBinary, 65536); }
TEST_CASE("autobahn 1.2.8: binary message, 65536 bytes sent in chops of 997", "[autobahn]") {
    check_echo(kBinary, 65536, true);
}

// ------------------------------------------------------------------------------------------------
// 2 Pings and pongs: the server answers a ping with a pong carrying the ping's exact payload, so the
// Ping event must carry it; unsolicited pongs are reported and need no answer.

TEST_CASE("autobahn 2.1: ping without payload", "[autobahn]") { check_case({frame(kPing)}, {want::ping("")}); }
TEST_CASE("autobahn 2.2: ping with a small text payload", "[autobahn]") {
    check_case({frame(kPing, kHello)}, {want::ping(kHello)});
}
TEST_CASE("autobahn 2.3: ping with a small binary payload", "[autobahn]") {
    const std::string payload("\x00\xFF\xFE\xFD\xFC\xFB\x00\xFF", 8);
    check_case({frame(kPing, payload)}, {want::ping(payload)});
}
TEST_CASE("autobahn 2.4: ping with a binary payload of 125 bytes", "[autobahn]") {
    check_case({frame(kPing, std::string(125, '\xFE'))}, {want::ping(std::string(125, '\xFE'))});
}
TEST_CASE("autobahn 2.5: ping with a binary payload of 126 bytes fails with 1002", "[autobahn]") {
    check_case({frame(kPing, std::string(126, '\xFE'))}, kProtocolError);
}
TEST_CASE("autobahn 2.6: ping with 125 bytes sent octet-wise", "[autobahn]") {
    check_case({frame(kPing, std::string(125, '\xFE'))}, {want::ping(std::string(125, '\xFE'))}, Chops::OctetWise);
}
TEST_CASE("autobahn 2.7: unsolicited pong without payload", "[autobahn]") {
    check_case({frame(kPong), close_frame(1000)}, {want::pong(""), want::close(1000)});
}
TEST_CASE("autobahn 2.8: unsolicited pong with payload", "[autobahn]") {
    check_case({frame(kPong, "unsolicited pong payload"), close_frame(1000)},
               {want::pong("unsolicited pong payload"), want::close(1000)});
}
TEST_CASE("autobahn 2.9: unsolicited pong, then a ping", "[autobahn]") {
    check_case({frame(kPong, "unsolicited pong payload"), frame(kPing, "ping payload")},
               {want::pong("unsolicited pong payload"), want::ping("ping payload")});
}
TEST_CASE("autobahn 2.10: ten pings with payload", "[autobahn]") {
    std::vector<Bytes> frames;
    std::vector<Item> expected;
    for (int i = 0; i < 10; ++i) {
        frames.push_back(frame(kPing, "payload-" + std::to_string(i)));
        expected.push_back(want::ping("payload-" + std::to_string(i)));
    }
    check_case(frames, expected);
}
TEST_CASE("autobahn 2.11: ten pings with payload sent octet-wise", "[autobahn]") {
    std::vector<Bytes> frames;
    std::vector<Item> expected;
    for (int i = 0; i < 10; ++i) {
        frames.push_back(frame(kPing, "payload-" + std::to_string(i)));
        expected.push_back(want::ping("payload-" + std::to_string(i)));
    }
    check_case(frames, expected, Chops::OctetWise);
}

// ------------------------------------------------------------------------------------------------
// 3 Reserved bits: without a negotiated extension any RSV bit fails the connection with 1002; the
// frames after it (a ping) must not be reported.

TEST_CASE("autobahn 3.1: text message with RSV = 1", "[autobahn]") { check_case({frame(kText, kHello, true, 1)}, kProtocolError); }
TEST_CASE("autobahn 3.2: text message, then RSV = 2, then ping", "[autobahn]") {
    check_case({frame(kText, kHello), frame(kText, kHello, true, 2), frame(kPing)},
               {want::text(kHello), want::error(CloseCode::ProtocolError)});
}
TEST_CASE("autobahn 3.3: text message, then RSV = 3, then ping, sent frame-wise", "[autobahn]") {
    check_case({frame(kText, kHello), frame(kText, kHello, true, 3), frame(kPing)},
               {want::text(kHello), want::error(CloseCode::ProtocolError)}, Chops::FrameWise);
}
TEST_CASE("autobahn 3.4: text message, then RSV = 4, then ping, sent octet-wise", "[autobahn]") {
    check_case({frame(kText, kHello), frame(kText, kHello, true, 4), frame(kPing)},
               {want::text(kHello), want::error(CloseCode::ProtocolError)}, Chops::OctetWise);
}
TEST_CASE("autobahn 3.5: binary message with RSV = 5", "[autobahn]") {
    check_case({frame(kBinary, std::string("\x00\xFF\xFE\xFD\xFC\xFB\x00\xFF", 8), true, 5)}, kProtocolError);
}
TEST_CASE("autobahn 3.6: ping with RSV = 6", "[autobahn]") {
    // The case's description says Ping; its code sends opcode 2. Both must fail.
    check_case({frame(kPing, kHello, true, 6)}, kProtocolError);
    check_case({frame(kBinary, kHello, true, 6)}, kProtocolError);
}
TEST_CASE("autobahn 3.7: close with RSV = 7", "[autobahn]") { check_case({frame(kClose, "", true, 7)}, kProtocolError); }

// ------------------------------------------------------------------------------------------------
// 4 Reserved opcodes fail the connection with 1002; what comes after is not reported.

TEST_CASE("autobahn 4.1.1: reserved non-control opcode 3", "[autobahn]") { check_case({frame(3)}, kProtocolError); }
TEST_CASE("autobahn 4.1.2: reserved non-control opcode 4 with payload", "[autobahn]") {
    check_case({frame(4, "reserved opcode payload")}, kProtocolError);
}
TEST_CASE("autobahn 4.1.3: text, reserved opcode 5, ping", "[autobahn]") {
    check_case({frame(kText, kHello), frame(5), frame(kPing)}, {want::text(kHello), want::error(CloseCode::ProtocolError)});
}
TEST_CASE("autobahn 4.1.4: text, reserved opcode 6 with payload, ping", "[autobahn]") {
    check_case({frame(kText, kHello), frame(6, kHello), frame(kPing)},
               {want::text(kHello), want::error(CloseCode::ProtocolError)});
}
TEST_CASE("autobahn 4.1.5: text, reserved opcode 7 with payload, ping, sent octet-wise", "[autobahn]") {
    check_case({frame(kText, kHello), frame(7, kHello), frame(kPing)},
               {want::text(kHello), want::error(CloseCode::ProtocolError)}, Chops::OctetWise);
}
TEST_CASE("autobahn 4.2.1: reserved control opcode 11", "[autobahn]") { check_case({frame(11)}, kProtocolError); }
TEST_CASE("autobahn 4.2.2: reserved control opcode 12 with payload", "[autobahn]") {
    check_case({frame(12, "reserved opcode payload")}, kProtocolError);
}
TEST_CASE("autobahn 4.2.3: text, reserved opcode 13, ping", "[autobahn]") {
    check_case({frame(kText, kHello), frame(13), frame(kPing)}, {want::text(kHello), want::error(CloseCode::ProtocolError)});
}
TEST_CASE("autobahn 4.2.4: text, reserved opcode 14 with payload, ping", "[autobahn]") {
    check_case({frame(kText, kHello), frame(14, kHello), frame(kPing)},
               {want::text(kHello), want::error(CloseCode::ProtocolError)});
}
TEST_CASE("autobahn 4.2.5: text, reserved opcode 15 with payload, ping, sent octet-wise", "[autobahn]") {
    check_case({frame(kText, kHello), frame(15, kHello), frame(kPing)},
               {want::text(kHello), want::error(CloseCode::ProtocolError)}, Chops::OctetWise);
}

// ------------------------------------------------------------------------------------------------
// 5 Fragmentation.

TEST_CASE("autobahn 5.1: ping fragmented into 2 fragments", "[autobahn]") {
    check_case({frame(kPing, "fragment1", false), frame(kCont, "fragment2")}, kProtocolError);
}
TEST_CASE("autobahn 5.2: pong fragmented into 2 fragments", "[autobahn]") {
    check_case({frame(kPong, "fragment1", false), frame(kCont, "fragment2")}, kProtocolError);
}
TEST_CASE("autobahn 5.3: text message in 2 fragments", "[autobahn]") {
    check_case({frame(kText, "fragment1", false), frame(kCont, "fragment2")}, {want::text("fragment1fragment2")});
}
TEST_CASE("autobahn 5.4: text message in 2 fragments, sent frame-wise", "[autobahn]") {
    check_case({frame(kText, "fragment1", false), frame(kCont, "fragment2")}, {want::text("fragment1fragment2")},
               Chops::FrameWise);
}
TEST_CASE("autobahn 5.5: text message in 2 fragments, sent octet-wise", "[autobahn]") {
    check_case({frame(kText, "fragment1", false), frame(kCont, "fragment2")}, {want::text("fragment1fragment2")},
               Chops::OctetWise);
}

namespace {
// 5.6-5.8: the ping between the fragments is reported before the second fragment, so the server
// can answer it before the message is complete.
void check_ping_between_fragments(Chops chops) {
    const std::vector<Bytes> frames = {frame(kText, "fragment1", false), frame(kPing, "ping payload"), frame(kCont, "fragment2")};
    check_case(frames, {want::ping("ping payload"), want::text("fragment1fragment2")}, chops);
    SplitFeeder feeder;
    feeder.feed(cat({frames[0], frames[1]}));
    REQUIRE(feeder.events().size() == 2);
    CHECK(feeder.events().back().kind == StepKind::Control);
    CHECK(feeder.events().back().payload == "ping payload");
}
}  // namespace

TEST_CASE("autobahn 5.6: text in 2 fragments with a ping in between", "[autobahn]") {
    check_ping_between_fragments(Chops::None);
}
TEST_CASE("autobahn 5.7: text in 2 fragments with a ping in between, sent frame-wise", "[autobahn]") {
    check_ping_between_fragments(Chops::FrameWise);
}
TEST_CASE("autobahn 5.8: text in 2 fragments with a ping in between, sent octet-wise", "[autobahn]") {
    check_ping_between_fragments(Chops::OctetWise);
}

namespace {
const std::vector<Bytes> kContinuationFinThenText = {frame(kCont, "non-continuation payload"), frame(kText, kHello)};
const std::vector<Bytes> kContinuationThenText = {frame(kCont, "non-continuation payload", false), frame(kText, kHello)};
}  // namespace

TEST_CASE("autobahn 5.9: continuation with FIN and nothing to continue, then text", "[autobahn]") {
    check_case(kContinuationFinThenText, kProtocolError);
}
TEST_CASE("autobahn 5.10: continuation with FIN and nothing to continue, sent frame-wise", "[autobahn]") {
    check_case(kContinuationFinThenText, kProtocolError, Chops::FrameWise);
}
TEST_CASE("autobahn 5.11: continuation with FIN and nothing to continue, sent octet-wise", "[autobahn]") {
    check_case(kContinuationFinThenText, kProtocolError, Chops::OctetWise);
}
TEST_CASE("autobahn 5.12: continuation without FIN and nothing to continue, then text", "[autobahn]") {
    check_case(kContinuationThenText, kProtocolError);
}
TEST_CASE("autobahn 5.13: continuation without FIN and nothing to continue, sent frame-wise", "[autobahn]") {
    check_case(kContinuationThenText, kProtocolError, Chops::FrameWise);
}
TEST_CASE("autobahn 5.14: continuation without FIN and nothing to continue, sent octet-wise", "[autobahn]") {
    check_case(kContinuationThenText, kProtocolError, Chops::OctetWise);
}
TEST_CASE("autobahn 5.15: text in 2 fragments, then a stray continuation, then text", "[autobahn]") {
    check_case({frame(kText, "fragment1", false), frame(kCont, "fragment2"), frame(kCont, "fragment3", false),
                frame(kText, "fragment4")},
               {want::text("fragment1fragment2"), want::error(CloseCode::ProtocolError)});
}
TEST_CASE("autobahn 5.16: stray continuation without FIN, then text in 2 fragments, twice", "[autobahn]") {
    std::vector<Bytes> frames;
    for (int i = 0; i < 2; ++i) {
        frames.push_back(frame(kCont, "fragment1", false));
        frames.push_back(frame(kText, "fragment2", false));
        frames.push_back(frame(kCont, "fragment3"));
    }
    check_case(frames, kProtocolError);
}
TEST_CASE("autobahn 5.17: stray continuation with FIN, then text in 2 fragments, twice", "[autobahn]") {
    std::vector<Bytes> frames;
    for (int i = 0; i < 2; ++i) {
        frames.push_back(frame(kCont, "fragment1"));
        frames.push_back(frame(kText, "fragment2", false));
        frames.push_back(frame(kCont, "fragment3"));
    }
    check_case(frames, kProtocolError);
}
TEST_CASE("autobahn 5.18: text in 2 fragments, both with opcode text", "[autobahn]") {
    check_case({frame(kText, "fragment1", false), frame(kText, "fragment2")}, kProtocolError);
}

namespace {
// 5.19/5.20: five fragments with a ping after the second and another before the last. Autobahn
// waits a second after the first ping and expects its pong before the message is complete.
void check_five_fragments_two_pings(Chops chops) {
    const std::vector<Bytes> part1 = {frame(kText, "fragment1", false), frame(kCont, "fragment2", false), frame(kPing, "pongme 1!")};
    const std::vector<Bytes> part2 = {frame(kCont, "fragment3", false), frame(kCont, "fragment4", false), frame(kPing, "pongme 2!"),
                                      frame(kCont, "fragment5")};
    std::vector<Bytes> all = part1;
    all.insert(all.end(), part2.begin(), part2.end());
    check_case(all, {want::ping("pongme 1!"), want::ping("pongme 2!"), want::text("fragment1fragment2fragment3fragment4fragment5")},
               chops);
    SplitFeeder feeder;
    for (const Bytes& f : part1) feeder.feed(f);
    REQUIRE_FALSE(feeder.events().empty());
    CHECK(feeder.events().back() == Event{.kind = StepKind::Control, .opcode = Opcode::Ping, .payload = "pongme 1!"});
}
}  // namespace

TEST_CASE("autobahn 5.19: text in 5 fragments with 2 pings in between", "[autobahn]") {
    check_five_fragments_two_pings(Chops::None);
}
TEST_CASE("autobahn 5.20: text in 5 fragments with 2 pings in between, sent frame-wise", "[autobahn]") {
    check_five_fragments_two_pings(Chops::FrameWise);
}

// ------------------------------------------------------------------------------------------------
// 6 UTF-8 handling (RFC 6455 §8.1): valid text is delivered, invalid text fails with 1007, as soon
// as the bad byte arrives.

TEST_CASE("autobahn 6.1.1: text message of length 0", "[autobahn]") { check_case({frame(kText)}, {want::text("")}); }
TEST_CASE("autobahn 6.1.2: text message in 3 fragments of length 0", "[autobahn]") {
    check_case({frame(kText, "", false), frame(kCont, "", false), frame(kCont, "")}, {want::text("")});
}
TEST_CASE("autobahn 6.1.3: text message in 3 fragments, only the middle one non-empty", "[autobahn]") {
    check_case({frame(kText, "", false), frame(kCont, "middle frame payload", false), frame(kCont, "")},
               {want::text("middle frame payload")});
}
TEST_CASE("autobahn 6.2.1: valid UTF-8 text in one fragment", "[autobahn]") {
    check_case({frame(kText, kUtf8Hello)}, {want::text(kUtf8Hello)});
}
TEST_CASE("autobahn 6.2.2: valid UTF-8 text in two fragments split at a code point boundary", "[autobahn]") {
    check_case({frame(kText, "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4", false), frame(kCont, "\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!")},
               {want::text(kUtf8Hello)});
}
TEST_CASE("autobahn 6.2.3: valid UTF-8 text in 1-byte fragments", "[autobahn]") {
    check_case(fragmented(kText, kUtf8Hello, 1), {want::text(kUtf8Hello)});
}
TEST_CASE("autobahn 6.2.4: valid UTF-8 text of 2- and 3-byte code points in 1-byte fragments", "[autobahn]") {
    check_case(fragmented(kText, kKosme, 1), {want::text(kKosme)});
}

namespace {
const std::string k631 = kKosme + "\xED\xA0\x80" + "edited";  // invalid at byte 12 (\xA0: a surrogate)
const std::string k641 = kKosme + "\xF4\x90\x80\x80" + "edited";  // invalid at byte 12 (\x90: above U+10FFFF)
}  // namespace

TEST_CASE("autobahn 6.3.1: invalid UTF-8 text in one fragment fails with 1007", "[autobahn]") {
    check_case({frame(kText, k631)}, kInvalidPayload);
}
TEST_CASE("autobahn 6.3.2: invalid UTF-8 text in 1-byte fragments fails with 1007", "[autobahn]") {
    check_case(fragmented(kText, k631, 1), kInvalidPayload);
    // Fail fast: the 13th fragment (the \xA0) is refused without the ones after it.
    const std::vector<Bytes> frames = fragmented(kText, k631, 1);
    SplitFeeder feeder;
    for (size_t i = 0; i < 12; ++i) feeder.feed(frames[i]);
    CHECK_FALSE(feeder.failed());
    feeder.feed(frames[12]);
    CHECK(feeder.failed());
}
TEST_CASE("autobahn 6.4.1: fail fast on invalid UTF-8 in the second of 3 fragments", "[autobahn]") {
    check_fail_fast({frame(kText, kKosme, false), frame(kCont, "\xF4\x90\x80\x80", false), frame(kCont, "edited")});
}
TEST_CASE("autobahn 6.4.2: fail fast when the second fragment is the single bad byte", "[autobahn]") {
    check_fail_fast({frame(kText, k641.substr(0, 12), false), frame(kCont, k641.substr(12, 1), false),
                     frame(kCont, k641.substr(13))});
}
TEST_CASE("autobahn 6.4.3: fail fast on invalid UTF-8 in the second of 3 chops of one frame", "[autobahn]") {
    const Bytes f = frame(kText, k641);
    const size_t header = 2 + 4;
    check_fail_fast({Bytes(f.begin(), f.begin() + header + 11), Bytes(f.begin() + header + 11, f.begin() + header + 15),
                     Bytes(f.begin() + header + 15, f.end())});
}
TEST_CASE("autobahn 6.4.4: fail fast when the second chop of one frame is the single bad byte", "[autobahn]") {
    const Bytes f = frame(kText, k641);
    const size_t header = 2 + 4;
    check_fail_fast({Bytes(f.begin(), f.begin() + header + 12), Bytes(f.begin() + header + 12, f.begin() + header + 13),
                     Bytes(f.begin() + header + 13, f.end())});
}

namespace {
struct Utf8Case {
    bool valid;
    std::string payload;
};

// 6.5-6.23: each payload is sent as one text message. Valid ones are delivered; invalid ones fail
// with 1007, and the decoder refuses exactly the byte where the text stops being a prefix of valid
// UTF-8 (found by reference_utf8(), which also confirms each case's verdict).
void check_utf8_table(int subsection, const std::vector<Utf8Case>& cases) {
    for (size_t j = 0; j < cases.size(); ++j) {
        const Utf8Case& c = cases[j];
        INFO("case 6." << subsection << "." << j + 1 << ": " << printable(c.payload));
        const Utf8Reference ref = reference_utf8(as_bytes(c.payload));
        CHECK(ref.valid() == c.valid);
        const Bytes wire = frame(kText, c.payload);
        expect_decodes(wire, limits(), {c.valid ? want::text(c.payload) : want::error(CloseCode::InvalidPayload)});
        if (ref.first_bad) {
            const size_t header = wire.size() - c.payload.size();
            SplitFeeder feeder;
            feeder.feed(std::span(wire).first(header + *ref.first_bad));
            CHECK_FALSE(feeder.failed());
            feeder.feed(std::span(wire).subspan(header + *ref.first_bad, 1));
            CHECK(feeder.failed());
        }
    }
}

std::string bytes_from(unsigned first, unsigned last_exclusive, std::string_view after_each = {}) {
    std::string s;
    for (unsigned b = first; b < last_exclusive; ++b) {
        s += static_cast<char>(b);
        s += after_each;
    }
    return s;
}
}  // namespace

TEST_CASE("autobahn 6.5.1 to 6.5.5: some valid UTF-8 sequences", "[autobahn]") {
    check_utf8_table(5, {{true, "hello\x24world"},
                         {true, "hello\xC2\xA2world"},
                         {true, "hello\xE2\x82\xACworld"},
                         {true, "hello\xF0\xA4\xAD\xA2world"},
                         {true, kKosme}});
}
TEST_CASE("autobahn 6.6.1 to 6.6.11: every prefix of a valid multi-byte UTF-8 string", "[autobahn]") {
    // κόσμε = CE BA | E1 BD B9 | CF 83 | CE BC | CE B5: prefixes of 2, 5, 7, 9 and 11 bytes end on a
    // code point; the others end inside one, and a message may not.
    std::vector<Utf8Case> cases;
    for (size_t n = 1; n <= kKosme.size(); ++n) cases.push_back({n == 2 || n == 5 || n == 7 || n == 9 || n == 11, kKosme.substr(0, n)});
    check_utf8_table(6, cases);
}
TEST_CASE("autobahn 6.7.1 to 6.7.4: first possible sequence of each length", "[autobahn]") {
    check_utf8_table(7, {{true, std::string(1, '\0')}, {true, "\xC2\x80"}, {true, "\xE0\xA0\x80"}, {true, "\xF0\x90\x80\x80"}});
}
TEST_CASE("autobahn 6.8.1 to 6.8.2: first possible 5- and 6-byte sequences", "[autobahn]") {
    check_utf8_table(8, {{false, "\xF8\x88\x80\x80\x80"}, {false, "\xFC\x84\x80\x80\x80\x80"}});
}
TEST_CASE("autobahn 6.9.1 to 6.9.4: last possible sequence of each length", "[autobahn]") {
    check_utf8_table(9, {{true, "\x7F"}, {true, "\xDF\xBF"}, {true, "\xEF\xBF\xBF"}, {true, "\xF4\x8F\xBF\xBF"}});
}
TEST_CASE("autobahn 6.10.1 to 6.10.3: last possible 4-, 5- and 6-byte sequences", "[autobahn]") {
    check_utf8_table(10, {{false, "\xF7\xBF\xBF\xBF"}, {false, "\xFB\xBF\xBF\xBF\xBF"}, {false, "\xFD\xBF\xBF\xBF\xBF\xBF"}});
}
TEST_CASE("autobahn 6.11.1 to 6.11.5: other boundary conditions", "[autobahn]") {
    check_utf8_table(11, {{true, "\xED\x9F\xBF"},
                          {true, "\xEE\x80\x80"},
                          {true, "\xEF\xBF\xBD"},
                          {true, "\xF4\x8F\xBF\xBF"},
                          {false, "\xF4\x90\x80\x80"}});
}
TEST_CASE("autobahn 6.12.1 to 6.12.8: unexpected continuation bytes", "[autobahn]") {
    check_utf8_table(12, {{false, "\x80"},
                          {false, "\xBF"},
                          {false, "\x80\xBF"},
                          {false, "\x80\xBF\x80"},
                          {false, "\x80\xBF\x80\xBF"},
                          {false, "\x80\xBF\x80\xBF\x80"},
                          {false, "\x80\xBF\x80\xBF\x80\xBF"},
                          {false, bytes_from(0x80, 0xBF)}});
}
TEST_CASE("autobahn 6.13.1 to 6.13.5: lonely start characters", "[autobahn]") {
    check_utf8_table(13, {{false, bytes_from(0xC0, 0xDF, " ")},
                          {false, bytes_from(0xE0, 0xEF, " ")},
                          {false, bytes_from(0xF0, 0xF7, " ")},
                          {false, bytes_from(0xF8, 0xFB, " ")},
                          {false, bytes_from(0xFC, 0xFD, " ")}});
}
namespace {
const std::vector<std::string> kLastContinuationMissing = {
    "\xC0", "\xE0\x80", "\xF0\x80\x80", "\xF8\x80\x80\x80", "\xFC\x80\x80\x80\x80",
    "\xDF", "\xEF\xBF", "\xF7\xBF\xBF", "\xFB\xBF\xBF\xBF", "\xFD\xBF\xBF\xBF\xBF",
};
}  // namespace
TEST_CASE("autobahn 6.14.1 to 6.14.10: sequences with the last continuation byte missing", "[autobahn]") {
    std::vector<Utf8Case> cases;
    for (const std::string& s : kLastContinuationMissing) cases.push_back({false, s});
    check_utf8_table(14, cases);
}
TEST_CASE("autobahn 6.15.1: concatenation of incomplete sequences", "[autobahn]") {
    std::string all;
    for (const std::string& s : kLastContinuationMissing) all += s;
    check_utf8_table(15, {{false, all}});
}
TEST_CASE("autobahn 6.16.1 to 6.16.3: impossible bytes", "[autobahn]") {
    check_utf8_table(16, {{false, "\xFE"}, {false, "\xFF"}, {false, "\xFE\xFE\xFF\xFF"}});
}
TEST_CASE("autobahn 6.17.1 to 6.17.5: overlong ASCII character", "[autobahn]") {
    check_utf8_table(17, {{false, "\xC0\xAF"},
                          {false, "\xE0\x80\xAF"},
                          {false, "\xF0\x80\x80\xAF"},
                          {false, "\xF8\x80\x80\x80\xAF"},
                          {false, "\xFC\x80\x80\x80\x80\xAF"}});
}
TEST_CASE("autobahn 6.18.1 to 6.18.5: maximum overlong sequences", "[autobahn]") {
    check_utf8_table(18, {{false, "\xC1\xBF"},
                          {false, "\xE0\x9F\xBF"},
                          {false, "\xF0\x8F\xBF\xBF"},
                          {false, "\xF8\x87\xBF\xBF\xBF"},
                          {false, "\xFC\x83\xBF\xBF\xBF\xBF"}});
}
TEST_CASE("autobahn 6.19.1 to 6.19.5: overlong NUL", "[autobahn]") {
    check_utf8_table(19, {{false, "\xC0\x80"},
                          {false, "\xE0\x80\x80"},
                          {false, "\xF0\x80\x80\x80"},
                          {false, "\xF8\x80\x80\x80\x80"},
                          {false, "\xFC\x80\x80\x80\x80\x80"}});
}
TEST_CASE("autobahn 6.20.1 to 6.20.7: single UTF-16 surrogates", "[autobahn]") {
    check_utf8_table(20, {{false, "\xED\xA0\x80"},
                          {false, "\xED\xAD\xBF"},
                          {false, "\xED\xAE\x80"},
                          {false, "\xED\xAF\xBF"},
                          {false, "\xED\xB0\x80"},
                          {false, "\xED\xBE\x80"},
                          {false, "\xED\xBF\xBF"}});
}
TEST_CASE("autobahn 6.21.1 to 6.21.8: paired UTF-16 surrogates", "[autobahn]") {
    check_utf8_table(21, {{false, "\xED\xA0\x80\xED\xB0\x80"},
                          {false, "\xED\xA0\x80\xED\xBF\xBF"},
                          {false, "\xED\xAD\xBF\xED\xB0\x80"},
                          {false, "\xED\xAD\xBF\xED\xBF\xBF"},
                          {false, "\xED\xAE\x80\xED\xB0\x80"},
                          {false, "\xED\xAE\x80\xED\xBF\xBF"},
                          {false, "\xED\xAF\xBF\xED\xB0\x80"},
                          {false, "\xED\xAF\xBF\xED\xBF\xBF"}});
}
TEST_CASE("autobahn 6.22.1 to 6.22.34: noncharacter code points are valid UTF-8", "[autobahn]") {
    // EF BF BE/BF, then F[0-4] [89AB]F BF BE/BF minus those above U+10FFFF and the overlong F0 8F.
    std::vector<Utf8Case> cases = {{true, "\xEF\xBF\xBE"}, {true, "\xEF\xBF\xBF"}};
    for (const unsigned z1 : {0xF0u, 0xF1u, 0xF2u, 0xF3u, 0xF4u})
        for (const unsigned z2 : {0x8Fu, 0x9Fu, 0xAFu, 0xBFu}) {
            if (z1 == 0xF4 && z2 != 0x8F) continue;
            if (z1 == 0xF0 && z2 == 0x8F) continue;
            for (const unsigned z3 : {0xBEu, 0xBFu})
                cases.push_back({true, std::string{static_cast<char>(z1), static_cast<char>(z2), '\xBF', static_cast<char>(z3)}});
        }
    REQUIRE(cases.size() == 34);
    check_utf8_table(22, cases);
}
TEST_CASE("autobahn 6.23.1 to 6.23.7: Unicode specials", "[autobahn]") {
    check_utf8_table(23, {{true, "\xEF\xBF\xB9"},
                          {true, "\xEF\xBF\xBA"},
                          {true, "\xEF\xBF\xBB"},
                          {true, "\xEF\xBF\xBC"},
                          {true, "\xEF\xBF\xBD"},
                          {true, "\xEF\xBF\xBE"},
                          {true, "\xEF\xBF\xBF"}});
}

// ------------------------------------------------------------------------------------------------
// 7 Close handling. RFC 6455 §5.5.1: after a Close the endpoint ignores what follows. The decoder
// keeps decoding (the connection stops acting on data once it has seen the Close); what it must
// guarantee is that the Close is reported before anything sent after it.

namespace {
// Index of the first Close event (events.size() if none).
size_t close_index(const std::vector<Event>& events) {
    for (size_t i = 0; i < events.size(); ++i)
        if (events[i].kind == StepKind::Control && events[i].opcode == Opcode::Close) return i;
    return events.size();
}
}  // namespace

TEST_CASE("autobahn 7.1.1: a message followed by a close frame", "[autobahn]") {
    check_case({frame(kText, "Hello World!"), close_frame(1000)}, {want::text("Hello World!"), want::close(1000)});
}
TEST_CASE("autobahn 7.1.2: two close frames", "[autobahn]") {
    check_case({close_frame(1000), frame(kClose)}, {want::close(1000), want::close_empty()});
    CHECK(close_index(decode_whole(cat({close_frame(1000), frame(kClose)})).events) == 0);
}
TEST_CASE("autobahn 7.1.3: a ping after the close frame", "[autobahn]") {
    check_case({close_frame(1000), frame(kPing)}, {want::close(1000), want::ping("")});
    CHECK(close_index(decode_whole(cat({close_frame(1000), frame(kPing)})).events) == 0);
}
TEST_CASE("autobahn 7.1.4: a text message after the close frame", "[autobahn]") {
    check_case({close_frame(1000), frame(kText, "Hello World!")}, {want::close(1000), want::text("Hello World!")});
    CHECK(close_index(decode_whole(cat({close_frame(1000), frame(kText, "Hello World!")})).events) == 0);
}
TEST_CASE("autobahn 7.1.5: a fragment, the close frame, then the last fragment", "[autobahn]") {
    const Bytes wire = cat({frame(kText, "fragment1", false), close_frame(1000), frame(kCont, "fragment2")});
    check_case({frame(kText, "fragment1", false), close_frame(1000), frame(kCont, "fragment2")},
               {want::close(1000), want::text("fragment1fragment2")});
    const std::vector<Event> events = decode_whole(wire).events;
    REQUIRE(events.size() == 3);
    CHECK(close_index(events) == 1);  // after fragment1, before fragment2
    CHECK_FALSE(events[0].ends);
}
TEST_CASE("autobahn 7.1.6: a 256 KiB message, a message, the close frame, then a ping", "[autobahn]") {
    // sendFrame(payload = "BAsd7&jh23", payload_len = 256 KiB) repeats the pattern to that length.
    std::string big;
    while (big.size() < 256 * 1024) big += "BAsd7&jh23";
    big.resize(256 * 1024);
    check_case({frame(kText, big), frame(kText, "Hello World!"), close_frame(1000), frame(kPing)},
               {want::text(big), want::text("Hello World!"), want::close(1000), want::ping("")});
}
TEST_CASE("autobahn 7.3.1: close frame with payload length 0", "[autobahn]") {
    check_case({frame(kClose)}, {want::close_empty()});  // reported as 1005: no status code
}
TEST_CASE("autobahn 7.3.2: close frame with payload length 1 fails with 1002", "[autobahn]") {
    check_case({frame(kClose, "a")}, kProtocolError);
}
TEST_CASE("autobahn 7.3.3: close frame with payload length 2 (a code)", "[autobahn]") {
    check_case({close_frame(1000)}, {want::close(1000)});
}
TEST_CASE("autobahn 7.3.4: close frame with a code and a reason", "[autobahn]") {
    check_case({close_frame(1000, "Hello World!")}, {want::close(1000, "Hello World!")});
}
TEST_CASE("autobahn 7.3.5: close frame with a reason of the maximum length 123", "[autobahn]") {
    check_case({close_frame(1000, std::string(123, '*'))}, {want::close(1000, std::string(123, '*'))});
}
TEST_CASE("autobahn 7.3.6: close frame with a reason of 124 bytes (payload 126) fails with 1002", "[autobahn]") {
    check_case({close_frame(1000, std::string(124, '*'))}, kProtocolError);
}
TEST_CASE("autobahn 7.5.1: close frame with an invalid UTF-8 reason fails with 1007", "[autobahn]") {
    check_case({close_frame(1000, k631)}, kInvalidPayload);
}
TEST_CASE("autobahn 7.7.1 to 7.7.13: close frames with valid codes", "[autobahn]") {
    const uint16_t codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < std::size(codes); ++i) {
        INFO("case 7.7." << i + 1 << ": code " << codes[i]);
        check_case({close_frame(codes[i])}, {want::close(codes[i])});
    }
}
TEST_CASE("autobahn 7.9.1 to 7.9.9: close frames with invalid codes fail with 1002", "[autobahn]") {
    const uint16_t codes[] = {0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999};
    for (size_t i = 0; i < std::size(codes); ++i) {
        INFO("case 7.9." << i + 1 << ": code " << codes[i]);
        check_case({close_frame(codes[i])}, kProtocolError);
    }
}
// Autobahn rates 7.13.x informational ("actual events are undefined by the spec"). RFC 6455 §7.4.2
// defines no range above 4999, so the decoder refuses them like any undefined code.
TEST_CASE("autobahn 7.13.1: close frame with code 5000 fails with 1002", "[autobahn]") {
    check_case({close_frame(5000)}, kProtocolError);
}
TEST_CASE("autobahn 7.13.2: close frame with code 65535 fails with 1002", "[autobahn]") {
    check_case({close_frame(65535)}, kProtocolError);
}

// ------------------------------------------------------------------------------------------------
// 10 Miscellaneous.

TEST_CASE("autobahn 10.1.1: 65536-byte text message auto-fragmented into 1300-byte frames", "[autobahn]") {
    const std::string payload(65536, '*');
    const std::vector<Bytes> frames = fragmented(kText, payload, 1300);
    CHECK(frames.size() == 65536 / 1300 + 1);  // 50 full frames and one of 536 bytes
    check_case(frames, {want::text(payload)});
    // Also within a limit of exactly the message size.
    check_case(frames, {want::text(payload)}, Chops::FrameWise, limits(65536));
    const Decoded d = decode_whole(cat({frames[0], frames[1]}));
    REQUIRE(d.events.size() == 2);
    CHECK(d.events[0].begins);
    CHECK_FALSE(d.events[1].begins);
    CHECK_FALSE(d.events[1].ends);
}
