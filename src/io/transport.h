// Byte transport of one connection: a non-blocking stream socket, optionally wrapped in TLS.
// Reads and writes retry EINTR and report would-block, end of stream and errors as values; nothing
// here blocks, logs or throws.
//
// TLS is a member (an SSL*), not a virtual interface, so a connection embeds its transport with no
// extra allocation or indirect call. Under edge-triggered epoll TLS needs care:
//  - OpenSSL may hold decrypted bytes the socket no longer shows: callers read until WouldBlock
//    (SSL_ERROR_WANT_READ), never "until the socket is empty".
//  - A read may need to write (handshake, key update) and a write may need to read. Such a call
//    returns WouldBlock and sets read_wants_write()/write_wants_read(): the connection retries it
//    on the other readiness edge.
//  - A retried SSL_write is given the same leading bytes (the queue head does not move while a
//    write is pending), as OpenSSL requires.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "io/tls_context.h"
#include "io/unique_fd.h"

namespace wsrelay::io {

enum class IoStatus : uint8_t { Ok, WouldBlock, Eof, Error };

struct IoResult {
    IoStatus status = IoStatus::Ok;
    size_t bytes = 0;
    int error = 0;  // errno for Error (EPROTO for a TLS failure; see Transport::tls_error())
    static IoResult ok(size_t n) noexcept { return {IoStatus::Ok, n, 0}; }
    static IoResult would_block() noexcept { return {IoStatus::WouldBlock, 0, 0}; }
    static IoResult eof() noexcept { return {IoStatus::Eof, 0, 0}; }
    static IoResult failed(int e) noexcept { return {IoStatus::Error, 0, e}; }
};

class Transport {
public:
    explicit Transport(UniqueFd fd, SslPtr ssl = nullptr) noexcept : fd_(std::move(fd)), ssl_(std::move(ssl)) {}

    int fd() const noexcept { return fd_.get(); }
    bool tls() const noexcept { return ssl_ != nullptr; }
    bool handshake_done() const noexcept;

    IoResult read(std::span<std::byte> buf) noexcept;
    // Plain: one sendmsg(MSG_NOSIGNAL) over `iov` (a broken pipe is an error value, never SIGPIPE).
    // TLS: small buffers are first gathered into `staging` (>= 16 KiB), so several small frames go
    // out in one TLS record rather than one record each.
    IoResult writev(std::span<const iovec> iov, std::span<std::byte> staging) noexcept;
    // Sends close_notify (TLS, best effort) and half-closes: FIN after everything written so far.
    void shutdown_write() noexcept;
    void close() noexcept;

    bool read_wants_write() const noexcept { return read_wants_write_; }
    bool write_wants_read() const noexcept { return write_wants_read_; }
    // For logs: why the last TLS call failed, and whether the peer ended with close_notify.
    // Empty when there was none. Formatted on demand: a connection keeps only the error code.
    std::string tls_error() const;

private:
    IoResult tls_result(int ret, bool reading) noexcept;

    UniqueFd fd_;
    SslPtr ssl_;
    size_t retry_len_ = 0;  // bytes of a TLS write that returned WANT_*: retried with exactly these
    bool fatal_ = false;  // a TLS call failed for good: no SSL_shutdown afterwards (OpenSSL forbids it)
    bool read_wants_write_ = false;
    bool write_wants_read_ = false;
    unsigned long tls_error_ = 0;  // first OpenSSL error code of the failure
    bool eof_without_notify_ = false;
    bool handshake_completed_ = false;
};

}  // namespace wsrelay::io
