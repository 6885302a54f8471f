// SPDX-License-Identifier: Apache-2.0
#include "relay/frame.h"

#include <cstring>
#include <iterator>
#include <new>

namespace wsrelay::relay {

namespace {

// Small frames (chat messages, echoes, pongs, HTTP answers) come from per-size free lists: the hot
// path then allocates nothing, and the sizes just above glibc's per-thread cache (1 KiB) no longer
// take malloc's slow path. Each list keeps at most kMaxFree blocks, so a burst does not pin memory.
constexpr size_t kClassBytes[] = {64, 128, 256, 512, 1024, 2048};  // bytes after the Frame header
constexpr uint8_t kNoClass = 0xFF;
constexpr size_t kMaxFree = 4096;

struct FreeLists {
    void* head[std::size(kClassBytes)] = {};
    size_t count[std::size(kClassBytes)] = {};
    ~FreeLists() {
        for (void*& h : head)
            while (h) {
                void* next = *static_cast<void**>(h);
                ::operator delete(h);
                h = next;
            }
    }
};
FreeLists g_free;

uint8_t class_for(size_t size) noexcept {
    for (uint8_t c = 0; c < std::size(kClassBytes); ++c)
        if (size <= kClassBytes[c]) return c;
    return kNoClass;
}

}  // namespace

// The bytes follow the Frame object in the same allocation (one allocation per broadcast).
Frame* Frame::allocate(size_t size) {
    const uint8_t c = class_for(size);
    void* mem;
    if (c != kNoClass && g_free.head[c]) {
        mem = g_free.head[c];
        g_free.head[c] = *static_cast<void**>(mem);
        --g_free.count[c];
    } else {
        mem = ::operator new(sizeof(Frame) + (c != kNoClass ? kClassBytes[c] : size));
    }
    return new (mem) Frame(size, c);
}

void Frame::release() const noexcept {
    if (--refs_ != 0) return;
    const uint8_t c = size_class_;
    void* mem = const_cast<Frame*>(this);
    this->~Frame();
    if (c != kNoClass && g_free.count[c] < kMaxFree) {
        *static_cast<void**>(mem) = g_free.head[c];
        g_free.head[c] = mem;
        ++g_free.count[c];
        return;
    }
    ::operator delete(mem);
}

FramePtr Frame::encode(proto::Opcode op, std::span<const std::byte> payload, bool rsv1) {
    proto::FrameHeader h;
    h.opcode = op;
    h.rsv1 = rsv1;
    h.payload_len = payload.size();
    const size_t header = proto::frame_header_size(payload.size(), false);
    Frame* f = allocate(header + payload.size());
    proto::encode_frame_header({f->data(), header}, h);
    if (!payload.empty()) std::memcpy(f->data() + header, payload.data(), payload.size());
    return FramePtr::adopt(f);
}

FramePtr Frame::close(uint16_t code, std::string_view reason) {
    std::byte body[proto::kMaxControlPayload];
    const size_t n = proto::encode_close_payload(std::span<std::byte, proto::kMaxControlPayload>(body), code, reason);
    return encode(proto::Opcode::Close, {body, n});
}

FramePtr Frame::copy_of(std::string_view bytes) {
    Frame* f = allocate(bytes.size());
    std::memcpy(f->data(), bytes.data(), bytes.size());
    return FramePtr::adopt(f);
}

FramePtr Frame::join(std::span<const FramePtr> frames, size_t total) {
    Frame* f = allocate(total);
    std::byte* out = f->data();
    for (const FramePtr& part : frames) {
        std::memcpy(out, part->data(), part->size());
        out += part->size();
    }
    return FramePtr::adopt(f);
}

}  // namespace wsrelay::relay
