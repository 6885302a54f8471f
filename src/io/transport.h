// Byte transport of one connection: a non-blocking stream socket. Reads and writes retry EINTR and
// report would-block, end of stream and errors as values; nothing here blocks, logs or throws.
//
// Plain TCP now; TLS (issue #4) adds an SSL* here rather than a virtual interface, so a connection
// embeds its transport with no extra allocation or indirect call.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "io/unique_fd.h"

namespace wsrelay::io {

enum class IoStatus : uint8_t { Ok, WouldBlock, Eof, Error };

struct IoResult {
    IoStatus status = IoStatus::Ok;
    size_t bytes = 0;
    int error = 0;  // errno for Error
    static IoResult ok(size_t n) noexcept { return {IoStatus::Ok, n, 0}; }
    static IoResult would_block() noexcept { return {IoStatus::WouldBlock, 0, 0}; }
    static IoResult eof() noexcept { return {IoStatus::Eof, 0, 0}; }
    static IoResult failed(int e) noexcept { return {IoStatus::Error, 0, e}; }
};

class Transport {
public:
    explicit Transport(UniqueFd fd) noexcept : fd_(std::move(fd)) {}

    int fd() const noexcept { return fd_.get(); }
    IoResult read(std::span<std::byte> buf) noexcept;
    // Gathers `iov` into one sendmsg(MSG_NOSIGNAL): a broken pipe is an error value, never SIGPIPE.
    IoResult writev(std::span<const iovec> iov) noexcept;
    // Half-close: sends FIN after everything written so far.
    void shutdown_write() noexcept;
    void close() noexcept { fd_.reset(); }

private:
    UniqueFd fd_;
};

}  // namespace wsrelay::io
