// SPDX-License-Identifier: Apache-2.0
// Fuzz target: arbitrary bytes into a whole connection's state machine, through a real (AF_UNIX)
// socket, cut into pieces the way reads cut them. Exercises the HTTP request path, the upgrade,
// frame decoding, message reassembly, the broadcast into the connection's room (echo), control
// frames, closing, and the output queue — everything but TLS and timers.
//
// The first input byte picks the split pattern and whether a second, well-behaved member sits in
// the room "/fuzz" (then seeds that upgrade to "/fuzz" exercise fan-out to another connection).
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "config/config.h"
#include "fuzz_split.h"
#include "io/event_loop.h"
#include "relay/server.h"
#include "util/log.h"

namespace {

using namespace wsrelay;

sockaddr_storage fake_peer() {
    sockaddr_storage s{};
    auto* in = reinterpret_cast<sockaddr_in*>(&s);
    in->sin_family = AF_INET;
    in->sin_port = htons(1);
    in->sin_addr.s_addr = htonl(0x7F000001);
    return s;
}

// Reads and drops whatever the server sent, so its queue keeps moving.
void drain(int fd) {
    char buf[65536];
    while (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {}
}

// Writes all of `data`, letting the server run whenever the socket is full.
void send_all(int fd, const uint8_t* data, size_t n, relay::Server& server, int peer_fd) {
    size_t off = 0;
    for (int stalls = 0; off < n && stalls < 64;) {
        const ssize_t w = ::send(fd, data + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            off += static_cast<size_t>(w);
            continue;
        }
        if (w < 0 && errno != EAGAIN) return;  // the server closed us
        ++stalls;
        server.turn(0);
        drain(fd);
        drain(peer_fd);
    }
}

int socketpair_nb(int fds[2]) { return ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds); }

constexpr char kObserverUpgrade[] =
    "GET /fuzz HTTP/1.1\r\nHost: f\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    util::set_log_level(util::LogLevel::Err);  // peer faults log at info/debug: keep the run quiet
    if (size == 0) return 0;
    const uint8_t control = data[0];
    ++data, --size;

    config::Config cfg = config::default_config();
    cfg.max_message_bytes = 1 << 16;  // small limits: reach 1009 and 431 quickly
    cfg.send_queue_bytes = 1 << 18;
    cfg.max_header_bytes = 2048;
    cfg.max_header_count = 16;
    cfg.message_rate = 0;
    io::EventLoop loop;
    relay::Server server(loop, cfg, {}, nullptr);

    int fuzz_fds[2], observer_fds[2] = {-1, -1};
    if (socketpair_nb(fuzz_fds) != 0) return 0;
    const sockaddr_storage peer = fake_peer();
    if (control & 0x40) {
        if (socketpair_nb(observer_fds) != 0) return 0;
        server.accept_connection(io::UniqueFd(observer_fds[0]), peer, sizeof(sockaddr_in), false);
        ::send(observer_fds[1], kObserverUpgrade, sizeof kObserverUpgrade - 1, MSG_NOSIGNAL);
        server.turn(0);
    }
    server.accept_connection(io::UniqueFd(fuzz_fds[0]), peer, sizeof(sockaddr_in), false);
    const int drain_fd = observer_fds[1] >= 0 ? observer_fds[1] : fuzz_fds[1];

    size_t start = 0;
    for (const size_t end : fuzz::split_points(control, size)) {
        send_all(fuzz_fds[1], data + start, end - start, server, drain_fd);
        start = end;
        server.turn(0);
        drain(fuzz_fds[1]);
        drain(drain_fd);
    }
    // The peer goes away (EOF), or the server shuts down (close 1001 to everyone), by the control bit.
    if (control & 0x80) server.begin_shutdown("fuzz");
    else ::shutdown(fuzz_fds[1], SHUT_WR);
    for (int i = 0; i < 8; ++i) {
        if (!server.turn(0)) break;
        drain(fuzz_fds[1]);
        drain(drain_fd);
    }
    ::close(fuzz_fds[1]);
    if (observer_fds[1] >= 0) ::close(observer_fds[1]);
    for (int i = 0; i < 4 && server.turn(0); ++i) {}
    return 0;
}
