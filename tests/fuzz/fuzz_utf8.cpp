// SPDX-License-Identifier: Apache-2.0
// Fuzz target for Utf8Validator and is_valid_utf8.
//
// Input: [control byte][bytes...]. The control byte picks how the bytes are cut into fragments
// (split_points() selector, low 6 bits). Fed fragment by fragment, the validator must agree with
// is_valid_utf8() on the whole input and with an independent reference written here (decode code
// points, then check range, overlong form and surrogates: the textbook way, not a DFA). After every
// fragment it must also "fail fast" (RFC 6455 §8.1): rejected exactly when the bytes so far can no
// longer be the beginning of valid UTF-8. Any violation is __builtin_trap().
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_split.h"
#include "proto/utf8.h"

using namespace wsrelay::proto;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

// RFC 3629 §3/§4: a code point in U+0000..U+10FFFF, not a surrogate (U+D800..U+DFFF), in the
// shortest form. Can the first `have` bytes at p begin such a sequence (have <= its length)?
bool sequence_start_ok(const uint8_t* p, size_t have) {
    const uint8_t b = p[0];
    size_t len;
    uint32_t cp, min;
    if (b < 0x80) len = 1, cp = b, min = 0;
    else if ((b & 0xE0) == 0xC0) len = 2, cp = b & 0x1F, min = 0x80;
    else if ((b & 0xF0) == 0xE0) len = 3, cp = b & 0x0F, min = 0x800;
    else if ((b & 0xF8) == 0xF0) len = 4, cp = b & 0x07, min = 0x10000;
    else return false;  // a continuation byte without a lead, or F8..FF
    for (size_t k = 1; k < have; ++k) {
        if ((p[k] & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    // The code points the remaining continuation bytes can still make form the range [lo, hi].
    uint32_t lo = cp, hi = cp;
    for (size_t k = have; k < len; ++k) lo = lo << 6, hi = (hi << 6) | 0x3F;
    if (hi < min || lo > 0x10FFFF) return false;  // overlong, or above U+10FFFF, whatever follows
    if (lo < min) lo = min;
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    return !(lo >= 0xD800 && hi <= 0xDFFF);  // false when every completion is a surrogate
}

size_t sequence_length(uint8_t b) {
    return b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
}

// The reference verdict for every prefix of the input, from one left-to-right pass.
struct Reference {
    size_t invalid_from = SIZE_MAX;  // prefixes this long or longer can never become valid
    std::vector<bool> boundary;      // boundary[k]: the first k bytes end between code points

    Reference(const uint8_t* p, size_t n) : boundary(n + 1, false) {
        boundary[0] = true;
        for (size_t i = 0; i < n;) {
            const size_t len = sequence_length(p[i]);
            const size_t have = n - i < len ? n - i : len;
            for (size_t h = 1; h <= have; ++h) {
                if (!sequence_start_ok(p + i, h)) {
                    invalid_from = i + h;
                    return;
                }
            }
            i += len;
            if (i <= n) boundary[i] = true;
        }
    }
    bool rejects(size_t k) const { return k >= invalid_from; }             // no continuation helps
    bool accepts(size_t k) const { return !rejects(k) && boundary[k]; }    // valid as it stands
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t* text = data + 1;
    const size_t n = size - 1;
    const auto bytes = std::as_bytes(std::span(text, n));

    const Reference ref(text, n);
    const bool whole = is_valid_utf8(bytes);
    check(whole == ref.accepts(n));

    Utf8Validator v;
    bool ok = true;
    size_t begin = 0;
    for (const size_t end : wsrelay::fuzz::split_points(data[0], n)) {
        const bool fed = v.feed(bytes.subspan(begin, end - begin));
        // Once rejected, it stays rejected.
        check(ok || !fed);
        ok = ok && fed;
        begin = end;
        check(v.rejected() == ref.rejects(end));
        check(fed == !v.rejected());
        check(v.complete() == ref.accepts(end));
    }
    check((ok && v.complete()) == whole);

    // reset() starts over: the validator is reusable for the next message.
    v.reset();
    check(v.complete() && !v.rejected());
    check((v.feed(bytes) && v.complete()) == whole);
    return 0;
}
