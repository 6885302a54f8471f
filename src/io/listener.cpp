// SPDX-License-Identifier: Apache-2.0
#include "io/listener.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace wsrelay::io {

Listener::Listener(UniqueFd fd, std::string local_address, AcceptFn on_accept, ExhaustedFn on_exhausted)
    : fd_(std::move(fd)),
      local_address_(std::move(local_address)),
      on_accept_(std::move(on_accept)),
      on_exhausted_(std::move(on_exhausted)) {}

void Listener::on_event(uint32_t /*events*/) {
    if (!paused_) accept_all();
}

void Listener::accept_all() {
    while (fd_) {
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        const int c = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
            on_accept_(UniqueFd(c), peer, len);
            continue;
        }
        switch (errno) {
            case EINTR:
            case ECONNABORTED:  // the peer gave up while queued; the next one may be fine
            case EPROTO:
            case EPERM:  // a firewall rule refused this one
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                // Out of descriptors or memory. Retrying now would spin; returning without a
                // resume would stall for good (no new edge comes while the backlog is non-empty).
                paused_ = true;
                on_exhausted_(errno);
                return;
            default:  // EAGAIN, or an error of the listening socket itself
                return;
        }
    }
}

UniqueFd bind_listener(const util::SocketAddress& address, bool reuse_port) {
    const std::string where = util::format_socket_address(address);
    UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) throw std::runtime_error("socket for " + where + ": " + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        throw std::runtime_error("SO_REUSEPORT for " + where + ": " + std::strerror(errno));
    if (address.family() == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd.get(), address.get(), address.length) != 0)
        throw std::runtime_error("bind " + where + ": " + std::strerror(errno));
    if (::listen(fd.get(), SOMAXCONN) != 0) throw std::runtime_error("listen " + where + ": " + std::strerror(errno));
    return fd;
}

bool has_reuse_port(int fd) noexcept {
    int on = 0;
    socklen_t len = sizeof on;
    return ::getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, &len) == 0 && on != 0;
}

UniqueFd bind_sibling(int fd) {
    util::SocketAddress address;
    address.length = sizeof address.storage;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0)
        throw std::runtime_error(std::string("getsockname: ") + std::strerror(errno));
    int v6only = 0;
    socklen_t len = sizeof v6only;
    if (address.family() == AF_INET6) ::getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
    const std::string where = util::format_socket_address(address);
    UniqueFd sibling(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sibling) throw std::runtime_error("socket for " + where + ": " + std::strerror(errno));
    const int one = 1;
    ::setsockopt(sibling.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(sibling.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (address.family() == AF_INET6) ::setsockopt(sibling.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    if (::bind(sibling.get(), address.get(), address.length) != 0)
        throw std::runtime_error("bind " + where + " (SO_REUSEPORT): " + std::strerror(errno));
    if (::listen(sibling.get(), SOMAXCONN) != 0)
        throw std::runtime_error("listen " + where + ": " + std::strerror(errno));
    return sibling;
}

std::string local_address_of(int fd) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
    return util::format_socket_address(reinterpret_cast<sockaddr*>(&a), len);
}

std::vector<InheritedSocket> inherited_sockets() {
    char** names = nullptr;
    const int n = sd_listen_fds_with_names(1, &names);  // 1: unset LISTEN_* so children don't see them
    if (n < 0) throw std::runtime_error(std::string("socket activation: ") + std::strerror(-n));
    std::vector<InheritedSocket> out;
    for (int i = 0; i < n; ++i) {
        const int fd = SD_LISTEN_FDS_START + i;
        InheritedSocket s{UniqueFd(fd), names && names[i] ? names[i] : "unknown"};
        if (names) std::free(names[i]);
        out.push_back(std::move(s));
    }
    std::free(names);
    for (const auto& s : out) {
        const int fd = s.fd.get();
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
            throw std::runtime_error("socket activation: fd " + std::to_string(fd) + " (" + s.name +
                                     ") is not a listening stream socket");
        // The service manager hands over blocking sockets; an accept() must never block the loop.
        const int flags = ::fcntl(fd, F_GETFL);
        ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    return out;
}

}  // namespace wsrelay::io
