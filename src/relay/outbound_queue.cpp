// SPDX-License-Identifier: Apache-2.0
#include "relay/outbound_queue.h"

#include <algorithm>
#include <utility>

namespace wsrelay::relay {

void OutboundQueue::grow() {
    const uint32_t cap = capacity_ < 8 ? 8 : capacity_ * 2;
    auto bigger = std::make_unique<FramePtr[]>(cap);
    for (uint32_t i = 0; i < size_; ++i) bigger[i] = std::move(at(i));
    heap_ = std::move(bigger);
    capacity_ = cap;
    head_ = 0;
}

void OutboundQueue::push_back(FramePtr frame) {
    if (size_ == capacity_) grow();
    bytes_ += frame->size();
    at(size_++) = std::move(frame);
}

void OutboundQueue::push_priority(FramePtr frame) {
    // Goes after the control frames already ahead of the data, and after every frame that holds
    // bytes already written or pinned (a partly written head, or the frames a TLS write that must
    // be retried has taken: OpenSSL sends the record it encrypted, whatever the queue says now, so
    // a frame slipped in front of those bytes would be announced as sent and never be, and the
    // bytes after it would be cut mid-frame). Else first.
    if (size_ == capacity_) grow();
    bytes_ += frame->size();
    uint32_t pos = 0;
    for (size_t taken = 0, promised = head_offset_ + pinned_; pos < size_ && taken < promised; ++pos)
        taken += at(pos)->size();
    pos = std::max(pos, priority_end_);
    for (uint32_t i = size_; i > pos; --i) at(i) = std::move(at(i - 1));  // rare: pongs only
    at(pos) = std::move(frame);
    ++size_;
    priority_end_ = pos + 1;
}

size_t OutboundQueue::fill_iov(iovec* iov, size_t max) const noexcept {
    size_t n = 0;
    size_t offset = head_offset_;
    for (uint32_t i = 0; i < size_ && n < max; ++i) {
        const auto b = at(i)->bytes();
        iov[n].iov_base = const_cast<std::byte*>(b.data() + offset);
        iov[n].iov_len = b.size() - offset;
        offset = 0;
        ++n;
    }
    return n;
}

void OutboundQueue::consume(size_t n) noexcept {
    bytes_ -= n;
    pinned_ -= std::min(pinned_, n);
    while (n > 0 && size_ > 0) {
        FramePtr& head = at(0);
        const size_t left = head->size() - head_offset_;
        if (n < left) {
            head_offset_ += n;
            break;
        }
        n -= left;
        head_offset_ = 0;
        head.reset();
        head_ = (head_ + 1) & (capacity_ - 1);
        --size_;
        if (priority_end_) --priority_end_;  // the region ahead of the data shifts with the head
    }
    if (size_ == 0) {
        head_ = 0;
        priority_end_ = 0;
        // A queue that grew for a big burst gives its memory back once drained.
        if (capacity_ > 64) {
            heap_.reset();
            capacity_ = kInline;
        }
    }
}

void OutboundQueue::clear() noexcept {
    for (uint32_t i = 0; i < size_; ++i) at(i).reset();
    heap_.reset();
    capacity_ = kInline;
    head_ = size_ = priority_end_ = 0;
    bytes_ = 0;
    head_offset_ = 0;
    pinned_ = 0;
}

}  // namespace wsrelay::relay
