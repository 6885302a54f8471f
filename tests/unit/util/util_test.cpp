// SPDX-License-Identifier: Apache-2.0
// util/: intrusive lists, socket addresses, rate limiting, byte buffers.
#include <catch2/catch.hpp>

#include <vector>

#include "util/address.h"
#include "util/byte_buffer.h"
#include "util/intrusive_list.h"
#include "util/log.h"

using namespace wsrelay::util;

namespace {
struct Node {
    explicit Node(int v) : value(v) {}
    int value;
    ListHook a;
    ListHook b;
};
using ListA = IntrusiveList<Node, &Node::a>;
using ListB = IntrusiveList<Node, &Node::b>;

std::vector<int> values(ListA& l) {
    std::vector<int> v;
    for (Node& n : l) v.push_back(n.value);
    return v;
}
}  // namespace

TEST_CASE("intrusive list: link, unlink, move, splice") {
    Node n1(1), n2(2), n3(3);
    ListA la, other;
    ListB lb;
    CHECK(la.empty());
    la.push_back(n1);
    la.push_back(n2);
    la.push_front(n3);
    lb.push_back(n2);  // a second membership through another hook
    CHECK(values(la) == std::vector<int>{3, 1, 2});
    CHECK(lb.front() == &n2);

    SECTION("unlink is O(1) from the element and idempotent") {
        ListA::erase(n1);
        ListA::erase(n1);
        CHECK_FALSE(n1.a.is_linked());
        CHECK(values(la) == std::vector<int>{3, 2});
        CHECK(lb.front() == &n2);  // other memberships untouched
    }
    SECTION("push_back of a member moves it to the end") {
        la.push_back(n3);
        CHECK(values(la) == std::vector<int>{1, 2, 3});
    }
    SECTION("splice moves everything, in order, and empties the source") {
        Node n4(4);
        other.push_back(n4);
        other.splice_back(la);
        CHECK(la.empty());
        std::vector<int> v;
        while (Node* n = other.pop_front()) v.push_back(n->value);
        CHECK(v == std::vector<int>{4, 3, 1, 2});
    }
    la.clear();
    other.clear();
    lb.clear();
}

TEST_CASE("socket addresses parse and format") {
    const std::pair<const char*, const char*> good[] = {
        {"127.0.0.1:8080", "127.0.0.1:8080"}, {"0.0.0.0:0", "0.0.0.0:0"},   {"[::1]:443", "[::1]:443"},
        {"[::]:80", "[::]:80"},               {"[fe80::1]:1", "[fe80::1]:1"}, {"[::ffff:10.0.0.1]:5", "10.0.0.1:5"},
    };
    for (const auto& [text, shown] : good) {
        INFO(text);
        const auto a = parse_socket_address(text);
        REQUIRE(a);
        CHECK(format_socket_address(*a) == shown);
    }
    for (const auto& [text, shown] : good) {
        // What a connection keeps instead of its text (IpKey, port, family) gives the same text.
        INFO("kept: " << text);
        const auto a = parse_socket_address(text);
        REQUIRE(a);
        CHECK(std::string(format_peer(ip_key(a->get()), port_of(a->get()), a->family()).c_str()) == shown);
    }
    for (const char* bad : {"", "8080", "localhost:80", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1",
                            "::1:80", "[::1]80", "[::1]:", "[1.2.3.4]:80", "1.2.3.4:80x", "[::1:80"}) {
        INFO(bad);
        CHECK_FALSE(parse_socket_address(bad));
    }
    CHECK(std::string(format_peer(IpKey{}, 0, AF_UNIX).c_str()) == "unix");
    CHECK(std::string(format_peer(IpKey{}, 0, AF_UNSPEC).c_str()) == "?");
    CHECK(std::string(AddressText{}.c_str()).empty());  // a log line without a peer
}

TEST_CASE("rate limit passes a burst per interval and counts the rest") {
    RateLimit rl(1000, 2);
    uint64_t suppressed = 99;
    CHECK(rl.allow(10'000, suppressed));
    CHECK(suppressed == 0);
    CHECK(rl.allow(10'100, suppressed));
    CHECK_FALSE(rl.allow(10'200, suppressed));
    CHECK_FALSE(rl.allow(10'900, suppressed));
    CHECK(rl.allow(11'000, suppressed));
    CHECK(suppressed == 2);
}

TEST_CASE("byte buffer grows, keeps content and frees on release") {
    ByteBuffer b;
    std::vector<std::byte> chunk(300, std::byte{7});
    b.append(chunk);
    b.append(chunk);
    CHECK(b.size() == 600);
    CHECK(b.span()[599] == std::byte{7});
    b.assign(std::span(chunk).first(3));
    CHECK(b.size() == 3);
    b.release();
    CHECK(b.empty());
    CHECK(b.span().data() == nullptr);
}

TEST_CASE("log levels parse by name") {
    CHECK(parse_log_level("debug") == LogLevel::Debug);
    CHECK(parse_log_level("err") == LogLevel::Err);
    CHECK_FALSE(parse_log_level("verbose"));
    for (auto l : {LogLevel::Err, LogLevel::Warning, LogLevel::Notice, LogLevel::Info, LogLevel::Debug})
        CHECK(parse_log_level(log_level_name(l)) == l);
}

TEST_CASE("a bound socket covers the configured address: same port and host, or wildcards") {
    auto a = [](const char* t) { return *parse_socket_address(t); };
    CHECK(address_covers(a("0.0.0.0:80"), a("[::]:80")));  // dual-stack socket from systemd
    CHECK(address_covers(a("[::]:80"), a("0.0.0.0:80")));
    CHECK(address_covers(a("127.0.0.1:80"), a("127.0.0.1:80")));
    CHECK(address_covers(a("[::1]:443"), a("[::1]:443")));
    CHECK_FALSE(address_covers(a("0.0.0.0:80"), a("[::]:443")));
    CHECK_FALSE(address_covers(a("127.0.0.1:80"), a("0.0.0.0:80")));
    CHECK_FALSE(address_covers(a("127.0.0.1:80"), a("127.0.0.2:80")));
    CHECK_FALSE(address_covers(a("127.0.0.1:80"), a("[::1]:80")));
}
