// SPDX-License-Identifier: Apache-2.0
// io/: the byte transport over real socket pairs, plain and TLS (a throwaway in-memory certificate):
// data integrity at every size and buffer placement, the "drained" promise that lets callers skip
// the read that would only say EAGAIN, end-of-stream with and without close_notify, a broken pipe
// as an error value, and the placement rule that keeps libc's copies out of AMD's slow case.
#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "io/transport.h"
#include "self_signed.h"

using namespace wsrelay::io;

namespace {

// A self-signed certificate for the server side; the client does not verify it.
SslCtxPtr server_context() {
    const wsrelay::test::SelfSigned s = wsrelay::test::self_signed();
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    REQUIRE(SSL_CTX_use_certificate(ctx.get(), s.cert.get()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(ctx.get(), s.key.get()) == 1);
    // The same modes as the daemon's contexts (io/tls_context.cpp).
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx.get(), 1);
    return ctx;
}

SslCtxPtr client_context() {
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

struct Pair {
    Transport server;
    Transport client;
};

// A connected pair of non-blocking stream sockets wrapped in transports; TLS pairs are handshaken.
Pair make_pair(bool tls) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    if (!tls) return {Transport(UniqueFd(fds[0])), Transport(UniqueFd(fds[1]))};
    static const SslCtxPtr server_ctx = server_context();
    static const SslCtxPtr client_ctx = client_context();
    SslPtr s(SSL_new(server_ctx.get()));
    SslPtr c(SSL_new(client_ctx.get()));
    SSL_set_accept_state(s.get());
    SSL_set_connect_state(c.get());
    Pair p{Transport(UniqueFd(fds[0]), std::move(s)), Transport(UniqueFd(fds[1]), std::move(c))};
    // Drive both sides with zero-length reads until both finished (bounded).
    std::byte sink[1];
    for (int round = 0; round < 100 && !(p.server.handshake_done() && p.client.handshake_done()); ++round) {
        const IoResult a = p.client.read({sink, 0});
        const IoResult b = p.server.read({sink, 0});
        REQUIRE(a.status != IoStatus::Error);
        REQUIRE(b.status != IoStatus::Error);
    }
    REQUIRE(p.server.handshake_done());
    REQUIRE(p.client.handshake_done());
    return p;
}

std::vector<std::byte> pattern(size_t n, uint8_t seed) {
    std::vector<std::byte> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
    return v;
}

std::vector<std::byte> staging() { return std::vector<std::byte>(Transport::kStagingBytes); }

// Writes all of `data` as one iovec, reading on the other side whenever the socket is full.
// Returns what `to` received; both loops are bounded.
std::vector<std::byte> transfer(Transport& from, Transport& to, std::span<const std::byte> data, size_t read_chunk = 65536) {
    std::vector<std::byte> stage = staging();
    std::vector<std::byte> got;
    std::vector<std::byte> buf(read_chunk + 4096);
    size_t sent = 0;
    auto drain = [&] {
        for (int i = 0; i < 100000; ++i) {
            std::byte* const at = buf.data() + to.read_skew(buf.data());
            const IoResult r = to.read({at, read_chunk});
            if (r.status != IoStatus::Ok) {
                REQUIRE(r.status == IoStatus::WouldBlock);
                return;
            }
            got.insert(got.end(), at, at + r.bytes);
            if (r.drained) return;
        }
    };
    for (int i = 0; i < 100000 && sent < data.size(); ++i) {
        const iovec iov{const_cast<std::byte*>(data.data() + sent), data.size() - sent};
        const IoResult w = from.writev({&iov, 1}, stage);
        if (w.status == IoStatus::Ok) sent += w.bytes;
        else REQUIRE(w.status == IoStatus::WouldBlock);
        drain();
    }
    REQUIRE(sent == data.size());
    for (int i = 0; i < 100 && got.size() < data.size(); ++i) drain();
    return got;
}

}  // namespace

TEST_CASE("alias_free_skew puts our buffer half a page from theirs") {
    alignas(4096) static std::byte page[8192];
    for (size_t ours = 0; ours < 4096; ours += 7) {
        for (size_t theirs = 0; theirs < 4096; theirs += 13) {
            const size_t skew = alias_free_skew(page + ours, theirs);
            REQUIRE(skew < 4096);
            const size_t distance = (ours + skew + 4096 - theirs) % 4096;
            REQUIRE(distance == 2048);
        }
    }
}

TEST_CASE("transport moves data intact, plain and TLS, at every size class") {
    for (const bool tls : {false, true}) {
        Pair p = make_pair(tls);
        INFO("tls=" << tls);
        for (const size_t n : {1u, 2u, 125u, 1024u, 2047u, 2048u, 4096u, 8200u, 16383u, 16384u, 16385u, 65536u, 300000u}) {
            INFO("size=" << n);
            const std::vector<std::byte> data = pattern(n, static_cast<uint8_t>(n));
            CHECK(transfer(p.client, p.server, data) == data);
            CHECK(transfer(p.server, p.client, data) == data);
        }
    }
}

TEST_CASE("TLS writes gather small buffers into one record and keep them in order") {
    Pair p = make_pair(true);
    std::vector<std::vector<std::byte>> parts;
    std::vector<iovec> iov;
    std::vector<std::byte> expected;
    for (size_t i = 0; i < 40; ++i) {
        parts.push_back(pattern(300 + i, static_cast<uint8_t>(i)));
        expected.insert(expected.end(), parts.back().begin(), parts.back().end());
    }
    for (auto& part : parts) iov.push_back({part.data(), part.size()});
    std::vector<std::byte> stage = staging();
    // One call takes at most one record's worth (16 KiB); the 40 parts (12780 bytes) fit in one.
    const IoResult w = p.client.writev(iov, stage);
    REQUIRE(w.status == IoStatus::Ok);
    CHECK(w.bytes == expected.size());
    std::vector<std::byte> buf(65536);
    const IoResult r = p.server.read(buf);
    REQUIRE(r.status == IoStatus::Ok);
    CHECK(r.bytes == expected.size());  // one record: one read returns all of it
    CHECK(r.drained);
    CHECK(std::vector<std::byte>(buf.begin(), buf.begin() + static_cast<long>(r.bytes)) == expected);
}

