// SPDX-License-Identifier: Apache-2.0
// The epoll instance and the things registered in it. Everything is registered once, edge-
// triggered, with `data.ptr` pointing at its Pollable; after that each Pollable tracks its own
// readiness (no EPOLL_CTL_MOD in steady state).
//
// The loop knows nothing of connections or deferred frees: its owner (relay::Server) calls wait()
// and does its per-turn bookkeeping (flush dirty connections, free closed ones) around it.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <span>

#include "io/unique_fd.h"

namespace wsrelay::io {

class Pollable {
public:
    // `events` is the EPOLL* mask. May start closing `this`, but must not free it.
    virtual void on_event(uint32_t events) = 0;

protected:
    ~Pollable() = default;
};

class EventLoop {
public:
    EventLoop();  // throws std::system_error if epoll cannot be created

    // Registers `fd` for `events` (EPOLLET is added). Returns 0 or an errno value.
    int add(int fd, uint32_t events, Pollable* p) noexcept;
    // Unregisters `fd`; closing an fd does this too, so this is for fds that stay open.
    void remove(int fd) noexcept;

    // Waits up to `timeout_ms` (-1: forever) for events; returns how many arrived. Then the owner
    // updates its clock and calls dispatch(), so handlers see the time the events arrived.
    int poll(int timeout_ms) noexcept;
    void dispatch() noexcept;

private:
    UniqueFd epoll_;
    int ready_ = 0;
    epoll_event events_[256];
};

// A monotonic clock in milliseconds (CLOCK_MONOTONIC), the time base of every timeout.
uint64_t monotonic_ms() noexcept;
uint64_t monotonic_us() noexcept;

}  // namespace wsrelay::io
