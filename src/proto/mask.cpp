// SPDX-License-Identifier: Apache-2.0
#include "proto/mask.h"

#include <bit>
#include <cstring>

namespace wsrelay::proto {

void apply_mask(std::span<std::byte> data, MaskKey key, size_t phase) noexcept {
    auto* p = reinterpret_cast<uint8_t*>(data.data());
    size_t n = data.size();
    phase &= 3;
    // Rotate the key so that its byte `phase` masks p[0]; then every 4-byte group uses the same
    // key. `key` holds the wire bytes in memory order, so the rotation direction follows the
    // byte order.
    const int bits = static_cast<int>(8 * phase);
    const uint32_t rot = std::endian::native == std::endian::little ? std::rotr(key, bits) : std::rotl(key, bits);
    const uint64_t word = (uint64_t{rot} << 32) | rot;
    uint8_t r[8];
    std::memcpy(r, &word, 8);
    // Four words per iteration: memcpy compiles to unaligned loads/stores, and GCC vectorises this.
    while (n >= 32) {
        uint64_t a, b, c, d;
        std::memcpy(&a, p, 8);
        std::memcpy(&b, p + 8, 8);
        std::memcpy(&c, p + 16, 8);
        std::memcpy(&d, p + 24, 8);
        a ^= word, b ^= word, c ^= word, d ^= word;
        std::memcpy(p, &a, 8);
        std::memcpy(p + 8, &b, 8);
        std::memcpy(p + 16, &c, 8);
        std::memcpy(p + 24, &d, 8);
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        uint64_t a;
        std::memcpy(&a, p, 8);
        a ^= word;
        std::memcpy(p, &a, 8);
        p += 8;
        n -= 8;
    }
    for (size_t i = 0; i < n; ++i) p[i] ^= r[i];
}

void apply_mask_reference(std::span<std::byte> data, MaskKey key, size_t phase) noexcept {
    uint8_t k[4];
    std::memcpy(k, &key, 4);
    for (size_t i = 0; i < data.size(); ++i) data[i] ^= std::byte{k[(phase + i) & 3]};
}

}  // namespace wsrelay::proto
