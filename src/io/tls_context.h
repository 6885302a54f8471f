// SPDX-License-Identifier: Apache-2.0
// Server TLS contexts built from the [tls] config: the default certificate and any number chosen by
// SNI. Loading validates everything an operator can get wrong (missing or unreadable files, PEM
// that does not parse, a key that does not match its certificate) and reports it as one message
// naming the file. A reload builds a new set; connections keep the context they started with
// (OpenSSL reference-counts it), new handshakes use the new one.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "util/c_deleter.h"

namespace wsrelay::io {

using util::CDeleter;
using SslCtxPtr = std::unique_ptr<SSL_CTX, CDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, CDeleter<SSL_free>>;  // SSL_set_bio() hands the BIO to it

struct TlsCertificate {
    std::string server_name;  // SNI name ("chat.example.org", "*.example.org"); empty: the default
    std::string certificate;  // PEM chain: leaf first
    std::string private_key;  // PEM key
};

struct TlsSettings {
    std::vector<TlsCertificate> certificates;  // [0] is the default
    int min_version = TLS1_2_VERSION;           // TLS1_2_VERSION or TLS1_3_VERSION
    std::string ciphers;                        // TLS <= 1.2 cipher list (OpenSSL syntax)
    std::string ciphersuites;                   // TLS 1.3 suites
    bool session_tickets = true;                // resumption (TLS 1.3 tickets, TLS 1.2 tickets + cache)
};

class TlsContexts {
public:
    // Builds every context. On failure returns nullptr and sets `error` ("FILE: what is wrong").
    static std::shared_ptr<TlsContexts> load(const TlsSettings& settings, std::string& error);

    // A new server-side SSL (not yet handshaken) for an accepted socket: io::Transport attaches it.
    SslPtr new_session() const;

private:
    struct Entry {
        std::string server_name;
        SslCtxPtr ctx;
    };
    static int on_servername(SSL* ssl, int* alert, void* arg);
    SSL_CTX* find(const char* name) const noexcept;

    std::vector<Entry> entries_;  // [0] is the default
};

// The OpenSSL error queue as one line (and clears it): "error:0A00010B:SSL routines::wrong version number".
std::string tls_error_string();

}  // namespace wsrelay::io
