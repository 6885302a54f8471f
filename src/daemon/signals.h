// SPDX-License-Identifier: Apache-2.0
// SIGTERM, SIGINT and SIGHUP delivered through a signalfd into the event loop, so handlers run as
// ordinary loop callbacks (no async-signal-safety concerns). SIGPIPE is ignored process-wide.
#pragma once

#include <functional>

#include "io/event_loop.h"
#include "io/unique_fd.h"

namespace wsrelay::daemon {

class Signals final : public io::Pollable {
public:
    struct Handlers {
        std::function<void(int signo)> terminate;  // SIGTERM, SIGINT
        std::function<void()> reload;              // SIGHUP
    };
    // Blocks the signals and registers the signalfd in `loop`. Throws on failure.
    Signals(io::EventLoop& loop, Handlers handlers);
    void on_event(uint32_t events) override;

private:
    io::UniqueFd fd_;
    Handlers handlers_;
};

// Ignores SIGPIPE: a write to a peer that went away must be an EPIPE, never a dead process
// (OpenSSL writes with plain write(), where MSG_NOSIGNAL cannot be passed).
void ignore_sigpipe() noexcept;

}  // namespace wsrelay::daemon
