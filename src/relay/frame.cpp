#include "relay/frame.h"

#include <cstring>
#include <new>

namespace wsrelay::relay {

// The bytes follow the Frame object in the same allocation (one malloc per broadcast).
Frame* Frame::allocate(size_t size) {
    void* mem = ::operator new(sizeof(Frame) + size);
    return new (mem) Frame(size);
}

void Frame::release() const noexcept {
    if (--refs_ == 0) {
        this->~Frame();
        ::operator delete(const_cast<Frame*>(this));
    }
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

}  // namespace wsrelay::relay
