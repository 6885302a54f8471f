// SPDX-License-Identifier: Apache-2.0
// Owning handles for the OpenSSL objects auth/ creates (internal to auth/). io/tls_context.h has
// the same deleter for SSL objects; auth/ does not link io/, so it keeps its own few lines.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <memory>

namespace wsrelay::auth {

template <auto Free>
struct OsslFree {
    void operator()(auto* p) const noexcept { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, OsslFree<BIO_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OsslFree<EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OsslFree<ECDSA_SIG_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, OsslFree<BN_free>>;

}  // namespace wsrelay::auth
