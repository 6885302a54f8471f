// SPDX-License-Identifier: Apache-2.0
// cluster/: the envelope one instance publishes on a room's Redis channel, and the channel names.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cluster/envelope.h"

using namespace wsrelay;
using cluster::decode_envelope;
using cluster::EnvelopeWriter;
using proto::Opcode;

namespace {

std::span<const std::byte> bytes_of(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }
std::string text_of(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

std::string envelope(std::string_view node, std::initializer_list<std::pair<uint8_t, std::string>> messages) {
    std::string e = "WSR1";
    e.push_back(static_cast<char>(node.size()));
    e += node;
    for (const auto& [op, payload] : messages) {
        e.push_back(static_cast<char>(op));
        const auto n = static_cast<uint32_t>(payload.size());
        e.push_back(static_cast<char>(n >> 24));
        e.push_back(static_cast<char>(n >> 16));
        e.push_back(static_cast<char>(n >> 8));
        e.push_back(static_cast<char>(n));
        e += payload;
    }
    return e;
}

}  // namespace

TEST_CASE("cluster: channel names carry the room path as it is") {
    CHECK(cluster::channel_for("wsrelay:", "/lobby") == "wsrelay:room:/lobby");
    CHECK(cluster::channel_for("", "/a b/ü") == "room:/a b/ü");
    CHECK(cluster::room_of("wsrelay:", "wsrelay:room:/lobby") == "/lobby");
    CHECK(cluster::room_of("wsrelay:", "wsrelay:room:/a:room:/b") == "/a:room:/b");
    CHECK(cluster::room_of("", "room:/x") == "/x");
    for (const char* other : {"wsrelay:room:", "other:room:/lobby", "wsrelay:/lobby", "wsrelay:rooms/x", "", "wsrelay:"})
        CHECK(cluster::room_of("wsrelay:", other).empty());
}

TEST_CASE("cluster: an envelope carries the node id and the turn's messages, in order, binary-safe") {
    EnvelopeWriter w;
    w.start("host-a:4242");
    const std::string bin("\0\xff\x01 binary", 10);
    w.add(Opcode::Text, bytes_of("héllo"));
    w.add(Opcode::Binary, bytes_of(bin));
    w.add(Opcode::Text, bytes_of(""));
    CHECK(w.messages() == 3);
    CHECK(w.bytes() == envelope("host-a:4242", {{1, "héllo"}, {2, bin}, {1, ""}}));
    const auto e = decode_envelope(bytes_of(w.bytes()), 1 << 20);
    REQUIRE(e.ok);
    CHECK(e.node_id == "host-a:4242");
    REQUIRE(e.messages.size() == 3);
    CHECK(e.messages[0].op == Opcode::Text);
    CHECK(text_of(e.messages[0].payload) == "héllo");
    CHECK(e.messages[1].op == Opcode::Binary);
    CHECK(text_of(e.messages[1].payload) == bin);
    CHECK(e.messages[2].payload.empty());
    // The writer is reused turn after turn.
    w.clear();
    CHECK(w.empty());
    w.start("b");
    w.add(Opcode::Binary, bytes_of("x"));
    CHECK(w.bytes() == envelope("b", {{2, "x"}}));
}

TEST_CASE("cluster: a large message and the size limit") {
    const std::string big(1 << 20, 'z');
    const std::string e = envelope("n", {{2, big}});
    CHECK(decode_envelope(bytes_of(e), 1 << 20).ok);
    const auto over = decode_envelope(bytes_of(e), (1 << 20) - 1);
    CHECK_FALSE(over.ok);
    CHECK(over.error == "a message over max_message_bytes");
}

TEST_CASE("cluster: what a corrupt or hostile Redis may send is refused, whole") {
    struct Case {
        std::string bytes;
        std::string_view error;
    };
    const std::string good = envelope("n", {{1, "ok"}, {2, "fine"}});
    const Case cases[] = {
        {"", "not a wsrelay envelope"},
        {"WSR", "not a wsrelay envelope"},
        {"WSR2" + good.substr(4), "not a wsrelay envelope"},
        {"plain text someone published", "not a wsrelay envelope"},
        {std::string("WSR1\x05") + "ab", "truncated node id"},
        {envelope("node", {}), "no messages"},
        {good.substr(0, good.size() - 1), "truncated message"},
        {good + std::string("\x01\x00\x00", 3), "truncated message header"},
        {envelope("n", {{0, "continuation"}}), "a message that is neither text nor binary"},
        {envelope("n", {{8, "close"}}), "a message that is neither text nor binary"},
        {envelope("n", {{9, "ping"}}), "a message that is neither text nor binary"},
        {envelope("n", {{1, "ok"}, {1, "\xc3\x28"}}), "a text message that is not UTF-8"},
        {envelope("n", {{1, "\xed\xa0\x80"}}), "a text message that is not UTF-8"},  // a surrogate
        {std::string("WSR1\x01n\x02\xff\xff\xff\xff", 11) + "short", "a message over max_message_bytes"},
    };
    for (const Case& c : cases) {
        INFO(c.error);
        const auto e = decode_envelope(bytes_of(c.bytes), 1 << 20);
        CHECK_FALSE(e.ok);
        CHECK(e.error == c.error);
        CHECK(e.messages.empty());  // nothing of a bad envelope is delivered
    }
    // Binary may be anything; invalid UTF-8 is fine there.
    CHECK(decode_envelope(bytes_of(envelope("n", {{2, "\xc3\x28"}})), 100).ok);
}

TEST_CASE("cluster: a node id longer than 255 bytes is cut, and still decodes") {
    EnvelopeWriter w;
    w.start(std::string(300, 'n'));
    w.add(Opcode::Text, bytes_of("m"));
    const auto e = decode_envelope(bytes_of(w.bytes()), 10);
    REQUIRE(e.ok);
    CHECK(e.node_id == std::string(255, 'n'));
}
