// SPDX-License-Identifier: Apache-2.0
// wsrelay-raw-ceiling: the fastest relay we know how to write without WebSocket, to measure
// wsrelay against. Same shape as wsrelay (one thread, edge-triggered epoll, rooms of intrusive
// lists, one writev per peer per loop turn), minus everything WebSocket: no handshake, no framing
// rules, no masking, no UTF-8, no limits beyond memory safety, no logging, no timeouts. Not
// installed; tests/perf/run_suite.sh runs it.
//
// Protocol (see src/bench/wire.h): each message is a 4-byte big-endian length and that many
// bytes. A connection's first message names its room; the server answers it with an empty
// message (the welcome). Every later message is relayed, as is, to every member of the room, the
// sender included. EOF closes the connection.
//
// Relaying copies the message into each recipient's output ring (for the small messages measured
// here a copy costs less than sharing a reference-counted buffer); a turn's messages for one peer
// leave in one sendmsg() (writev() with MSG_NOSIGNAL) of at most two iovecs (the ring may wrap).
//
// Usage: wsrelay-raw-ceiling [--listen ADDR:PORT]   (default 127.0.0.1:9001; port 0 picks one)
// Prints "listening on ADDR:PORT" on stdout once ready. SIGINT/SIGTERM end it.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "io/event_loop.h"
#include "io/listener.h"
#include "io/unique_fd.h"
#include "util/address.h"
#include "util/byte_buffer.h"
#include "util/intrusive_list.h"

namespace wsrelay::bench::raw {
namespace {

constexpr size_t kHeaderBytes = 4;
constexpr size_t kScratchBytes = 256 * 1024;
constexpr size_t kMaxMessageBytes = 128 * 1024;   // a partial message always leaves room to read
constexpr size_t kReadBudgetBytes = 1 << 20;      // per connection per turn, for fairness
constexpr size_t kMaxQueuedBytes = 64u << 20;     // a peer that lets more pile up is dropped
constexpr uint64_t kAcceptPauseMs = 100;

uint32_t load_be32(const std::byte* p) noexcept {
    return (std::to_integer<uint32_t>(p[0]) << 24) | (std::to_integer<uint32_t>(p[1]) << 16) |
           (std::to_integer<uint32_t>(p[2]) << 8) | std::to_integer<uint32_t>(p[3]);
}

// Bytes to send to one peer: a ring, so a partial write never moves memory. Allocated on first
// use and grown by doubling; two iovecs describe its content.
class Ring {
public:
    bool empty() const noexcept { return size_ == 0; }
    size_t size() const noexcept { return size_; }

