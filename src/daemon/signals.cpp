// SPDX-License-Identifier: Apache-2.0
#include "daemon/signals.h"

#include <sys/signalfd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>

namespace wsrelay::daemon {

Signals::Signals(io::EventLoop& loop, Handlers handlers) : handlers_(std::move(handlers)) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0)
        throw std::runtime_error(std::string("sigprocmask: ") + std::strerror(errno));
    fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
    if (const int e = loop.add(fd_.get(), EPOLLIN, this))
        throw std::runtime_error(std::string("epoll_ctl(signalfd): ") + std::strerror(e));
}

void Signals::on_event(uint32_t) {
    signalfd_siginfo info;
    // Edge-triggered: drain every queued signal.
    while (::read(fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo == SIGHUP) {
            if (handlers_.reload) handlers_.reload();
        } else if (handlers_.terminate) {
            handlers_.terminate(static_cast<int>(info.ssi_signo));
        }
    }
}

void ignore_sigpipe() noexcept {
    struct sigaction sa{};
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, nullptr);
}

}  // namespace wsrelay::daemon
