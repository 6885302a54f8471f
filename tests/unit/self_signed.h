// SPDX-License-Identifier: Apache-2.0
// A throwaway self-signed P-256 certificate (CN=localhost, valid for an hour) for tests that need
// a TLS server: made in memory, never written anywhere unless a test does so.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>

namespace wsrelay::test {

struct SelfSigned {
    std::unique_ptr<X509, decltype(&X509_free)> cert{nullptr, X509_free};
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, EVP_PKEY_free};
};

inline SelfSigned self_signed() {
    SelfSigned s;
    s.key.reset(EVP_EC_gen("P-256"));
    s.cert.reset(X509_new());
    if (!s.key || !s.cert) throw std::runtime_error("self_signed: out of memory");
    X509* x = s.cert.get();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, s.key.get());
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (X509_sign(x, s.key.get(), EVP_sha256()) <= 0) throw std::runtime_error("self_signed: X509_sign failed");
    return s;
}

}  // namespace wsrelay::test
