#include "io/transport.h"

#include <sys/socket.h>

#include <cerrno>

namespace wsrelay::io {

IoResult Transport::read(std::span<std::byte> buf) noexcept {
    for (;;) {
        const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
        if (n > 0) return IoResult::ok(static_cast<size_t>(n));
        if (n == 0) return IoResult::eof();
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::would_block();
        return IoResult::failed(errno);
    }
}

IoResult Transport::writev(std::span<const iovec> iov) noexcept {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov.data());
    msg.msg_iovlen = iov.size();
    for (;;) {
        const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
        if (n >= 0) return IoResult::ok(static_cast<size_t>(n));
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::would_block();
        return IoResult::failed(errno);
    }
}

void Transport::shutdown_write() noexcept { ::shutdown(fd_.get(), SHUT_WR); }

}  // namespace wsrelay::io
