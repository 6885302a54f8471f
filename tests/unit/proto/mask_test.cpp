// SPDX-License-Identifier: Apache-2.0
// apply_mask / apply_mask_reference (proto/mask.h): RFC 6455 §5.3 payload masking.
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "proto/mask.h"
#include "test_support.h"

using namespace wsrelay::proto;
using namespace wsrelay::test;

namespace {

// MaskKey holds the key in wire order: its first byte in memory masks payload byte 0.
MaskKey key_from_wire(std::array<uint8_t, 4> k) {
    MaskKey key;
    std::memcpy(&key, k.data(), 4);
    return key;
}

const std::vector<std::array<uint8_t, 4>> kKeys = {
    {0x00, 0x00, 0x00, 0x00}, {0xFF, 0xFF, 0xFF, 0xFF}, {0x37, 0xFA, 0x21, 0x3D},
    {0x01, 0x02, 0x04, 0x80}, {0xA5, 0x5A, 0x00, 0xFF}, {0x9C, 0x13, 0xE7, 0x42},
};

}  // namespace

TEST_CASE("mask: the reference is RFC 6455 §5.3: octet i XOR key octet (i + phase) mod 4", "[mask]") {
    SECTION("RFC 6455 §5.7: \"Hello\" masked with 37 fa 21 3d") {
        Bytes data = bytes("Hello");
        apply_mask_reference(data, key_from_wire(kMaskKey), 0);
        CHECK(data == hex_bytes({0x7F, 0x9F, 0x4D, 0x51, 0x58}));
    }
    SECTION("each byte uses the key byte of its position, offset by the phase") {
        Rng rng(0x3A5C);
        for (const auto& k : kKeys) {
            for (size_t phase = 0; phase < 4; ++phase) {
                const Bytes original = rng.bytes(37);
                Bytes data = original;
                apply_mask_reference(data, key_from_wire(k), phase);
                size_t wrong = 0;
                for (size_t i = 0; i < data.size(); ++i)
                    if (data[i] != (original[i] ^ std::byte{k[(i + phase) % 4]})) ++wrong;
                CHECK(wrong == 0);
            }
        }
    }
}

TEST_CASE("mask: apply_mask equals the reference for every length, phase, alignment and key", "[mask]") {
    // apply_mask works a word at a time; lengths 0..300 cover the 32-byte loop, the 8-byte loop and
    // every tail, offsets 0..15 every alignment. Guard bytes on both sides must stay untouched:
    // it never writes outside its span.
    constexpr size_t kGuard = 16, kMaxLen = 300;
    Rng rng(0x4D41534B);
    Bytes pristine = rng.bytes(kGuard + 16 + kMaxLen + kGuard);
    size_t combinations = 0, wrong = 0;
    std::vector<std::string> first_wrong;
    for (const auto& k : kKeys) {
        const MaskKey key = key_from_wire(k);
        for (size_t offset = 0; offset < 16; ++offset) {
            for (size_t len = 0; len <= kMaxLen; ++len) {
                for (size_t phase = 0; phase < 4; ++phase) {
                    ++combinations;
                    Bytes fast = pristine, ref = pristine;
                    apply_mask(std::span(fast).subspan(kGuard + offset, len), key, phase);
                    apply_mask_reference(std::span(ref).subspan(kGuard + offset, len), key, phase);
                    if (fast != ref && ++wrong <= 8)
                        first_wrong.push_back("key " + printable(hex_bytes({k[0], k[1], k[2], k[3]})) +
                                              " offset " + std::to_string(offset) + " len " + std::to_string(len) +
                                              " phase " + std::to_string(phase));
                }
            }
        }
    }
    INFO(wrong << " of " << combinations << " combinations differ");
    CHECK(first_wrong == std::vector<std::string>{});
}

TEST_CASE("mask: masking twice restores the data", "[mask]") {
    Rng rng(7);
    const Bytes original = rng.bytes(1000);
    for (const auto& k : kKeys) {
        Bytes data = original;
        apply_mask(data, key_from_wire(k), 3);
        apply_mask(data, key_from_wire(k), 3);
        CHECK(data == original);
    }
}

TEST_CASE("mask: masking in pieces with the running phase equals masking at once", "[mask]") {
    // How the decoder unmasks a frame that arrives in several reads: phase = payload offset mod 4.
    Rng rng(11);
    const Bytes original = rng.bytes(97);
    const MaskKey key = key_from_wire({0x12, 0x34, 0x56, 0x78});
    Bytes whole = original;
    apply_mask(whole, key, 0);
    size_t wrong = 0;
    for (size_t cut = 0; cut <= original.size(); ++cut) {
        for (size_t cut2 = cut; cut2 <= original.size(); cut2 += 5) {
            Bytes pieces = original;
            apply_mask(std::span(pieces).first(cut), key, 0);
            apply_mask(std::span(pieces).subspan(cut, cut2 - cut), key, cut % 4);
            apply_mask(std::span(pieces).subspan(cut2), key, cut2 % 4);
            if (pieces != whole) ++wrong;
        }
    }
    CHECK(wrong == 0);
}
