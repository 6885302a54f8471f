// SPDX-License-Identifier: Apache-2.0
#include "proto/utf8.h"

#include <array>
#include <bit>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace wsrelay::proto {
namespace {

// Byte classes. Continuation bytes are split in three ranges because the second byte after
// E0/ED/F0/F4 is restricted to one or two of them (Unicode Table 3-7).
enum Class : uint8_t {
    kAscii,      // 00..7F
    kCont80,     // 80..8F
    kCont90,     // 90..9F
    kContA0,     // A0..BF
    kInvalid,    // C0, C1, F5..FF: never appear in UTF-8
    kLead2,      // C2..DF
    kLeadE0,     // E0: second byte A0..BF (no overlongs)
    kLead3,      // E1..EC, EE..EF
    kLeadED,     // ED: second byte 80..9F (no surrogates)
    kLeadF0,     // F0: second byte 90..BF (no overlongs)
    kLead4,      // F1..F3
    kLeadF4,     // F4: second byte 80..8F (nothing above U+10FFFF)
    kClassCount
};

// States: 0 accept, 1 reject, then "n continuation bytes still expected" and the four restricted
// second-byte states.
enum State : uint8_t { kAcc, kRej, kNeed1, kNeed2, kNeed3, kAfterE0, kAfterED, kAfterF0, kAfterF4, kStateCount };

constexpr std::array<uint8_t, 256> make_classes() {
    std::array<uint8_t, 256> c{};
    for (int b = 0; b < 256; ++b) {
        uint8_t k = kInvalid;
        if (b <= 0x7F) k = kAscii;
        else if (b <= 0x8F) k = kCont80;
        else if (b <= 0x9F) k = kCont90;
        else if (b <= 0xBF) k = kContA0;
        else if (b <= 0xC1) k = kInvalid;
        else if (b <= 0xDF) k = kLead2;
        else if (b == 0xE0) k = kLeadE0;
        else if (b == 0xED) k = kLeadED;
        else if (b <= 0xEF) k = kLead3;
        else if (b == 0xF0) k = kLeadF0;
        else if (b <= 0xF3) k = kLead4;
        else if (b == 0xF4) k = kLeadF4;
        c[static_cast<size_t>(b)] = k;
    }
    return c;
}

constexpr std::array<std::array<uint8_t, kClassCount>, kStateCount> make_transitions() {
    std::array<std::array<uint8_t, kClassCount>, kStateCount> t{};
    for (auto& row : t) row.fill(kRej);
    t[kAcc][kAscii] = kAcc;
    t[kAcc][kLead2] = kNeed1;
    t[kAcc][kLeadE0] = kAfterE0;
    t[kAcc][kLead3] = kNeed2;
    t[kAcc][kLeadED] = kAfterED;
    t[kAcc][kLeadF0] = kAfterF0;
    t[kAcc][kLead4] = kNeed3;
    t[kAcc][kLeadF4] = kAfterF4;
    for (uint8_t cont : {kCont80, kCont90, kContA0}) {
        t[kNeed1][cont] = kAcc;
        t[kNeed2][cont] = kNeed1;
        t[kNeed3][cont] = kNeed2;
    }
    t[kAfterE0][kContA0] = kNeed1;
    t[kAfterED][kCont80] = kNeed1;
    t[kAfterED][kCont90] = kNeed1;
    t[kAfterF0][kCont90] = kNeed2;
    t[kAfterF0][kContA0] = kNeed2;
    t[kAfterF4][kCont80] = kNeed2;
    return t;
}

constexpr auto kClasses = make_classes();
constexpr auto kTransitions = make_transitions();
constexpr uint64_t kHighBits = 0x8080808080808080ULL;

#if defined(__x86_64__)
// Whole-block validation with AVX2, 32 bytes at a time, after Keiser and Lemire, "Validating UTF-8
// in less than one instruction per byte" (2021). Each byte is checked against the one, two and three
// bytes before it: three 16-entry table lookups (high and low nibble of the previous byte, high
// nibble of this one) flag every ill-formed two-byte pattern of Table 3-7, and the third and fourth
// bytes of long sequences are checked by position. The checks only look backwards, so a region can
// be validated on its own provided it starts on a code point boundary; a sequence cut by the end of
// the region is left to the caller.
namespace avx2 {

// Error bits of the two-byte patterns (first byte = the previous one, second = this one).
constexpr uint8_t kTooShort = 1 << 0;   // 11______ then 0_______ or 11______: a lead left unfinished
constexpr uint8_t kTooLong = 1 << 1;    // 0_______ then 10______: a continuation without a lead
constexpr uint8_t kOverlong3 = 1 << 2;  // 11100000 100_____
constexpr uint8_t kTooLarge = 1 << 3;   // 11110100 1001____ or 101_____; 11110101.. and up
constexpr uint8_t kSurrogate = 1 << 4;  // 11101101 101_____
constexpr uint8_t kOverlong2 = 1 << 5;  // 1100000_ 10______
constexpr uint8_t kTooLarge1000 = 1 << 6;  // 11110101..11111111 then 1000____
constexpr uint8_t kOverlong4 = 1 << 6;     // 11110000 1000____ (shares the bit: same second byte)
constexpr uint8_t kTwoConts = 1 << 7;      // 10______ 10______: right only inside a 3- or 4-byte sequence
constexpr uint8_t kCarry = kTooShort | kTooLong | kTwoConts;  // decided by the high nibbles alone

__attribute__((target("avx2"))) inline __m256i table(uint8_t t0, uint8_t t1, uint8_t t2, uint8_t t3, uint8_t t4,
                                                     uint8_t t5, uint8_t t6, uint8_t t7, uint8_t t8, uint8_t t9,
                                                     uint8_t t10, uint8_t t11, uint8_t t12, uint8_t t13, uint8_t t14,
                                                     uint8_t t15) {
    return _mm256_setr_epi8(static_cast<char>(t0), static_cast<char>(t1), static_cast<char>(t2), static_cast<char>(t3),
                            static_cast<char>(t4), static_cast<char>(t5), static_cast<char>(t6), static_cast<char>(t7),
                            static_cast<char>(t8), static_cast<char>(t9), static_cast<char>(t10), static_cast<char>(t11),
                            static_cast<char>(t12), static_cast<char>(t13), static_cast<char>(t14), static_cast<char>(t15),
                            static_cast<char>(t0), static_cast<char>(t1), static_cast<char>(t2), static_cast<char>(t3),
                            static_cast<char>(t4), static_cast<char>(t5), static_cast<char>(t6), static_cast<char>(t7),
                            static_cast<char>(t8), static_cast<char>(t9), static_cast<char>(t10), static_cast<char>(t11),
                            static_cast<char>(t12), static_cast<char>(t13), static_cast<char>(t14), static_cast<char>(t15));
}

// `input` shifted right by N bytes across the 32-byte block, the first N from the end of `prev`.
template <int N>
__attribute__((target("avx2"))) inline __m256i previous(__m256i input, __m256i prev) {
    return _mm256_alignr_epi8(input, _mm256_permute2x128_si256(prev, input, 0x21), 16 - N);
}

// The error bits of a block given the block before it (all zero means well-formed so far).
__attribute__((target("avx2"))) inline __m256i block_errors(__m256i input, __m256i prev_input) {
    const __m256i low_nibble = _mm256_set1_epi8(0x0F);
    const __m256i prev1 = previous<1>(input, prev_input);
    const __m256i byte1_high = _mm256_shuffle_epi8(
        table(kTooLong, kTooLong, kTooLong, kTooLong, kTooLong, kTooLong, kTooLong, kTooLong,  // 0..7: ASCII
              kTwoConts, kTwoConts, kTwoConts, kTwoConts,                                      // 8..B: continuation
              kTooShort | kOverlong2,                                                          // C
              kTooShort,                                                                       // D
              kTooShort | kOverlong3 | kSurrogate,                                             // E
              kTooShort | kTooLarge | kTooLarge1000 | kOverlong4),                             // F
        _mm256_and_si256(_mm256_srli_epi16(prev1, 4), low_nibble));
    const __m256i byte1_low = _mm256_shuffle_epi8(
        table(kCarry | kOverlong3 | kOverlong2 | kOverlong4,  // _0: C0, E0, F0
              kCarry | kOverlong2,                            // _1: C1
              kCarry, kCarry,                                 // _2, _3
              kCarry | kTooLarge,                             // _4: F4
              kCarry | kTooLarge | kTooLarge1000,             // _5..: F5..FF
              kCarry | kTooLarge | kTooLarge1000, kCarry | kTooLarge | kTooLarge1000,
              kCarry | kTooLarge | kTooLarge1000, kCarry | kTooLarge | kTooLarge1000,
              kCarry | kTooLarge | kTooLarge1000, kCarry | kTooLarge | kTooLarge1000,
              kCarry | kTooLarge | kTooLarge1000,
              kCarry | kTooLarge | kTooLarge1000 | kSurrogate,  // _D: ED
              kCarry | kTooLarge | kTooLarge1000, kCarry | kTooLarge | kTooLarge1000),
        _mm256_and_si256(prev1, low_nibble));
    const __m256i byte2_high = _mm256_shuffle_epi8(
        table(kTooShort, kTooShort, kTooShort, kTooShort, kTooShort, kTooShort, kTooShort, kTooShort,  // 0..7
              kTooLong | kOverlong2 | kTwoConts | kOverlong3 | kTooLarge1000 | kOverlong4,                // 8
              kTooLong | kOverlong2 | kTwoConts | kOverlong3 | kTooLarge,                                // 9
              kTooLong | kOverlong2 | kTwoConts | kSurrogate | kTooLarge,                                // A
              kTooLong | kOverlong2 | kTwoConts | kSurrogate | kTooLarge,                                // B
              kTooShort, kTooShort, kTooShort, kTooShort),                                               // C..F
        _mm256_and_si256(_mm256_srli_epi16(input, 4), low_nibble));
    const __m256i special = _mm256_and_si256(_mm256_and_si256(byte1_high, byte1_low), byte2_high);
    // Two continuations in a row are right exactly where a byte must be the third or fourth of a
    // sequence: two bytes after an E_/F_ lead, or three after an F_ lead.
    const __m256i prev2 = previous<2>(input, prev_input);
    const __m256i prev3 = previous<3>(input, prev_input);
    const __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8(static_cast<char>(0xE0 - 0x80)));
    const __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8(static_cast<char>(0xF0 - 0x80)));
    const __m256i must_be_cont = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8(static_cast<char>(0x80)));
    return _mm256_xor_si256(must_be_cont, special);
}

