// SPDX-License-Identifier: Apache-2.0
// relay/ under pressure, deterministically: a real Server driven turn by turn (rig.h), with the
// interleavings that once lost or corrupted data set up on purpose. Each case failed before its fix.
#include <catch2/catch.hpp>

#include <string>

#include "rig.h"

using namespace wsrelay;
using test::Client;
using test::Rig;

namespace {

constexpr uint8_t kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA;

// `size` bytes that say which message they are: "<seq>|" and then a pattern that depends on seq.
std::string numbered(uint32_t seq, size_t size) {
    std::string s = std::to_string(seq) + "|";
    for (size_t i = s.size(); i < size; ++i) s.push_back(static_cast<char>('a' + (seq * 7 + i) % 26));
    s.resize(size);
    return s;
}

config::Config base_config() {
    config::Config cfg = config::default_config();
    cfg.message_rate = 0;
    cfg.max_message_bytes = 64 * 1024;
    return cfg;
}

bool both_open(const Client& a, const Client& b) { return a.open() && b.open(); }

std::vector<std::string> data_payloads(const Client& c) {
    std::vector<std::string> out;
    for (const test::Received& f : c.frames)
        if (f.opcode == kText || f.opcode == kBinary) out.push_back(f.payload);
    return out;
}

}  // namespace

TEST_CASE("pressure: input held back while the queue was full is processed once it drains") {
    // A client floods echoes without reading. Its queue passes half of send_queue_bytes in the
    // middle of a read that emptied the socket: the rest of that read waits in the connection.
    // It used to wait forever (the resume after draining looked only at a flag that path did not
    // set, and no new edge comes for bytes already read): the last messages never came back.
    config::Config cfg = base_config();
    cfg.send_queue_bytes = 64 * 1024;
    Rig rig(cfg, false);
    Client& c = rig.connect(false, 0, 0, "/flood");
    REQUIRE(rig.run_until([&] { return c.open(); }));
    // 10 messages of 16000 bytes, all in the socket before the server reads: one read takes them
    // all (a short read: the socket is empty after it), and the queue passes half of its limit
    // after the second echo.
    constexpr uint32_t kCount = 10;
    for (uint32_t i = 0; i < kCount; ++i) c.out += test::client_frame(kBinary, numbered(i, 16000));
    c.write_some(SIZE_MAX, rig.staging());
    REQUIRE(c.out.empty());
    rig.turn();
    REQUIRE(rig.server().stats().messages_in < kCount);  // the rest waits in the connection
    // Now read everything: every echo comes back, in order, whole.
    REQUIRE(rig.run_until([&] { return data_payloads(c).size() == kCount; }, 5000));
    const auto got = data_payloads(c);
    for (uint32_t i = 0; i < kCount; ++i) CHECK(got[i] == numbered(i, 16000));
    CHECK(c.error.empty());
    CHECK(rig.server().stats().messages_dropped_slow_consumer == 0);
}

TEST_CASE("pressure: a pong never cuts into a TLS record that must be retried") {
    // The server's TLS write to a non-reading member got WANT_WRITE: OpenSSL holds that record,
    // encrypted, and sends it on the retry whatever the queue says then. A ping answered in
    // between used to put its pong in front of those bytes: the queue took the record's bytes as
    // the pong plus data, the pong was never sent and the stream went on from the wrong offset.
    config::Config cfg = base_config();
    cfg.send_queue_bytes = 16 << 20;  // no slow-consumer policy involved
    Rig rig(cfg);
    Client& sender = rig.connect(false, 0, 0, "/tls");
    Client& reader = rig.connect(true, 4096, 4096, "/tls");
    REQUIRE(rig.run_until([&] { return both_open(sender, reader); }));
    constexpr uint32_t kCount = 60;
    for (uint32_t i = 0; i < kCount; ++i) sender.out += test::client_frame(kBinary, numbered(i, 3000));
    // The reader reads nothing while the sender's messages pile up toward it.
    for (int i = 0; i < 100; ++i) {
        sender.write_some(SIZE_MAX, rig.staging());
        sender.read_some(SIZE_MAX);
        rig.turn();
    }
    REQUIRE(rig.server().stats().messages_in == kCount);
    // Pings from the reader, each read by the server while its write to the reader is stuck.
    for (int k = 0; k < 3; ++k) {
        reader.out += test::client_frame(kPing, "ping" + std::to_string(k));
        reader.write_some(SIZE_MAX, rig.staging());
        rig.turn(3);
    }
    rig.settle();
    CHECK(reader.error.empty());
    INFO(reader.error);
    const auto got = data_payloads(reader);
    REQUIRE(got.size() == kCount);
    for (uint32_t i = 0; i < kCount; ++i) CHECK(got[i] == numbered(i, 3000));
    std::vector<std::string> pongs;
    for (const test::Received& f : reader.frames)
        if (f.opcode == kPong) pongs.push_back(f.payload);
    CHECK(pongs == std::vector<std::string>{"ping0", "ping1", "ping2"});
}

