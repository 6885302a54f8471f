// SPDX-License-Identifier: Apache-2.0
#include "io/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace wsrelay::io {
namespace {

constexpr unsigned char kSessionIdContext[] = "wsrelay";

std::string file_problem(const std::string& path) {
    std::ifstream f(path);
    if (!f) {
        std::string m = path + ": cannot open: " + std::strerror(errno);
        // Say what to do: the packaged config points at Debian's snakeoil pair, which the
        // ssl-cert package can (re)create.
        if (path.find("ssl-cert-snakeoil") != std::string::npos)
            m += " (run `make-ssl-cert generate-default-snakeoil`, or set [tls] certificate and private_key)";
        else
            m += " (fix the path in [tls], or the file's permissions: the service reads it as a member of ssl-cert)";
        return m;
    }
    return {};
}

// ALPN (RFC 7301): we speak HTTP/1.1 only. A client that offers it gets it; one that offers only
// other protocols (h2 alone) proceeds without ALPN rather than failing the handshake.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen, void*) {
    static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

SslCtxPtr make_context(const TlsSettings& s, const TlsCertificate& cert, std::string& error) {
    ERR_clear_error();
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
        error = "SSL_CTX_new: " + tls_error_string();
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx.get(), s.min_version);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    // Partial writes: SSL_write returns after each record, like write(2) on a full socket.
    // Moving buffer: a retried write may come from a rebuilt (coalesced) buffer with the same bytes.
    // Release buffers: an idle connection gives its 2 x 16 KiB record buffers back.
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                    SSL_MODE_RELEASE_BUFFERS);
    if (!s.ciphers.empty() && SSL_CTX_set_cipher_list(ctx.get(), s.ciphers.c_str()) != 1) {
        error = "tls.ciphers: no usable cipher in \"" + s.ciphers + "\"";
        return nullptr;
    }
    if (!s.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx.get(), s.ciphersuites.c_str()) != 1) {
        error = "tls.ciphersuites: no usable suite in \"" + s.ciphersuites + "\"";
        return nullptr;
    }
    if (auto p = file_problem(cert.certificate); !p.empty()) return error = p, nullptr;
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert.certificate.c_str()) != 1) {
        error = cert.certificate + ": not a usable PEM certificate chain: " + tls_error_string();
        return nullptr;
    }
    if (auto p = file_problem(cert.private_key); !p.empty()) return error = p, nullptr;
    // Parse the key on its own first, so "not a key" and "not this certificate's key" get
    // different messages (SSL_CTX_use_PrivateKey_file reports both as a load failure).
    std::unique_ptr<BIO, CDeleter<BIO_free>> bio(BIO_new_file(cert.private_key.c_str(), "r"));
    std::unique_ptr<EVP_PKEY, CDeleter<EVP_PKEY_free>> key(
        bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key) {
        error = cert.private_key + ": not a usable PEM private key: " + tls_error_string();
        return nullptr;
    }
    if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
        error = cert.private_key + ": does not match the certificate in " + cert.certificate;
        ERR_clear_error();
        return nullptr;
    }
    SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, nullptr);
    // Read whole records (and more) per read(): one syscall per record instead of two or three.
    SSL_CTX_set_read_ahead(ctx.get(), 1);
    SSL_CTX_set_session_id_context(ctx.get(), kSessionIdContext, sizeof kSessionIdContext - 1);
    if (s.session_tickets) {
        SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
    } else {
        SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx.get(), 0);
    }
    return ctx;
}

bool name_matches(const std::string& pattern, const char* name) {
    const std::string_view n(name);
    if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
        // "*.example.org" matches exactly one label in front of "example.org".
        const std::string_view suffix = std::string_view(pattern).substr(1);
        if (n.size() <= suffix.size()) return false;
        const std::string_view label = n.substr(0, n.size() - suffix.size());
        return label.find('.') == std::string_view::npos && strcasecmp(n.data() + label.size(), suffix.data()) == 0;
    }
    return strcasecmp(pattern.c_str(), name) == 0;
}

}  // namespace

std::string tls_error_string() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown TLS error" : out;
}

std::shared_ptr<TlsContexts> TlsContexts::load(const TlsSettings& s, std::string& error) {
    auto set = std::make_shared<TlsContexts>();
    if (s.certificates.empty()) {
        error = "tls: no certificate configured";
        return nullptr;
    }
    for (const TlsCertificate& c : s.certificates) {
        SslCtxPtr ctx = make_context(s, c, error);
        if (!ctx) return nullptr;
        set->entries_.push_back({c.server_name, std::move(ctx)});
    }
    // SNI: the callback on the default context switches the session to the matching one.
    SSL_CTX_set_tlsext_servername_callback(set->entries_[0].ctx.get(), on_servername);
    SSL_CTX_set_tlsext_servername_arg(set->entries_[0].ctx.get(), set.get());
    return set;
}

SSL_CTX* TlsContexts::find(const char* name) const noexcept {
    for (size_t i = 1; i < entries_.size(); ++i)
        if (name_matches(entries_[i].server_name, name)) return entries_[i].ctx.get();
    return nullptr;
}

int TlsContexts::on_servername(SSL* ssl, int*, void* arg) {
    const auto* self = static_cast<const TlsContexts*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_NOACK;  // no SNI: the default certificate
    if (SSL_CTX* ctx = self->find(name)) SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;  // unknown names get the default certificate too
}

SslPtr TlsContexts::new_session() const {
    SslPtr ssl(SSL_new(entries_[0].ctx.get()));
    if (!ssl) return nullptr;
    SSL_set_accept_state(ssl.get());
    return ssl;
}

}  // namespace wsrelay::io
