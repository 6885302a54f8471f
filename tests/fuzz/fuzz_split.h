// SPDX-License-Identifier: Apache-2.0
// Shared by the fuzz targets: turns the fuzzer's control byte into the piece boundaries a stream
// of `size` bytes arrives in, the way reads from a socket cut it up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace wsrelay::fuzz {

// Returns the end offset of each piece, increasing, the last one == size (an empty input gives
// {0}). `selector` uses 6 bits:
//   0..31   two pieces, cut at selector/31 of the way (0: empty first piece, 31: empty second)
//   32..47  fixed pieces of 1..16 bytes (32: one byte at a time)
//   48..63  pseudo-random pieces of 1..64 bytes, seeded by the selector and the size
inline std::vector<size_t> split_points(uint8_t selector, size_t size) {
    selector &= 63;
    std::vector<size_t> ends;
    if (selector < 32) {
        ends.push_back(size * selector / 31);
    } else if (selector < 48) {
        const size_t step = selector - 31u;
        for (size_t e = step; e < size; e += step) ends.push_back(e);
    } else {
        uint32_t x = 0x9E3779B9u ^ (selector * 0x85EBCA6Bu) ^ static_cast<uint32_t>(size);
        for (size_t e = 0;;) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;  // xorshift32
            e += 1 + x % 64;
            if (e >= size) break;
            ends.push_back(e);
        }
    }
    if (ends.empty() || ends.back() != size) ends.push_back(size);
    return ends;
}

}  // namespace wsrelay::fuzz