TEST_CASE("pressure: a member that leaves takes its share of the batch, and leaves once") {
    // A member sends small messages (batched for the room this turn) and then its close frame. On
    // leaving it takes its share of the pending batch, which is more than send_queue_bytes: the
    // slow-consumer policy applies within the leave. (The other member takes compressed messages,
    // one by one, outside the batch, so it is not overflowed too.)
    config::Config cfg = base_config();
    cfg.send_queue_bytes = 4096;
    cfg.deflate = true;
    const bool close_policy = GENERATE(true, false);
    cfg.slow_consumer = close_policy ? config::LimitAction::Close : config::LimitAction::Drop;
    INFO("slow_consumer = " << (close_policy ? "close" : "drop"));
    Rig rig(cfg, false);
    Client& other = rig.connect(false, 0, 0, "/batch", /*deflate=*/true);
    Client& leaver = rig.connect(false, 0, 0, "/batch");
    REQUIRE(rig.run_until([&] { return both_open(other, leaver); }));
    REQUIRE(other.deflate);
    REQUIRE(rig.server().hub().member_count() == 2);
    // Five 1000-byte messages (5020 bytes framed, more than send_queue_bytes) and a close, in one
    // write: the server reads them in one turn.
    for (uint32_t i = 0; i < 5; ++i) leaver.out += test::client_frame(kText, numbered(i, 1000));
    leaver.out += test::client_frame(kClose, test::close_payload(1000));
    REQUIRE(leaver.write_some(SIZE_MAX, rig.staging()) > 5000);
    rig.turn();
    // Counted once: closing within the leave used to leave a second time and count it twice.
    CHECK(rig.server().hub().member_count() == 1);
    CHECK(rig.server().hub().room_count() == 1);
    rig.settle();
    CHECK(leaver.error.empty());
    CHECK(other.error.empty());
    // The other member got the messages; the leaver one close frame and nothing else.
    const auto got = data_payloads(other);
    REQUIRE(got.size() == 5);
    for (uint32_t i = 0; i < 5; ++i) CHECK(got[i] == numbered(i, 1000));
    CHECK(other.compressed_messages == 5);
    REQUIRE(leaver.frames.size() == 1);
    CHECK(leaver.frames[0].opcode == kClose);
    if (close_policy) {
        CHECK(leaver.close_code == 1008);
        CHECK(rig.server().stats().messages_dropped_slow_consumer == 0);
    } else {
        CHECK(leaver.close_code == 1000);  // its share dropped (counted), its close answered
        CHECK(rig.server().stats().messages_dropped_slow_consumer == 5);
    }
    CHECK(leaver.eof);
    // The room still works for the one who stayed.
    other.out += test::client_frame(kText, "still here");
    REQUIRE(rig.run_until([&] { return data_payloads(other).size() == 6; }));
    CHECK(data_payloads(other).back() == "still here");
    CHECK(rig.server().hub().member_count() == 1);
}

TEST_CASE("pressure: a member that leaves with room in its queue gets the batched messages first") {
    config::Config cfg = base_config();
    Rig rig(cfg, false);
    Client& other = rig.connect(false, 0, 0, "/batch");
    Client& leaver = rig.connect(false, 0, 0, "/batch");
    REQUIRE(rig.run_until([&] { return both_open(other, leaver); }));
    for (uint32_t i = 0; i < 5; ++i) leaver.out += test::client_frame(kText, numbered(i, 100));
    leaver.out += test::client_frame(kClose, test::close_payload(1000));
    leaver.write_some(SIZE_MAX, rig.staging());
    rig.settle();
    CHECK(leaver.error.empty());
    for (const Client* c : {&other, &leaver}) {
        const auto got = data_payloads(*c);
        REQUIRE(got.size() == 5);
        for (uint32_t i = 0; i < 5; ++i) CHECK(got[i] == numbered(i, 100));
    }
    REQUIRE(leaver.close_received);
    CHECK(leaver.frames.back().opcode == kClose);
    CHECK(leaver.close_code == 1000);
    CHECK(rig.server().hub().member_count() == 1);
}

