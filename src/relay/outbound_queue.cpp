#include "relay/outbound_queue.h"

#include <utility>

namespace wsrelay::relay {

struct OutboundQueue::Entry {
    Entry* next = nullptr;
    FramePtr frame;
};

namespace {
// Free entries, shared by all queues (one thread). Bounded so a burst does not pin memory forever.
constexpr size_t kMaxFreeEntries = 1 << 16;
struct FreeList {
    void* head = nullptr;
    size_t count = 0;
    ~FreeList() {
        while (head) {
            void* next = *static_cast<void**>(head);
            ::operator delete(head);
            head = next;
        }
    }
};
FreeList g_free;
}  // namespace

OutboundQueue::Entry* OutboundQueue::new_entry(FramePtr frame) {
    void* mem;
    if (g_free.head) {
        mem = g_free.head;
        g_free.head = *static_cast<void**>(mem);
        --g_free.count;
    } else {
        mem = ::operator new(sizeof(Entry));
    }
    Entry* e = new (mem) Entry;
    e->frame = std::move(frame);
    return e;
}

void OutboundQueue::free_entry(Entry* e) noexcept {
    e->~Entry();
    if (g_free.count >= kMaxFreeEntries) {
        ::operator delete(e);
        return;
    }
    *reinterpret_cast<void**>(e) = g_free.head;
    g_free.head = e;
    ++g_free.count;
}

void OutboundQueue::push_back(FramePtr frame) {
    bytes_ += frame->size();
    Entry* e = new_entry(std::move(frame));
    if (tail_) tail_->next = e;
    else head_ = e;
    tail_ = e;
}

void OutboundQueue::push_priority(FramePtr frame) {
    // Goes after the last priority frame still queued, else after a partly written head, else first.
    Entry* after = last_priority_ ? last_priority_ : (head_offset_ ? head_ : nullptr);
    bytes_ += frame->size();
    Entry* e = new_entry(std::move(frame));
    if (after) {
        e->next = after->next;
        after->next = e;
        if (tail_ == after) tail_ = e;
    } else {
        e->next = head_;
        head_ = e;
        if (!tail_) tail_ = e;
    }
    last_priority_ = e;
}

size_t OutboundQueue::fill_iov(iovec* iov, size_t max) const noexcept {
    size_t n = 0;
    size_t offset = head_offset_;
    for (const Entry* e = head_; e && n < max; e = e->next) {
        const auto b = e->frame->bytes();
        iov[n].iov_base = const_cast<std::byte*>(b.data() + offset);
        iov[n].iov_len = b.size() - offset;
        offset = 0;
        ++n;
    }
    return n;
}

void OutboundQueue::consume(size_t n) noexcept {
    bytes_ -= n;
    while (n > 0 && head_) {
        const size_t left = head_->frame->size() - head_offset_;
        if (n < left) {
            head_offset_ += n;
            return;
        }
        n -= left;
        head_offset_ = 0;
        Entry* done = head_;
        head_ = done->next;
        if (!head_) tail_ = nullptr;
        if (last_priority_ == done) last_priority_ = nullptr;
        free_entry(done);
    }
}

void OutboundQueue::clear() noexcept {
    while (head_) {
        Entry* e = head_;
        head_ = e->next;
        free_entry(e);
    }
    tail_ = last_priority_ = nullptr;
    bytes_ = 0;
    head_offset_ = 0;
}

}  // namespace wsrelay::relay