// Validates [p, p + 32 * blocks), which starts on a code point boundary; the last sequence may be
// unfinished (not an error here). Returns false if any byte is ill-formed.
__attribute__((target("avx2"))) bool validate_blocks(const uint8_t* p, size_t blocks) noexcept {
    __m256i prev = _mm256_setzero_si256();
    __m256i error = _mm256_setzero_si256();
    for (size_t i = 0; i < blocks; ++i, p += 32) {
        const __m256i input = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        // Two ASCII blocks in a row cannot hold an error: skip the checks.
        if (_mm256_movemask_epi8(_mm256_or_si256(input, prev)) != 0) error = _mm256_or_si256(error, block_errors(input, prev));
        prev = input;
    }
    return _mm256_testz_si256(error, error) != 0;
}

bool available() noexcept {
    static const bool yes = __builtin_cpu_supports("avx2");
    return yes;
}

}  // namespace avx2
#endif

// Where the last code point of a well-formed region [begin, end) starts if it is unfinished there
// (end otherwise): its lead is one of the last three bytes.
const uint8_t* unfinished_tail(const uint8_t* begin, const uint8_t* end) noexcept {
    for (int back = 1; back <= 3 && end - back >= begin; ++back) {
        const uint8_t b = end[-back];
        if (b < 0x80) return end;             // ASCII: nothing unfinished
        if (b < 0xC0) continue;               // a continuation: the lead is further back
        const int length = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
        return length > back ? end - back : end;
    }
    return end;
}

}  // namespace