TEST_CASE("drained: set only when the next read would block") {
    for (const bool tls : {false, true}) {
        INFO("tls=" << tls);
        Pair p = make_pair(tls);
        std::vector<std::byte> stage = staging();
        std::vector<std::byte> buf(65536);

        SECTION("one short message: drained, and the next read would block") {
            const std::vector<std::byte> msg = pattern(100, 1);
            const iovec iov{const_cast<std::byte*>(msg.data()), msg.size()};
            REQUIRE(p.client.writev({&iov, 1}, stage).bytes == msg.size());
            const IoResult r = p.server.read(buf);
            REQUIRE(r.status == IoStatus::Ok);
            CHECK(r.bytes == 100);
            CHECK(r.drained);
            CHECK(p.server.read(buf).status == IoStatus::WouldBlock);
        }
        SECTION("more than the buffer holds: not drained until the last piece") {
            const std::vector<std::byte> msg = pattern(40000, 2);
            size_t sent = 0;
            while (sent < msg.size()) {
                const iovec iov{const_cast<std::byte*>(msg.data() + sent), msg.size() - sent};
                const IoResult w = p.client.writev({&iov, 1}, stage);
                REQUIRE(w.status == IoStatus::Ok);
                sent += w.bytes;
            }
            size_t got = 0;
            int reads = 0;
            bool drained = false;
            while (!drained && reads < 1000) {
                // 999 does not divide 40000: the last read is short. (A read that exactly empties
                // the socket cannot know it did: "not drained" only means "read again".)
                const IoResult r = p.server.read(std::span(buf).first(999));
                REQUIRE(r.status == IoStatus::Ok);
                got += r.bytes;
                drained = r.drained;
                ++reads;
                if (!drained) CHECK(got < msg.size());  // never "not drained" with nothing left
            }
            CHECK(drained);
            CHECK(got == msg.size());
            CHECK(reads >= 40);
            CHECK(p.server.read(buf).status == IoStatus::WouldBlock);
        }
    }
}

TEST_CASE("TLS: two records in the socket are both read before drained is said") {
    Pair p = make_pair(true);
    std::vector<std::byte> stage = staging();
    const std::vector<std::byte> a = pattern(100, 3), b = pattern(200, 4);
    const iovec ia{const_cast<std::byte*>(a.data()), a.size()};
    const iovec ib{const_cast<std::byte*>(b.data()), b.size()};
    REQUIRE(p.client.writev({&ia, 1}, stage).bytes == a.size());  // one record each
    REQUIRE(p.client.writev({&ib, 1}, stage).bytes == b.size());
    std::vector<std::byte> buf(65536);
    const IoResult r1 = p.server.read(buf);  // read-ahead takes both records off the socket
    REQUIRE(r1.status == IoStatus::Ok);
    CHECK(r1.bytes == 100);
    CHECK_FALSE(r1.drained);  // the second record waits inside OpenSSL
    const IoResult r2 = p.server.read(buf);
    REQUIRE(r2.status == IoStatus::Ok);
    CHECK(r2.bytes == 200);
    CHECK(r2.drained);
}

TEST_CASE("end of stream: close_notify, a bare FIN, and a reset") {
    SECTION("TLS close_notify then FIN is a clean end") {
        Pair p = make_pair(true);
        p.client.shutdown_write();
        std::vector<std::byte> buf(1024);
        CHECK(p.server.read(buf).status == IoStatus::Eof);
        CHECK(p.server.tls_error().empty());
    }
    SECTION("TLS FIN without close_notify is an end, and says so") {
        Pair p = make_pair(true);
        ::shutdown(p.client.fd(), SHUT_WR);
        std::vector<std::byte> buf(1024);
        CHECK(p.server.read(buf).status == IoStatus::Eof);
        CHECK(p.server.tls_error() == "connection closed without close_notify");
    }
    SECTION("plain FIN") {
        Pair p = make_pair(false);
        p.client.shutdown_write();
        std::vector<std::byte> buf(1024);
        CHECK(p.server.read(buf).status == IoStatus::Eof);
    }
}

TEST_CASE("writing to a closed peer is an error value, never SIGPIPE") {
    for (const bool tls : {false, true}) {
        INFO("tls=" << tls);
        Pair p = make_pair(tls);
        p.client.close();
        std::vector<std::byte> stage = staging();
        const std::vector<std::byte> msg = pattern(5000, 5);
        const iovec iov{const_cast<std::byte*>(msg.data()), msg.size()};
        // SIGPIPE's default action would end this test process: reaching the CHECK is the test.
        const IoResult w = p.server.writev({&iov, 1}, stage);
        CHECK(w.status == IoStatus::Error);
        CHECK(w.error == EPIPE);
    }
}

TEST_CASE("a moved transport keeps its TLS session working") {
    Pair p = make_pair(true);
    Transport moved(std::move(p.server));
    Transport assigned(UniqueFd{});
    assigned = std::move(moved);
    const std::vector<std::byte> data = pattern(20000, 6);
    CHECK(transfer(p.client, assigned, data) == data);
    CHECK(transfer(assigned, p.client, data) == data);
}
