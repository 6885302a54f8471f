// SPDX-License-Identifier: Apache-2.0
// Intrusive doubly-linked lists: the element carries the links (a ListHook per list it can be on),
// so linking allocates nothing and unlinking is O(1) from the element alone.
//
// An unlinked hook points at itself, which makes unlink() idempotent and is_linked() exact.
// A hook must be unlinked before its owner is destroyed (the destructor asserts it in debug builds).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>

namespace wsrelay::util {

class ListHook {
public:
    ListHook() noexcept = default;
    ListHook(const ListHook&) = delete;
    ListHook& operator=(const ListHook&) = delete;
    ~ListHook() { assert(!is_linked()); }

    bool is_linked() const noexcept { return next_ != this; }
    void unlink() noexcept {
        prev_->next_ = next_;
        next_->prev_ = prev_;
        prev_ = next_ = this;
    }

private:
    template <class T, ListHook T::*>
    friend class IntrusiveList;
    void insert_before(ListHook* pos) noexcept {
        prev_ = pos->prev_;
        next_ = pos;
        pos->prev_->next_ = this;
        pos->prev_ = this;
    }
    ListHook* prev_ = this;
    ListHook* next_ = this;
};

// A list of T linked through the member hook `Hook`. The list does not own its elements.
template <class T, ListHook T::*Hook>
class IntrusiveList {
public:
    IntrusiveList() noexcept = default;
    IntrusiveList(const IntrusiveList&) = delete;
    IntrusiveList& operator=(const IntrusiveList&) = delete;
    ~IntrusiveList() { clear(); }

    bool empty() const noexcept { return !root_.is_linked(); }
    T* front() noexcept { return empty() ? nullptr : owner(root_.next_); }
    T* back() noexcept { return empty() ? nullptr : owner(root_.prev_); }

    // Links `t` at the end; if it was on this (or another list through the same hook) it moves.
    void push_back(T& t) noexcept {
        ListHook& h = t.*Hook;
        h.unlink();
        h.insert_before(&root_);
    }
    void push_front(T& t) noexcept {
        ListHook& h = t.*Hook;
        h.unlink();
        h.insert_before(root_.next_);
    }
    static void erase(T& t) noexcept { (t.*Hook).unlink(); }
    static bool contains_any(const T& t) noexcept { return (t.*Hook).is_linked(); }

    T* pop_front() noexcept {
        T* t = front();
        if (t) erase(*t);
        return t;
    }
    void clear() noexcept {
        while (!empty()) root_.next_->unlink();
    }
    // Moves every element of `other` to the end of this list, in order. O(1).
    void splice_back(IntrusiveList& other) noexcept {
        if (other.empty()) return;
        ListHook* first = other.root_.next_;
        ListHook* last = other.root_.prev_;
        other.root_.prev_ = other.root_.next_ = &other.root_;
        first->prev_ = root_.prev_;
        last->next_ = &root_;
        root_.prev_->next_ = first;
        root_.prev_ = last;
    }

    // Iteration must not unlink the current element; to visit-and-unlink, splice into a local
    // list and pop_front() until it is empty.
    class iterator {
    public:
        explicit iterator(ListHook* h) noexcept : h_(h) {}
        T& operator*() const noexcept { return *owner(h_); }
        T* operator->() const noexcept { return owner(h_); }
        iterator& operator++() noexcept {
            h_ = h_->next_;
            return *this;
        }
        bool operator==(const iterator& o) const noexcept { return h_ == o.h_; }

    private:
        ListHook* h_;
    };
    iterator begin() noexcept { return iterator(root_.next_); }
    iterator end() noexcept { return iterator(&root_); }

private:
    // container_of: the hook's offset inside T, computed from the member pointer. This is the one
    // place where the list relies on the usual object layout (as every intrusive list in C does);
    // T never has virtual bases, so the offset is fixed.
    static T* owner(ListHook* h) noexcept {
        alignas(T) static const unsigned char probe[sizeof(T)] = {};
        const auto* t = reinterpret_cast<const T*>(probe);
        const auto offset = reinterpret_cast<const unsigned char*>(&(t->*Hook)) - probe;
        return reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(h) - offset);
    }

    ListHook root_;
};

}  // namespace wsrelay::util
