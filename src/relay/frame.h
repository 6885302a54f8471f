// SPDX-License-Identifier: Apache-2.0
// An immutable, reference-counted run of bytes to send: a WebSocket frame (header and payload in one
// allocation) or an HTTP response. A broadcast encodes its frame once; every recipient's queue then
// holds a reference to the same bytes, so fan-out copies nothing per recipient.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "proto/frame.h"
#include "util/ref_ptr.h"

namespace wsrelay::relay {

class Frame;
using FramePtr = util::RefPtr<const Frame>;

class Frame {
public:
    // An unmasked server frame (FIN set) carrying `payload`; `rsv1` marks a compressed message
    // (RFC 7692).
    static FramePtr encode(proto::Opcode op, std::span<const std::byte> payload, bool rsv1 = false);
    // A close frame with `code` and `reason` (cut to fit 125 bytes at a UTF-8 boundary).
    static FramePtr close(uint16_t code, std::string_view reason);
    // Arbitrary bytes (an HTTP response).
    static FramePtr copy_of(std::string_view bytes);
    // The bytes of `frames`, back to back (a room's batch); `total` is the sum of their sizes.
    static FramePtr join(std::span<const FramePtr> frames, size_t total);

    std::span<const std::byte> bytes() const noexcept { return {data(), size_}; }
    size_t size() const noexcept { return size_; }

    // RefPtr protocol. The count is not atomic: frames never leave the reactor thread.
    void add_ref() const noexcept { ++refs_; }
    void release() const noexcept;

private:
    Frame(size_t size, uint8_t size_class) noexcept : size_class_(size_class), size_(size) {}
    static Frame* allocate(size_t size);
    std::byte* data() const noexcept { return reinterpret_cast<std::byte*>(const_cast<Frame*>(this) + 1); }

    mutable uint32_t refs_ = 1;
    uint8_t size_class_;  // which free list it returns to; kNoClass: plain operator delete
    size_t size_;
};

}  // namespace wsrelay::relay
