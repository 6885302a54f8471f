// SPDX-License-Identifier: Apache-2.0
#include "bench/tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>

namespace wsrelay::bench {

TlsClient TlsClient::create(bool insecure, const std::string& cafile, std::string& error) {
    TlsClient t;
    io::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
        error = "SSL_CTX_new: " + io::tls_error_string();
        return t;
    }
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    // Partial writes: a write returns what fit, like send(). Moving buffer: a retried write may
    // come from another address (our out buffer slides down when it compacts).
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // A server may close TCP without close_notify once the WebSocket close handshake is done (it
    // has nothing left to protect): that is an EOF, not an error, for the run.
    SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (insecure) {
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    } else {
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
        const int loaded = cafile.empty() ? SSL_CTX_set_default_verify_paths(ctx.get())
                                          : SSL_CTX_load_verify_locations(ctx.get(), cafile.c_str(), nullptr);
        if (loaded != 1) {
            error = (cafile.empty() ? std::string("default CA store") : cafile) + ": " + io::tls_error_string();
            return t;
        }
    }
    t.ctx_ = std::move(ctx);
    t.insecure_ = insecure;
    return t;
}

io::SslPtr TlsClient::new_session(const std::string& host) const {
    io::SslPtr ssl(SSL_new(ctx_.get()));
    if (!ssl) return nullptr;
    SSL_set_connect_state(ssl.get());
    unsigned char probe[16];
    const bool is_ip = ::inet_pton(AF_INET, host.c_str(), probe) == 1 || ::inet_pton(AF_INET6, host.c_str(), probe) == 1;
    // RFC 6066 §3: SNI carries host names only, never IP literals.
    if (!is_ip) SSL_set_tlsext_host_name(ssl.get(), host.c_str());
    // OpenSSL 3 checks an IP literal against the certificate's IP SANs, a name against DNS SANs.
    if (!insecure_ && SSL_set1_host(ssl.get(), host.c_str()) != 1) return nullptr;
    return ssl;
}

}  // namespace wsrelay::bench
