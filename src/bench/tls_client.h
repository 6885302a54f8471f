// SPDX-License-Identifier: Apache-2.0
// The client-side TLS context of wsrelay-bench: TLS 1.2+, the system's CA store (or --cafile),
// certificate and host name verification unless --insecure. new_session() makes the SSL for one
// connecting socket, with SNI for host names.
#pragma once

#include <string>

#include "io/tls_context.h"

namespace wsrelay::bench {

class TlsClient {
public:
    // On failure returns an empty TlsClient (!ok()) and sets `error`.
    static TlsClient create(bool insecure, const std::string& cafile, std::string& error);

    bool ok() const noexcept { return ctx_ != nullptr; }
    // A client-side SSL that will verify `host` (unless insecure), for io::Transport to attach to
    // its socket. Null on failure.
    io::SslPtr new_session(const std::string& host) const;

private:
    io::SslCtxPtr ctx_;
    bool insecure_ = false;
};

}  // namespace wsrelay::bench
