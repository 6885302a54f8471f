#include "io/transport.h"

#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace wsrelay::io {

bool Transport::handshake_done() const noexcept {
    return !ssl_ || handshake_completed_ || SSL_is_init_finished(ssl_.get());
}

IoResult Transport::read(std::span<std::byte> buf) noexcept {
    if (ssl_) {
        read_wants_write_ = false;
        ERR_clear_error();
        const int n = SSL_read(ssl_.get(), buf.data(), static_cast<int>(std::min<size_t>(buf.size(), INT32_MAX)));
        // Remember a finished handshake: after a later fatal error OpenSSL no longer says so.
        if (!handshake_completed_ && SSL_is_init_finished(ssl_.get())) handshake_completed_ = true;
        if (n > 0) return IoResult::ok(static_cast<size_t>(n));
        return tls_result(n, true);
    }
    for (;;) {
        const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
        if (n > 0) return IoResult::ok(static_cast<size_t>(n));
        if (n == 0) return IoResult::eof();
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::would_block();
        return IoResult::failed(errno);
    }
}

IoResult Transport::writev(std::span<const iovec> iov, std::span<std::byte> staging) noexcept {
    if (!ssl_) {
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
    if (iov.empty()) return IoResult::ok(0);
    // A large head buffer goes straight to SSL_write (it fills whole records anyway); small ones
    // are gathered so that a burst of small frames becomes one record.
    const void* data;
    size_t len;
    if (iov[0].iov_len >= staging.size()) {
        data = iov[0].iov_base;
        len = iov[0].iov_len;
    } else {
        len = 0;
        for (const iovec& v : iov) {
            const size_t take = std::min(v.iov_len, staging.size() - len);
            std::memcpy(staging.data() + len, v.iov_base, take);
            len += take;
            if (len == staging.size()) break;
        }
        data = staging.data();
    }
    if (retry_len_) len = std::min(len, retry_len_);  // same bytes as the attempt that must be retried
    len = std::min<size_t>(len, INT32_MAX);
    write_wants_read_ = false;
    ERR_clear_error();
    const int n = SSL_write(ssl_.get(), data, static_cast<int>(len));
    if (n > 0) {
        retry_len_ = 0;
        return IoResult::ok(static_cast<size_t>(n));
    }
    const IoResult r = tls_result(n, false);
    if (r.status == IoStatus::WouldBlock) retry_len_ = len;
    return r;
}

IoResult Transport::tls_result(int ret, bool reading) noexcept {
    const int saved_errno = errno;
    switch (SSL_get_error(ssl_.get(), ret)) {
        case SSL_ERROR_WANT_READ:
            if (!reading) write_wants_read_ = true;
            return IoResult::would_block();
        case SSL_ERROR_WANT_WRITE:
            if (reading) read_wants_write_ = true;
            return IoResult::would_block();
        case SSL_ERROR_ZERO_RETURN:  // the peer sent close_notify: a clean end of stream
            return IoResult::eof();
        case SSL_ERROR_SYSCALL:
            // With an empty error queue and errno 0, the peer closed TCP without close_notify.
            ERR_clear_error();
            if (ret == 0 || saved_errno == 0) {
                eof_without_notify_ = true;
                return IoResult::eof();
            }
            if (saved_errno == EAGAIN || saved_errno == EINTR) return IoResult::would_block();
            fatal_ = true;
            return IoResult::failed(saved_errno);
        default:  // SSL_ERROR_SSL: a protocol error (garbage, plain HTTP on a TLS port, bad record)
            // OpenSSL 3 reports a TCP close without close_notify this way: browsers end
            // connections so. It is an end of stream, not a protocol failure.
            if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                ERR_clear_error();
                eof_without_notify_ = true;
                fatal_ = true;
                return IoResult::eof();
            }
            tls_error_ = ERR_peek_error();
            if (tls_error_ == 0) tls_error_ = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_UNEXPECTED_MESSAGE);
            ERR_clear_error();
            fatal_ = true;
            return IoResult::failed(EPROTO);
    }
}

std::string Transport::tls_error() const {
    if (tls_error_ != 0) {
        char buf[256];
        ERR_error_string_n(tls_error_, buf, sizeof buf);
        return buf;
    }
    return eof_without_notify_ ? "connection closed without close_notify" : std::string();
}

void Transport::shutdown_write() noexcept {
    if (ssl_ && !fatal_ && SSL_is_init_finished(ssl_.get())) {
        ERR_clear_error();
        SSL_shutdown(ssl_.get());  // queues close_notify; whatever cannot be written now is dropped
        ERR_clear_error();
    }
    ::shutdown(fd_.get(), SHUT_WR);
}

void Transport::close() noexcept {
    ssl_.reset();
    fd_.reset();
}

}  // namespace wsrelay::io
