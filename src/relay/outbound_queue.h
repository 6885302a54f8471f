// What one connection still has to send: a FIFO of shared frames plus how far into the first one
// the socket has taken. Entries come from a free list, so the steady state allocates nothing.
//
// Control frames (pong) may go ahead of queued data, but only at a frame boundary: never into the
// middle of a frame already partly written, and in the order they were queued.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "relay/frame.h"

namespace wsrelay::relay {

class OutboundQueue {
public:
    OutboundQueue() noexcept = default;
    OutboundQueue(const OutboundQueue&) = delete;
    OutboundQueue& operator=(const OutboundQueue&) = delete;
    ~OutboundQueue() { clear(); }

    bool empty() const noexcept { return head_ == nullptr; }
    uint64_t bytes() const noexcept { return bytes_; }  // not yet written
    bool mid_frame() const noexcept { return head_offset_ != 0; }

    void push_back(FramePtr frame);
    void push_priority(FramePtr frame);

    // Describes up to `max` pending buffers, the first one from the current offset. Returns the
    // number of iovecs filled.
    size_t fill_iov(iovec* iov, size_t max) const noexcept;
    // The socket took `n` bytes: drop fully sent frames, advance into the next.
    void consume(size_t n) noexcept;
    void clear() noexcept;

private:
    struct Entry;
    static Entry* new_entry(FramePtr frame);
    static void free_entry(Entry* e) noexcept;

    Entry* head_ = nullptr;
    Entry* tail_ = nullptr;
    Entry* last_priority_ = nullptr;  // the newest queued control frame that went ahead of data
    uint64_t bytes_ = 0;
    size_t head_offset_ = 0;
};

}  // namespace wsrelay::relay