bool Utf8Validator::feed(std::span<const std::byte> bytes) noexcept {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const auto* const end = p + bytes.size();
    uint8_t state = state_;
#if defined(__x86_64__)
    // Long runs go to the vector validator from a code point boundary; the scalar loop below
    // finishes a sequence it left unfinished and the bytes after the last whole block.
    if (end - p >= 64 && avx2::available()) {
        while (state != kAcc && p < end) {
            state = kTransitions[state][kClasses[*p++]];
            if (state == kRej) return state_ = kReject, false;
        }
        const size_t blocks = static_cast<size_t>(end - p) / 32;
        if (blocks >= 2) {
            if (!avx2::validate_blocks(p, blocks)) return state_ = kReject, false;
            p = unfinished_tail(p, p + blocks * 32);
        }
    }
#endif
    while (p < end) {
        // Fast path: between code points, skip ASCII 16 bytes at a time (two words per test).
        if (state == kAcc) {
            while (end - p >= 16) {
                uint64_t a, b;
                std::memcpy(&a, p, 8);
                std::memcpy(&b, p + 8, 8);
                const uint64_t ha = a & kHighBits, hb = b & kHighBits;
                if (ha | hb) {
                    // Skip the ASCII bytes in front of the first non-ASCII one (little-endian:
                    // the lowest set bit is the earliest byte), so mixed text stays fast.
                    if constexpr (std::endian::native == std::endian::little)
                        p += ha ? std::countr_zero(ha) / 8 : 8 + std::countr_zero(hb) / 8;
                    break;
                }
                p += 16;
            }
            if (p == end) break;
            // A whole multi-byte sequence at once when it is all in this buffer, checked against
            // the same Table 3-7 ranges as the DFA (which still handles sequences split across
            // fragments, and the last bytes of a buffer).
            if (end - p >= 4 && *p >= 0x80) {
                const uint8_t b0 = p[0];
                const auto cont = [](uint8_t c) { return (c & 0xC0) == 0x80; };
                if (b0 >= 0xC2 && b0 <= 0xDF) {
                    if (!cont(p[1])) return state_ = kReject, false;
                    p += 2;
                    continue;
                }
                if (b0 >= 0xE0 && b0 <= 0xEF) {
                    const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
                    if (p[1] < lo || p[1] > hi || !cont(p[2])) return state_ = kReject, false;
                    p += 3;
                    continue;
                }
                if (b0 >= 0xF0 && b0 <= 0xF4) {
                    const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
                    if (p[1] < lo || p[1] > hi || !cont(p[2]) || !cont(p[3])) return state_ = kReject, false;
                    p += 4;
                    continue;
                }
                return state_ = kReject, false;  // a continuation byte, C0, C1 or F5..FF
            }
        }
        state = kTransitions[state][kClasses[*p++]];
        if (state == kRej) break;
    }
    state_ = state;
    return state != kRej;
}

bool is_valid_utf8(std::span<const std::byte> bytes) noexcept {
    Utf8Validator v;
    return v.feed(bytes) && v.complete();
}

}  // namespace wsrelay::proto
