// SPDX-License-Identifier: Apache-2.0
// WebSocket close status codes (RFC 6455 §7.4) and the rule for which may appear on the wire.
#pragma once

#include <cstdint>

namespace wsrelay::proto {

enum class CloseCode : uint16_t {
    Normal = 1000,
    GoingAway = 1001,
    ProtocolError = 1002,
    UnsupportedData = 1003,
    NoStatus = 1005,        // never sent: "the close frame had no code"
    Abnormal = 1006,        // never sent: "the connection dropped without a close frame"
    InvalidPayload = 1007,  // e.g. text that is not UTF-8
    PolicyViolation = 1008,
    MessageTooBig = 1009,
    MandatoryExtension = 1010,
    InternalError = 1011,
};

// RFC 6455 §7.4.1/§7.4.2 and the IANA registry: 1000-1003 and 1007-1014 are assigned and may be
// sent; 1004 is reserved, 1005/1006/1015 must never be on the wire, the rest of 1000-2999 is
// unassigned, 3000-3999 is registered by libraries and 4000-4999 is private use.
constexpr bool is_valid_wire_close_code(uint16_t code) noexcept {
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1014) return true;
    return code >= 3000 && code <= 4999;
}

constexpr uint16_t to_wire(CloseCode c) noexcept { return static_cast<uint16_t>(c); }

}  // namespace wsrelay::proto
