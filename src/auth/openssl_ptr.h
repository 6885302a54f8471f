// SPDX-License-Identifier: Apache-2.0
// Owning handles for the OpenSSL objects auth/ creates (internal to auth/).
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <memory>

#include "util/c_deleter.h"

namespace wsrelay::auth {

using BioPtr = std::unique_ptr<BIO, util::CDeleter<BIO_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, util::CDeleter<EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, util::CDeleter<ECDSA_SIG_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, util::CDeleter<BN_free>>;

}  // namespace wsrelay::auth
