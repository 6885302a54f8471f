// SPDX-License-Identifier: Apache-2.0
// A latency histogram with log-linear buckets (the layout of HdrHistogram): values below 32 are
// exact, and every power of two above is cut into 32 equal buckets, so any recorded value is known
// within 1/32 (about 3%). Fixed size (15 KiB), so recording never allocates; record() is a count
// of leading zeros, two shifts and an increment.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace wsrelay::bench {

class Histogram {
public:
    void record(uint64_t value) noexcept {
        ++counts_[index_of(value)];
        ++count_;
        if (value > max_) max_ = value;
    }

    void reset() noexcept { *this = Histogram{}; }

    uint64_t count() const noexcept { return count_; }
    uint64_t max() const noexcept { return max_; }

    // The value below which a fraction `q` (0..1) of the recorded values lie: the middle of the
    // bucket holding that rank, never more than the largest value seen. 0 when empty.
    uint64_t quantile(double q) const noexcept {
        if (count_ == 0) return 0;
        uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.999999);
        if (rank == 0) rank = 1;
        uint64_t seen = 0;
        for (size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank) {
                const uint64_t mid = lower_bound_of(i) + (width_of(i) - 1) / 2;
                return mid < max_ ? mid : max_;
            }
        }
        return max_;
    }

private:
    static constexpr unsigned kSubBits = 5;  // 32 buckets per power of two
    static constexpr uint64_t kSub = uint64_t{1} << kSubBits;

    // Group 0 holds 0..31 one by one; group g >= 1 holds [2^(g+4), 2^(g+5)) in 32 buckets.
    static size_t index_of(uint64_t v) noexcept {
        if (v < kSub) return static_cast<size_t>(v);
        const unsigned e = 63u - static_cast<unsigned>(std::countl_zero(v));  // 5..63
        const uint64_t sub = (v >> (e - kSubBits)) - kSub;                    // 0..31
        return static_cast<size_t>((e - kSubBits + 1) * kSub + sub);
    }
    static uint64_t lower_bound_of(size_t i) noexcept {
        if (i < kSub) return i;
        const unsigned e = static_cast<unsigned>(i / kSub) + kSubBits - 1;
        return (kSub + i % kSub) << (e - kSubBits);
    }
    static uint64_t width_of(size_t i) noexcept {
        if (i < kSub) return 1;
        const unsigned e = static_cast<unsigned>(i / kSub) + kSubBits - 1;
        return uint64_t{1} << (e - kSubBits);
    }

    std::array<uint64_t, (64 - kSubBits + 1) * kSub> counts_{};
    uint64_t count_ = 0;
    uint64_t max_ = 0;
};

}  // namespace wsrelay::bench
