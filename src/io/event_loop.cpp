// SPDX-License-Identifier: Apache-2.0
#include "io/event_loop.h"

#include <cerrno>
#include <ctime>
#include <system_error>
#include <utility>

namespace wsrelay::io {

EventLoop::EventLoop() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
}

int EventLoop::add(int fd, uint32_t events, Pollable* p) noexcept {
    epoll_event ev{};
    ev.events = events | EPOLLET;
    ev.data.ptr = p;
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

void EventLoop::remove(int fd) noexcept { ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

int EventLoop::poll(int timeout_ms) noexcept {
    const int n = ::epoll_wait(epoll_.get(), events_, static_cast<int>(std::size(events_)), timeout_ms);
    ready_ = n > 0 ? n : 0;  // EINTR: the caller's loop simply turns again
    return ready_;
}

void EventLoop::dispatch() noexcept {
    const int n = std::exchange(ready_, 0);
    for (int i = 0; i < n; ++i) static_cast<Pollable*>(events_[i].data.ptr)->on_event(events_[i].events);
}

uint64_t monotonic_ms() noexcept { return monotonic_us() / 1000; }

uint64_t monotonic_us() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace wsrelay::io