    void append(std::span<const std::byte> bytes) {
        if (size_ + bytes.size() > capacity_) grow(size_ + bytes.size());
        const size_t tail = (head_ + size_) & (capacity_ - 1);
        const size_t first = std::min(bytes.size(), capacity_ - tail);
        std::memcpy(data_.get() + tail, bytes.data(), first);
        std::memcpy(data_.get(), bytes.data() + first, bytes.size() - first);
        size_ += bytes.size();
    }
    size_t fill_iov(iovec (&iov)[2]) const noexcept {
        const size_t first = std::min(size_, capacity_ - head_);
        iov[0] = {data_.get() + head_, first};
        iov[1] = {data_.get(), size_ - first};
        return size_ == first ? 1 : 2;
    }
    void consume(size_t n) noexcept {
        size_ -= n;
        head_ = size_ == 0 ? 0 : (head_ + n) & (capacity_ - 1);
    }

private:
    void grow(size_t need) {
        size_t cap = capacity_ ? capacity_ * 2 : 4096;
        while (cap < need) cap *= 2;
        auto bigger = std::make_unique_for_overwrite<std::byte[]>(cap);
        iovec iov[2];
        const size_t n = empty() ? 0 : fill_iov(iov);
        size_t at = 0;
        for (size_t i = 0; i < n; ++i) {
            std::memcpy(bigger.get() + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        data_ = std::move(bigger);
        capacity_ = cap;
        head_ = 0;
    }

    std::unique_ptr<std::byte[]> data_;
    size_t head_ = 0;
    size_t size_ = 0;
    size_t capacity_ = 0;  // a power of two
};

class Server;
class Room;

// One client. Owned by the Server: allocated on accept, freed after the loop turn it closed in.
class Conn final : public io::Pollable {
public:
    Conn(Server& server, io::UniqueFd fd) noexcept : server_(server), fd_(std::move(fd)) {}
    ~Conn() {
        room_hook_.unlink();
        dirty_hook_.unlink();
        ready_hook_.unlink();
    }

    void on_event(uint32_t events) override;
    void on_readable(bool drain_to_eof);
    void queue(std::span<const std::byte> message);
    void flush();
    void close();

    util::ListHook room_hook_;   // Room::members_ while in a room
    util::ListHook dirty_hook_;  // Server::dirty_: has bytes to write
    util::ListHook ready_hook_;  // Server::ready_ (read budget ran out), Server::graveyard_ once closed

private:
    void consume(std::span<std::byte> data);

    Server& server_;
    io::UniqueFd fd_;
    Room* room_ = nullptr;
    bool writable_ = true;
    bool closed_ = false;
    util::ByteBuffer pending_;  // a message that spans reads (only then)
    Ring out_;
};

class Room {
public:
    // Copies `message` (header included) to every member's ring. A member whose ring is over the
    // limit is closed, which unlinks it: advance before visiting.
    void relay(std::span<const std::byte> message) {
        for (auto it = members_.begin(); it != members_.end();) {
            Conn& c = *it;
            ++it;
            c.queue(message);
        }
    }
    util::IntrusiveList<Conn, &Conn::room_hook_> members_;
};

class Server {
public:
    explicit Server(io::UniqueFd listen_fd)
        : listener_(std::move(listen_fd), "",
                    [this](io::UniqueFd fd, const sockaddr_storage&, socklen_t) { on_accept(std::move(fd)); },
                    [this](int) { accept_paused_at_ = io::monotonic_ms(); }),
          scratch_(std::make_unique_for_overwrite<std::byte[]>(kScratchBytes)) {
        if (const int e = loop_.add(listener_.fd(), EPOLLIN, &listener_))
            throw std::runtime_error(std::string("epoll_ctl(listener): ") + std::strerror(e));
    }

    [[noreturn]] void run() {
        for (;;) {
            // Connections whose read budget ran out go again (no new edge would say so).
            if (!ready_.empty()) {
                util::IntrusiveList<Conn, &Conn::ready_hook_> now_ready;
                now_ready.splice_back(ready_);
                while (Conn* c = now_ready.pop_front()) c->on_readable(false);
            }
            // Write before sleep: one sendmsg per dirty peer.
            while (Conn* c = dirty_.pop_front()) c->flush();
            while (Conn* c = graveyard_.pop_front()) delete c;
            int timeout = ready_.empty() ? -1 : 0;
            if (accept_paused_at_) {
                const uint64_t now = io::monotonic_ms();
                if (now >= accept_paused_at_ + kAcceptPauseMs) {
                    accept_paused_at_ = 0;
                    listener_.resume();
                } else {
                    timeout = static_cast<int>(accept_paused_at_ + kAcceptPauseMs - now);
                }
            }
            loop_.poll(timeout);
            loop_.dispatch();
        }
    }

    std::span<std::byte> scratch() noexcept { return {scratch_.get(), kScratchBytes}; }
    void mark_dirty(Conn& c) noexcept { dirty_.push_back(c); }
    void mark_ready(Conn& c) noexcept { ready_.push_back(c); }
    void bury(Conn& c) noexcept { graveyard_.push_back(c); }
    Room& room(std::string_view name) {
        auto it = rooms_.find(std::string(name));
        if (it == rooms_.end()) it = rooms_.emplace(std::string(name), std::make_unique<Room>()).first;
        return *it->second;  // rooms are kept when empty: their number is bounded by the names used
    }

private:
    void on_accept(io::UniqueFd fd) {
        const int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const int raw = fd.get();
        auto* c = new Conn(*this, std::move(fd));
        if (loop_.add(raw, EPOLLIN | EPOLLOUT | EPOLLRDHUP, c) != 0) delete c;
    }

    io::EventLoop loop_;
    io::Listener listener_;
    std::unique_ptr<std::byte[]> scratch_;
    uint64_t accept_paused_at_ = 0;
    std::unordered_map<std::string, std::unique_ptr<Room>> rooms_;
    util::IntrusiveList<Conn, &Conn::dirty_hook_> dirty_;
    util::IntrusiveList<Conn, &Conn::ready_hook_> ready_;
    util::IntrusiveList<Conn, &Conn::ready_hook_> graveyard_;
};

// --- Conn ----------------------------------------------------------------------------------------

void Conn::on_event(uint32_t events) {
    if (closed_) return;  // closed earlier in this batch; freed after it
    if (events & EPOLLOUT) {
        writable_ = true;
        if (!out_.empty()) flush();
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
}

void Conn::on_readable(bool drain_to_eof) {
    const std::span<std::byte> scratch = server_.scratch();
    for (size_t budget = kReadBudgetBytes; !closed_;) {
        const size_t have = pending_.size();
        if (have) std::memcpy(scratch.data(), pending_.span().data(), have);
        const std::span<std::byte> room = scratch.subspan(have);
        const ssize_t n = ::recv(fd_.get(), room.data(), room.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) close();
            return;  // EAGAIN: the partial message stays in pending_
        }
        if (n == 0) return close();
        consume(scratch.first(have + static_cast<size_t>(n)));
        // A short read emptied the receive queue; a later byte raises a new edge. After
        // RDHUP/HUP/ERR, read on to the EOF: that edge was this one.
        if (!drain_to_eof && static_cast<size_t>(n) < room.size()) return;
        budget -= std::min(budget, static_cast<size_t>(n));
        if (budget == 0) {
            if (!closed_) server_.mark_ready(*this);
            return;
        }
    }
}

void Conn::consume(std::span<std::byte> data) {
    while (data.size() >= kHeaderBytes && !closed_) {
        const size_t len = load_be32(data.data());
        if (len > kMaxMessageBytes) return close();
        if (data.size() < kHeaderBytes + len) break;
        const auto message = data.first(kHeaderBytes + len);
        data = data.subspan(kHeaderBytes + len);
        if (room_) {
            room_->relay(message);
            continue;
        }
        // The first message names the room. The 4-byte welcome always fits a fresh socket's
        // buffer: written at once, it never allocates a ring for a connection that stays idle.
        room_ = &server_.room({reinterpret_cast<const char*>(message.data() + kHeaderBytes), len});
        room_->members_.push_back(*this);
        static constexpr std::byte kWelcome[kHeaderBytes] = {};
        if (::send(fd_.get(), kWelcome, sizeof kWelcome, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof kWelcome))
            return close();
    }
    if (!closed_) pending_.assign(data);  // keeps its memory: the next partial message reuses it
}

void Conn::queue(std::span<const std::byte> message) {
    if (out_.size() + message.size() > kMaxQueuedBytes) return close();
    out_.append(message);
    server_.mark_dirty(*this);
}

void Conn::flush() {
    dirty_hook_.unlink();
    while (!out_.empty() && writable_ && !closed_) {
        iovec iov[2];
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = out_.fill_iov(iov);
        const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) writable_ = false;
            else close();
            return;
        }
        const size_t total = out_.size();
        out_.consume(static_cast<size_t>(n));
        if (static_cast<size_t>(n) < total) writable_ = false;  // a short write: the socket is full
    }
}

void Conn::close() {
    if (closed_) return;
    closed_ = true;
    room_hook_.unlink();
    dirty_hook_.unlink();
    fd_.reset();  // leaves the epoll set
    server_.bury(*this);
}

}  // namespace
}  // namespace wsrelay::bench::raw

int main(int argc, char** argv) {
    using namespace wsrelay;
    std::signal(SIGPIPE, SIG_IGN);
    std::string listen = "127.0.0.1:9001";
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if ((a == "--listen" || a == "-l") && i + 1 < argc) {
            listen = argv[++i];
        } else if (a.starts_with("--listen=")) {
            listen = std::string(a.substr(9));
        } else {
            std::fprintf(stderr, "usage: wsrelay-raw-ceiling [--listen ADDR:PORT]\n");
            return 2;
        }
    }
    const auto address = util::parse_socket_address(listen);
    if (!address) {
        std::fprintf(stderr, "wsrelay-raw-ceiling: bad address '%s'\n", listen.c_str());
        return 2;
    }
    try {
        io::UniqueFd fd = io::bind_listener(*address);
        const std::string where = io::local_address_of(fd.get());
        bench::raw::Server server(std::move(fd));
        std::printf("listening on %s\n", where.c_str());
        std::fflush(stdout);
        server.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wsrelay-raw-ceiling: %s\n", e.what());
        return 1;
    }
}
