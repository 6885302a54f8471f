// SPDX-License-Identifier: Apache-2.0
#include "io/transport.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <new>

namespace wsrelay::io {

size_t alias_free_skew(const void* ours, size_t their_page_offset) noexcept {
    constexpr size_t kPage = 4096;
    const size_t our_page_offset = reinterpret_cast<uintptr_t>(ours) % kPage;
    return (their_page_offset + kPage / 2 + kPage - our_page_offset) % kPage;
}

// The BIO between OpenSSL and the socket. OpenSSL's own socket BIO would do, but this one also
// notes on the Transport (its data pointer) whether recv() emptied the socket and where OpenSSL's
// buffers are. It does not own the fd (the Transport does) and never blocks.
struct SocketBio {
    static Transport& of(BIO* b) noexcept { return *static_cast<Transport*>(BIO_get_data(b)); }

    // The classic int-returning read/write (not *_ex): OpenSSL passes their result on, so -1 must
    // mean an error (errno set; SSL_ERROR_SYSCALL) and 0 the end of the stream, as for a socket BIO.
    static int read(BIO* b, char* out, int len) noexcept {
        Transport& t = of(b);
        BIO_clear_retry_flags(b);
        t.read_page_offset_ = static_cast<uint16_t>(reinterpret_cast<uintptr_t>(out) % 4096);
        for (;;) {
            const ssize_t n = ::recv(t.fd_.get(), out, static_cast<size_t>(len), 0);
            if (n > 0) {
                t.socket_drained_ = n < len;  // a short read took everything there was
                return static_cast<int>(n);
            }
            if (n == 0) {
                BIO_set_flags(b, BIO_FLAGS_IN_EOF);  // BIO_eof(): how OpenSSL tells a truncation
                return 0;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                t.socket_drained_ = true;
                BIO_set_retry_read(b);
            }
            return -1;
        }
    }

    static int write(BIO* b, const char* data, int len) noexcept {
        Transport& t = of(b);
        BIO_clear_retry_flags(b);
        t.write_page_offset_ = static_cast<uint16_t>(reinterpret_cast<uintptr_t>(data) % 4096);
        for (;;) {
            // MSG_NOSIGNAL: a peer that went away is EPIPE here, never a SIGPIPE.
            const ssize_t n = ::send(t.fd_.get(), data, static_cast<size_t>(len), MSG_NOSIGNAL);
            if (n >= 0) return static_cast<int>(n);
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
            return -1;
        }
    }

    static long ctrl(BIO* b, int cmd, long, void*) noexcept {
        switch (cmd) {
            case BIO_CTRL_FLUSH: return 1;  // nothing is buffered here
            case BIO_CTRL_EOF: return BIO_test_flags(b, BIO_FLAGS_IN_EOF) ? 1 : 0;
            default: return 0;  // no kTLS, no push/pop, nothing pending
        }
    }

    static BIO_METHOD* method() noexcept {
        // Created once, on the first TLS connection; lives as long as the process.
        static BIO_METHOD* const m = [] {
            BIO_METHOD* meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsrelay socket");
            if (meth) {
                BIO_meth_set_read(meth, read);
                BIO_meth_set_write(meth, write);
                BIO_meth_set_ctrl(meth, ctrl);
            }
            return meth;
        }();
        return m;
    }
};

Transport::Transport(UniqueFd fd, SslPtr ssl) noexcept : fd_(std::move(fd)), ssl_(std::move(ssl)) { attach_bio(); }

Transport::Transport(Transport&& o) noexcept
    : fd_(std::move(o.fd_)),
      fatal_(o.fatal_),
      read_wants_write_(o.read_wants_write_),
      write_wants_read_(o.write_wants_read_),
      eof_without_notify_(o.eof_without_notify_),
      ssl_(std::move(o.ssl_)),
      retry_len_(o.retry_len_),
      tls_error_(o.tls_error_),
      handshake_completed_(o.handshake_completed_),
      socket_drained_(o.socket_drained_),
      read_page_offset_(o.read_page_offset_),
      write_page_offset_(o.write_page_offset_) {
    if (ssl_) BIO_set_data(SSL_get_rbio(ssl_.get()), this);
}

Transport& Transport::operator=(Transport&& o) noexcept {
    if (this != &o) {
        this->~Transport();
        new (this) Transport(std::move(o));
    }
    return *this;
}

void Transport::attach_bio() noexcept {
    if (!ssl_) return;
    BIO_METHOD* const method = SocketBio::method();
    BIO* const bio = method ? BIO_new(method) : nullptr;
    if (!bio) {
        // Out of memory: a session without a BIO fails its first read, and the connection with it.
        fatal_ = true;
        return;
    }
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_.get(), bio, bio);  // one BIO both ways; the SSL owns it (one reference)
}

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
        // Drained: the last recv() was short (a later arrival brings a new edge) and OpenSSL holds
        // no record bytes, decrypted or not, that a read now would return.
        if (n > 0) return IoResult::ok(static_cast<size_t>(n), socket_drained_ && !SSL_has_pending(ssl_.get()));
        return tls_result(n, true);
    }
    for (;;) {
        const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
        if (n > 0) return IoResult::ok(static_cast<size_t>(n), static_cast<size_t>(n) < buf.size());
        if (n == 0) return IoResult::eof();
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::would_block();
        return IoResult::failed(errno);
    }
}

IoResult Transport::writev(std::span<const iovec> iov, std::span<std::byte> staging) noexcept {
    assert(staging.size() >= kStagingBytes);
    if (!ssl_) {
        // A broadcast of 32-byte messages sent as 32 iovecs per sendmsg spent 15 % of its CPU in
        // the kernel's per-iovec copies (_copy_from_iter); a memcpy here costs a few nanoseconds.
        iovec out[kMaxIov];
        size_t n = 0;
        size_t used = 0;
        for (const iovec& v : iov.first(std::min(iov.size(), kMaxIov))) {
            if (v.iov_len <= kGatherMaxBytes && used + v.iov_len <= staging.size()) {
                std::byte* const at = staging.data() + used;
                std::memcpy(at, v.iov_base, v.iov_len);
                used += v.iov_len;
                // Extend the previous iovec when it is the run of gathered bytes just before.
                if (n > 0 && static_cast<std::byte*>(out[n - 1].iov_base) + out[n - 1].iov_len == at)
                    out[n - 1].iov_len += v.iov_len;
                else
                    out[n++] = {at, v.iov_len};
            } else {
                out[n++] = v;
            }
        }
        msghdr msg{};
        msg.msg_iov = out;
        msg.msg_iovlen = n;
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
    // are gathered so that a burst of small frames becomes one record. They are gathered where
    // SSL_write's copy into its record buffer (which is usually where it was last time) is fast.
    constexpr size_t kRecord = kStagingBytes - 4096;
    const void* data;
    size_t len;
    if (iov[0].iov_len >= kRecord) {
        data = iov[0].iov_base;
        len = iov[0].iov_len;
    } else {
        std::byte* const out = staging.data() + alias_free_skew(staging.data(), write_page_offset_);
        len = 0;
        for (const iovec& v : iov) {
            const size_t take = std::min(v.iov_len, kRecord - len);
            std::memcpy(out + len, v.iov_base, take);
            len += take;
            if (len == kRecord) break;
        }
        data = out;
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

size_t Transport::read_skew(const std::byte* buf) const noexcept {
    return ssl_ ? alias_free_skew(buf, read_page_offset_) : 0;
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
