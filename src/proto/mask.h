// SPDX-License-Identifier: Apache-2.0
// RFC 6455 §5.3 masking: payload byte i is XORed with key byte (i % 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace wsrelay::proto {

// The key as it appears on the wire: key[0] masks the first payload byte.
using MaskKey = uint32_t;  // stored in wire (memory) order, not host arithmetic order

// XORs `data` in place with `key`, starting at key byte `phase` (0..3, the payload offset mod 4).
// Works a machine word at a time with a byte-wise tail; correct for every alignment and length.
void apply_mask(std::span<std::byte> data, MaskKey key, size_t phase) noexcept;

// The byte-by-byte definition, kept for tests and as documentation of what apply_mask computes.
void apply_mask_reference(std::span<std::byte> data, MaskKey key, size_t phase) noexcept;

}  // namespace wsrelay::proto
