#include "proto/utf8.h"

#include <array>
#include <bit>
#include <cstring>

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

}  // namespace

bool Utf8Validator::feed(std::span<const std::byte> bytes) noexcept {
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const auto* const end = p + bytes.size();
    uint8_t state = state_;
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
