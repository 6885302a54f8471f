// SPDX-License-Identifier: Apache-2.0
// A deleter for std::unique_ptr that calls a C library's free function (OpenSSL's *_free, ...):
//   std::unique_ptr<BIO, util::CDeleter<BIO_free>> bio(BIO_new(...));
#pragma once

namespace wsrelay::util {

template <auto Free>
struct CDeleter {
    void operator()(auto* p) const noexcept { Free(p); }
};

}  // namespace wsrelay::util
