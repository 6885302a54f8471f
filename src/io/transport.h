// SPDX-License-Identifier: Apache-2.0
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
// TLS sessions read and write the socket through our own BIO (not OpenSSL's socket BIO), which
// notes two things OpenSSL does not say: whether the last recv() emptied the socket (so the caller
// can skip the read that would only return EAGAIN, as on plain sockets), and where OpenSSL's
// record buffers lie in memory (see alias_free_skew()).
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
    // Reads: the socket was empty when this read finished and nothing is left buffered in TLS, so
    // another read now would only return WouldBlock. New bytes bring a new edge-triggered event.
    bool drained = false;
    static IoResult ok(size_t n, bool drained = false) noexcept { return {IoStatus::Ok, n, 0, drained}; }
    static IoResult would_block() noexcept { return {IoStatus::WouldBlock, 0, 0}; }
    static IoResult eof() noexcept { return {IoStatus::Eof, 0, 0}; }
    static IoResult failed(int e) noexcept { return {IoStatus::Error, 0, e}; }
};

// How far to move a buffer of ours so that libc's memcpy between it and `theirs` (a buffer inside
// OpenSSL, which copies plaintext between its record buffers and ours) stays fast: the returned
// skew (0..4095) puts `ours + skew` half a page away from `their_page_offset` (their address
// modulo 4096), so neither lies just above the other.
// Why: glibc 2.36 copies 2 KiB and more with `rep movsb`, which on AMD Zen 3/4 runs ~30x slower
// (3 GB/s instead of 100) when the destination lies 1 to 63 bytes above the source modulo 4096.
// Record buffers sit at fixed places, so without this an unlucky heap layout makes every TLS
// read or write of a process slow (measured: 13 % of the CPU of a wss echo in SSL_write's copy).
size_t alias_free_skew(const void* ours, size_t their_page_offset) noexcept;

class Transport {
public:
    // TLS: `ssl` must have no BIO yet; the transport attaches its socket BIO to it.
    explicit Transport(UniqueFd fd, SslPtr ssl = nullptr) noexcept;
    // Moving re-points the BIO at the new object.
    Transport(Transport&& o) noexcept;
    Transport& operator=(Transport&& o) noexcept;
    ~Transport() = default;

    int fd() const noexcept { return fd_.get(); }
    bool tls() const noexcept { return ssl_ != nullptr; }
    bool handshake_done() const noexcept;

    IoResult read(std::span<std::byte> buf) noexcept;
    // Where in a read buffer starting at `buf` the data should start (0..4095 bytes in) for TLS to
    // copy into it at full speed (see alias_free_skew()); 0 for plain sockets.
    size_t read_skew(const std::byte* buf) const noexcept;
    // Plain: one sendmsg(MSG_NOSIGNAL) over `iov` (a broken pipe is an error value, never SIGPIPE),
    // with runs of small buffers first gathered into `staging` (>= kStagingBytes): the kernel
    // copies one long iovec much faster than many short ones.
    // TLS: small buffers are gathered into `staging` too, so several small frames go out in one
    // TLS record rather than one record each.
    // At most kMaxIov buffers are taken; the result counts bytes from the start of `iov`.
    IoResult writev(std::span<const iovec> iov, std::span<std::byte> staging) noexcept;
    static constexpr size_t kMaxIov = 64;
    // Staging for writes: one TLS record's payload (16 KiB), plus room to skew its start.
    static constexpr size_t kStagingBytes = 16 * 1024 + 4096;
    // Plain writes copy buffers up to this size into the staging area rather than pass them as
    // iovecs of their own (each iovec costs the kernel a separate user copy with its checks).
    static constexpr size_t kGatherMaxBytes = 1024;
    // Sends close_notify (TLS, best effort) and half-closes: FIN after everything written so far.
    void shutdown_write() noexcept;
    void close() noexcept;

    // Bytes of a TLS write that returned WouldBlock and must be retried with the same leading
    // bytes (0: none pending; always 0 for plain sockets). The caller must not change them.
    size_t pending_write_bytes() const noexcept { return retry_len_; }
    bool read_wants_write() const noexcept { return read_wants_write_; }
    bool write_wants_read() const noexcept { return write_wants_read_; }
    // For logs: why the last TLS call failed, and whether the peer ended with close_notify.
    // Empty when there was none. Formatted on demand: a connection keeps only the error code.
    std::string tls_error() const;

private:
    friend struct SocketBio;
    IoResult tls_result(int ret, bool reading) noexcept;
    void attach_bio() noexcept;

    // Ordered to pack: every connection holds one.
    UniqueFd fd_;
    bool fatal_ = false;  // a TLS call failed for good: no SSL_shutdown afterwards (OpenSSL forbids it)
    bool read_wants_write_ = false;
    bool write_wants_read_ = false;
    bool eof_without_notify_ = false;
    SslPtr ssl_;
    size_t retry_len_ = 0;  // bytes of a TLS write that returned WANT_*: retried with exactly these
    unsigned long tls_error_ = 0;  // first OpenSSL error code of the failure
    bool handshake_completed_ = false;
    // Noted by the socket BIO: the last recv() left the socket empty; the page offsets (mod 4096)
    // of OpenSSL's last read and write buffers, for alias_free_skew().
    bool socket_drained_ = false;
    uint16_t read_page_offset_ = 0;
    uint16_t write_page_offset_ = 0;
};

}  // namespace wsrelay::io
