// SPDX-License-Identifier: Apache-2.0
// A growable byte buffer that owns its memory and gives it back when cleared: connections keep
// one only while a partial request or message is in progress, so idle connections hold nothing.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>

namespace wsrelay::util {

class ByteBuffer {
public:
    std::span<std::byte> span() noexcept { return {data_.get(), size_}; }
    std::span<const std::byte> span() const noexcept { return {data_.get(), size_}; }
    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    void append(std::span<const std::byte> bytes) {
        if (bytes.empty()) return;
        if (size_ + bytes.size() > capacity_) grow(size_ + bytes.size());
        std::memcpy(data_.get() + size_, bytes.data(), bytes.size());
        size_ += bytes.size();
    }
    void assign(std::span<const std::byte> bytes) {
        size_ = 0;
        append(bytes);
    }
    // Empties the buffer and frees its memory.
    void release() noexcept {
        data_.reset();
        size_ = capacity_ = 0;
    }

private:
    void grow(size_t need) {
        size_t cap = capacity_ ? capacity_ : 256;
        while (cap < need) cap *= 2;
        auto bigger = std::make_unique_for_overwrite<std::byte[]>(cap);
        if (size_) std::memcpy(bigger.get(), data_.get(), size_);
        data_ = std::move(bigger);
        capacity_ = cap;
    }

    std::unique_ptr<std::byte[]> data_;
    size_t size_ = 0;
    size_t capacity_ = 0;
};

}  // namespace wsrelay::util
