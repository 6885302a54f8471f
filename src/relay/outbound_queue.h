// SPDX-License-Identifier: Apache-2.0
// What one connection still has to send: a FIFO of shared frames plus how far into the first one
// the socket has taken. A contiguous ring of frame handles: walking it to build the iovec array
// touches one cache line per few frames (a linked list of pooled entries cost a cache miss per
// frame on a 1000-member broadcast), and it allocates only when it grows.
//
// Control frames (pong, ping) may go ahead of queued data, but only at a frame boundary: never into
// the middle of a frame already partly written, never in front of bytes the transport has promised
// to send as they are (pin()), and in the order they were queued.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "relay/frame.h"

namespace wsrelay::relay {

class OutboundQueue {
public:
    OutboundQueue() noexcept = default;
    OutboundQueue(const OutboundQueue&) = delete;
    OutboundQueue& operator=(const OutboundQueue&) = delete;
    ~OutboundQueue() { clear(); }

    bool empty() const noexcept { return size_ == 0; }
    uint64_t bytes() const noexcept { return bytes_; }  // not yet written
    bool mid_frame() const noexcept { return head_offset_ != 0; }

    void push_back(FramePtr frame);
    void push_priority(FramePtr frame);

    // Describes up to `max` pending buffers, the first one from the current offset. Returns the
    // number of iovecs filled.
    size_t fill_iov(iovec* iov, size_t max) const noexcept;
    // The socket took `n` bytes: drop fully sent frames, advance into the next.
    void consume(size_t n) noexcept;
    // The transport holds the next `n` pending bytes in a write it must retry with exactly those
    // bytes (a TLS record that got WANT_WRITE: OpenSSL has already encrypted it). Until consume()
    // has taken them, push_priority() places nothing before the end of the frame they end in.
    void pin(size_t n) noexcept { pinned_ = n; }
    void clear() noexcept;

private:
    FramePtr& at(uint32_t i) noexcept { return slots()[(head_ + i) & (capacity_ - 1)]; }
    const FramePtr& at(uint32_t i) const noexcept { return const_cast<OutboundQueue*>(this)->at(i); }
    FramePtr* slots() noexcept { return heap_ ? heap_.get() : inline_; }
    void grow();

    // Two slots inline cover an idle connection (a 101 response, a pong) with no allocation; a
    // busier one moves to a heap ring of a power-of-two size, kept while in use.
    static constexpr uint32_t kInline = 2;
    FramePtr inline_[kInline];
    std::unique_ptr<FramePtr[]> heap_;
    uint32_t capacity_ = kInline;  // a power of two; [head_, head_ + size_) is used
    uint32_t head_ = 0;
    uint32_t size_ = 0;
    uint32_t priority_end_ = 0;  // slots [0, priority_end_) are ahead of the data: a partly
                                 // written head and the control frames queued after it
    uint64_t bytes_ = 0;
    size_t head_offset_ = 0;
    size_t pinned_ = 0;  // bytes after head_offset_ promised to a retried write (see pin())
};

}  // namespace wsrelay::relay
