// SPDX-License-Identifier: Apache-2.0
// Fuzz target: permessage-deflate. Arbitrary bytes as a compressed message (any split, a small
// inflated-size limit) must inflate, be refused as too big, or be reported corrupt — never crash
// or exceed the limit; and the same bytes as a plain message must survive compress -> inflate.
// The first byte picks the split pattern and the window size.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_split.h"
#include "proto/deflate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wsrelay::proto;
    if (size == 0) return 0;
    const uint8_t control = data[0];
    const int bits = 9 + (control >> 6) * 2;  // 9, 11, 13, 15
    const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
    constexpr uint64_t kLimit = 1 << 16;

    {
        Inflater inflater(15);
        std::vector<std::byte> out;
        size_t start = 0;
        for (const size_t end : wsrelay::fuzz::split_points(control, in.size())) {
            const auto status = inflater.feed(in.subspan(start, end - start), end == in.size(), out, kLimit);
            if (out.size() > kLimit + 1) __builtin_trap();
            if (status != Inflater::Status::Ok) break;
            start = end;
        }
    }
    {
        Deflater deflater(bits, 6);
        std::vector<std::byte> compressed, out;
        if (!deflater.compress(in, compressed)) __builtin_trap();
        Inflater inflater(bits);
        if (inflater.feed(compressed, true, out, in.size() + 1) != Inflater::Status::Ok) __builtin_trap();
        if (out.size() != in.size() || !std::equal(out.begin(), out.end(), in.begin())) __builtin_trap();
    }
    return 0;
}
