// SPDX-License-Identifier: Apache-2.0
// relay/: the outbound queue and the HTTP path rules (the parts that need no sockets).
#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "relay/http.h"
#include "relay/outbound_queue.h"
#include "relay/stats.h"

using namespace wsrelay::relay;

namespace {
std::string pending(const OutboundQueue& q) {
    iovec iov[64];
    const size_t n = q.fill_iov(iov, 64);
    std::string s;
    for (size_t i = 0; i < n; ++i) s.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    return s;
}
}  // namespace

TEST_CASE("outbound queue: partial writes resume exactly where they stopped") {
    OutboundQueue q;
    q.push_back(Frame::copy_of("hello "));
    q.push_back(Frame::copy_of("world"));
    CHECK(q.bytes() == 11);
    q.consume(3);
    CHECK(pending(q) == "lo world");
    CHECK(q.mid_frame());
    q.consume(3);
    CHECK(pending(q) == "world");
    CHECK_FALSE(q.mid_frame());
    q.consume(5);
    CHECK(q.empty());
    CHECK(q.bytes() == 0);
}

TEST_CASE("outbound queue: control frames go ahead only at a frame boundary, in order") {
    OutboundQueue q;
    q.push_back(Frame::copy_of("AAAA"));
    q.push_back(Frame::copy_of("BBBB"));
    SECTION("nothing written yet: first") {
        q.push_priority(Frame::copy_of("p1"));
        q.push_priority(Frame::copy_of("p2"));
        CHECK(pending(q) == "p1p2AAAABBBB");
    }
    SECTION("head partly written: right after the head") {
        q.consume(2);
        q.push_priority(Frame::copy_of("p1"));
        q.push_priority(Frame::copy_of("p2"));
        CHECK(pending(q) == "AAp1p2BBBB");
        q.consume(4);  // "AA" and "p1"
        q.push_priority(Frame::copy_of("p3"));
        CHECK(pending(q) == "p2p3BBBB");
    }
    SECTION("bytes pinned by a write to retry stay in front (TLS after WANT_WRITE)") {
        q.push_back(Frame::copy_of("CCCC"));
        q.pin(6);  // "AAAA" and half of "BBBB" are in an encrypted record that must go out as it is
        q.push_priority(Frame::copy_of("p1"));
        CHECK(pending(q) == "AAAABBBBp1CCCC");
        q.consume(3);  // part of the retried record: still pinned up to the end of "BBBB"
        q.push_priority(Frame::copy_of("p2"));
        CHECK(pending(q) == "ABBBBp1p2CCCC");
        q.consume(5);  // the retried write is done
        q.push_priority(Frame::copy_of("p3"));
        CHECK(pending(q) == "p1p2p3CCCC");
    }
    SECTION("a pin that ends on a frame boundary") {
        q.pin(4);
        q.push_priority(Frame::copy_of("p1"));
        CHECK(pending(q) == "AAAAp1BBBB");
    }
    SECTION("the same frame is shared, not copied") {
        const FramePtr f = Frame::copy_of("shared");
        OutboundQueue q2;
        q2.push_back(f);
        q.push_back(f);
        iovec a[64], b[64];
        const size_t na = q.fill_iov(a, 64), nb = q2.fill_iov(b, 64);
        CHECK(a[na - 1].iov_base == b[nb - 1].iov_base);
    }
}

TEST_CASE("frames: server frames are unmasked with minimal lengths") {
    const std::string payload(300, 'x');
    const FramePtr f = Frame::encode(wsrelay::proto::Opcode::Text,
                                     std::as_bytes(std::span(payload.data(), payload.size())));
    REQUIRE(f->size() == 304);
    CHECK(f->bytes()[0] == std::byte{0x81});
    CHECK(f->bytes()[1] == std::byte{126});
    const FramePtr c = Frame::close(1001, "bye");
    CHECK(c->size() == 2 + 2 + 3);
    CHECK(c->bytes()[0] == std::byte{0x88});
}

TEST_CASE("http: unsafe paths are refused, safe ones decoded") {
    std::string out;
    const std::pair<const char*, const char*> good[] = {
        {"/", ""}, {"/index.html", "index.html"}, {"/a/b.css", "a/b.css"}, {"/sub/", "sub"},
        {"/%41.txt", "A.txt"}, {"/caf%C3%A9", "caf\xC3\xA9"}, {"/..a", "..a"},
    };
    for (const auto& [raw, want] : good) {
        INFO(raw);
        REQUIRE(decode_safe_path(raw, out));
        CHECK(out == want);
    }
    for (const char* bad : {"", "x", "/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x", "/%2E%2E/x", "/a%2f..%2fx",
                            "/a%2Fb", "//etc/passwd", "/a//b", "/..%5c", "/a\\b", "/%00", "/a%0", "/%zz", "/./a"}) {
        INFO(bad);
        CHECK_FALSE(decode_safe_path(bad, out));
    }
}

TEST_CASE("http: content types by extension") {
    CHECK(content_type_for("/index.html") == "text/html; charset=utf-8");
    CHECK(content_type_for("/chat.js") == "text/javascript; charset=utf-8");
    CHECK(content_type_for("/chat.css") == "text/css; charset=utf-8");
    CHECK(content_type_for("/favicon.svg") == "image/svg+xml");
    CHECK(content_type_for("/data.json") == "application/json");
    CHECK(content_type_for("/blob") == "application/octet-stream");
}

TEST_CASE("http: the embedded chat page is compiled in") {
    bool has_index = false;
    for (const EmbeddedFile& f : embedded_files()) has_index = has_index || f.path == "/index.html";
    CHECK(has_index);
}

TEST_CASE("metrics: a worker's samples carry worker=\"N\", first among their labels") {
    wsrelay::relay::Stats s;
    s.cluster = true;
    s.closes[0] = 7;
    const std::string plain = wsrelay::relay::render_metrics(s, 3, 2, 1);
    CHECK(plain.find("worker=") == std::string::npos);
    s.worker = "2";
    const std::string labelled = wsrelay::relay::render_metrics(s, 3, 2, 1);
    // Same lines, one for one: comments as they were, every sample with the label.
    std::istringstream a(plain), b(labelled);
    std::string la, lb;
    size_t samples = 0;
    while (std::getline(a, la)) {
        REQUIRE(std::getline(b, lb));
        if (la.starts_with("#")) {
            CHECK(lb == la);
            continue;
        }
        ++samples;
        const auto name_end = la.find_first_of("{ ");
        const std::string name = la.substr(0, name_end);
        if (la[name_end] == '{')
            CHECK(lb == name + "{worker=\"2\"," + la.substr(name_end + 1));
        else
            CHECK(lb == name + "{worker=\"2\"}" + la.substr(name_end));
    }
    CHECK_FALSE(std::getline(b, lb));
    CHECK(samples > 20);
    CHECK(labelled.find("wsrelay_connections{worker=\"2\"} 3\n") != std::string::npos);
    CHECK(labelled.find("wsrelay_closes_total{worker=\"2\",code=\"1000\"} 7\n") != std::string::npos);
    CHECK(labelled.find("wsrelay_cluster_link_up{worker=\"2\"} 0\n") != std::string::npos);
}
