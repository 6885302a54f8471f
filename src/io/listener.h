// SPDX-License-Identifier: Apache-2.0
// A listening socket in the reactor. On readiness it accepts until EAGAIN (edge-triggered: stopping
// early would leave connections waiting for an edge that never comes). On EMFILE/ENFILE it pauses
// itself; the owner calls resume() from a timer, which accepts whatever queued up meanwhile.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <string>
#include <vector>

#include "io/event_loop.h"
#include "io/unique_fd.h"
#include "util/address.h"

namespace wsrelay::io {

class Listener final : public Pollable {
public:
    // Called for each accepted connection (non-blocking, close-on-exec).
    using AcceptFn = std::function<void(UniqueFd fd, const sockaddr_storage& peer, socklen_t peer_len)>;
    // Called when accept() fails with EMFILE/ENFILE/ENOBUFS/ENOMEM; the listener is paused.
    using ExhaustedFn = std::function<void(int error)>;

    Listener(UniqueFd fd, std::string local_address, AcceptFn on_accept, ExhaustedFn on_exhausted);

    int fd() const noexcept { return fd_.get(); }
    const std::string& local_address() const noexcept { return local_address_; }
    bool paused() const noexcept { return paused_; }

    void on_event(uint32_t events) override;
    void resume() { paused_ = false; accept_all(); }
    // Stops listening for good (shutdown): the socket is closed, queued connections are refused.
    void close() noexcept { fd_.reset(); }

private:
    void accept_all();

    UniqueFd fd_;
    std::string local_address_;
    AcceptFn on_accept_;
    ExhaustedFn on_exhausted_;
    bool paused_ = false;
};

// Creates, binds and listens on `address`. IPv6 sockets are IPV6_V6ONLY so "[::]:80" and
// "0.0.0.0:80" can both be configured. `reuse_port`: SO_REUSEPORT, so that bind_sibling() can
// add more sockets on the same address. Throws std::runtime_error naming the address and the error.
UniqueFd bind_listener(const util::SocketAddress& address, bool reuse_port = false);

// Whether `fd` has SO_REUSEPORT set (ours, or systemd's ReusePort=yes).
bool has_reuse_port(int fd) noexcept;

// Another listening socket on the local address of `fd` (which has SO_REUSEPORT), with the same
// options: the kernel then spreads new connections between the two by a hash of the peer's
// address and port. Throws std::runtime_error naming the address and the error (EACCES: a port
// below 1024 without CAP_NET_BIND_SERVICE; EADDRINUSE: `fd` has no SO_REUSEPORT, or another user's).
UniqueFd bind_sibling(int fd);

// The socket's own address as text (for a socket bound to port 0, the port the kernel chose).
std::string local_address_of(int fd);

// Sockets passed by the service manager (LISTEN_FDS/LISTEN_PID, `sd_listen_fds_with_names`), made
// non-blocking. Throws if one is not a listening stream socket. Empty when not socket-activated.
struct InheritedSocket {
    UniqueFd fd;
    std::string name;  // FileDescriptorName=, or "unknown"
};
std::vector<InheritedSocket> inherited_sockets();

}  // namespace wsrelay::io
