// SPDX-License-Identifier: Apache-2.0
// A reference-counted handle for single-threaded sharing (the reactor has one thread, so the count
// is a plain integer, not std::shared_ptr's atomic one). T provides add_ref() and release(); the
// latter frees the object when the count drops to zero.
#pragma once

#include <utility>

namespace wsrelay::util {

template <class T>
class RefPtr {
public:
    RefPtr() noexcept = default;
    // Adopts a reference the caller already holds (a freshly made object starts at one).
    static RefPtr adopt(T* p) noexcept {
        RefPtr r;
        r.p_ = p;
        return r;
    }
    RefPtr(const RefPtr& o) noexcept : p_(o.p_) {
        if (p_) p_->add_ref();
    }
    RefPtr(RefPtr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    RefPtr& operator=(RefPtr o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    ~RefPtr() { reset(); }

    void reset() noexcept {
        if (p_) std::exchange(p_, nullptr)->release();
    }
    T* get() const noexcept { return p_; }
    T& operator*() const noexcept { return *p_; }
    T* operator->() const noexcept { return p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }

private:
    T* p_ = nullptr;
};

}  // namespace wsrelay::util
