// SPDX-License-Identifier: Apache-2.0
// Incremental UTF-8 validation (RFC 3629, Unicode Table 3-7) for WebSocket text messages.
//
// The validator is a 9-state DFA over byte classes. Because Table 3-7 constrains the second byte of
// E0, ED, F0 and F4 sequences, every ill-formed input (overlong forms, surrogates, code points above
// U+10FFFF, stray continuation bytes) is rejected at the first byte that makes it ill-formed: this is
// the "fail fast" RFC 6455 §8.1 asks for, so a bad fragment is refused before the message ends.
// A code point split across fragments is simply an unfinished state between two feed() calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace wsrelay::proto {

class Utf8Validator {
public:
    // Consumes `bytes`; returns false once the text so far cannot be the prefix of valid UTF-8.
    // After a false return the validator stays rejected until reset().
    bool feed(std::span<const std::byte> bytes) noexcept;
    // True when the text so far ends on a code point boundary (a message may end here).
    bool complete() const noexcept { return state_ == kAccept; }
    bool rejected() const noexcept { return state_ == kReject; }
    void reset() noexcept { state_ = kAccept; }

    static constexpr uint8_t kAccept = 0;
    static constexpr uint8_t kReject = 1;

private:
    uint8_t state_ = kAccept;
};

// Whole-buffer check, for close reasons and tests.
bool is_valid_utf8(std::span<const std::byte> bytes) noexcept;

}  // namespace wsrelay::proto