TEST_CASE("pressure: a sender closed by its own echo does not take its message from the others") {
    // A fragmented message is reassembled in the sender's connection and relayed from there. Its
    // echo does not fit the sender's queue (it is larger than send_queue_bytes; slow_consumer =
    // "close"), so the sender is closed while the room is still relaying the message: leaving used
    // to free the reassembly buffer then, and the compressed form, made lazily for the member
    // after it, was made from freed memory.
    config::Config cfg = base_config();
    cfg.send_queue_bytes = 4096;
    cfg.slow_consumer = config::LimitAction::Close;
    cfg.deflate = true;
    Rig rig(cfg, false);
    Client& sender = rig.connect(false, 0, 0, "/frag");  // first in the room: relayed to first
    Client& deflated = rig.connect(false, 0, 0, "/frag", /*deflate=*/true);
    REQUIRE(rig.run_until([&] { return both_open(sender, deflated); }));
    REQUIRE(deflated.deflate);
    const std::string msg = numbered(7, 6000);  // compresses to far less than 4096 bytes
    std::string first = test::client_frame(kText, std::string_view(msg).substr(0, 2500));
    first[0] = 0x01;  // FIN clear: the first fragment
    sender.out = first + test::client_frame(0x0, std::string_view(msg).substr(2500));  // the last
    sender.write_some(SIZE_MAX, rig.staging());
    rig.settle();
    CHECK(sender.close_code == 1008);
    CHECK(data_payloads(sender).empty());
    CHECK(deflated.error.empty());
    CHECK(data_payloads(deflated) == std::vector<std::string>{msg});
    CHECK(deflated.compressed_messages == 1);
}

TEST_CASE("pressure: a turn that brings a reading member more than send_queue_bytes does not close it") {
    // Writes wait for the end of the loop turn. A sender whose messages all arrive in one turn
    // (as they do on a loaded server, when turns are long) brings every member more than
    // send_queue_bytes before that flush. The members' sockets have room for it: they were closed
    // with 1008 nevertheless (the soak's busy rooms under ASan and load: every member at once).
    config::Config cfg = base_config();
    cfg.send_queue_bytes = 256 * 1024;
    cfg.slow_consumer = config::LimitAction::Close;
    Rig rig(cfg, false);
    Client& a = rig.connect(false, 0, 0, "/busy");
    Client& b = rig.connect(false, 0, 0, "/busy");
    Client& reader = rig.connect(false, 0, 0, "/busy");
    REQUIRE(rig.run_until([&] { return both_open(a, b) && reader.open(); }));
    // Two senders, 3 messages of 60000 bytes each (360 KB in all), written before the server
    // reads: one turn takes them all.
    for (uint32_t i = 0; i < 3; ++i) {
        a.out += test::client_frame(kBinary, numbered(i, 60000));
        b.out += test::client_frame(kBinary, numbered(100 + i, 60000));
    }
    a.write_some(SIZE_MAX, rig.staging());
    b.write_some(SIZE_MAX, rig.staging());
    REQUIRE(a.out.empty());
    REQUIRE(b.out.empty());
    rig.turn();
    REQUIRE(rig.server().stats().messages_in == 6);  // all in one turn
    rig.settle();
    for (const Client* c : {&a, &b, &reader}) {
        CHECK(c->error.empty());
        CHECK_FALSE(c->close_received);
        const auto got = data_payloads(*c);
        REQUIRE(got.size() == 6);
        std::vector<std::string> from_a, from_b;
        for (const std::string& m : got) (m.starts_with("1") && m[1] != '|' ? from_b : from_a).push_back(m);
        CHECK(from_a == std::vector<std::string>{numbered(0, 60000), numbered(1, 60000), numbered(2, 60000)});
        CHECK(from_b == std::vector<std::string>{numbered(100, 60000), numbered(101, 60000), numbered(102, 60000)});
    }
}
