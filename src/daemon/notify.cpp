// SPDX-License-Identifier: Apache-2.0
#include "daemon/notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "io/event_loop.h"
#include "io/unique_fd.h"

namespace wsrelay::daemon {
namespace {

// The notification protocol (sd_notify(3)) is one datagram per message to $NOTIFY_SOCKET. We
// send it ourselves on a non-blocking socket rather than through sd_notify(), whose socket
// blocks when the receiver's queue is full: the reactor must never wait on the service manager
// (or on a test harness that stopped reading). A message that would block is dropped.
void send(const std::string& text) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path) return;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const size_t len = std::strlen(path);
    if (len >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@')) return;
    std::memcpy(addr.sun_path, path, len);
    if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
    const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
    static io::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return;
    while (::sendto(fd.get(), text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&addr), addr_len) < 0 &&
           errno == EINTR) {
    }
}

}  // namespace

void notify_ready(std::string_view status) { send("READY=1\nSTATUS=" + std::string(status)); }

void notify_reloading() {
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(io::monotonic_us()) + "\nSTATUS=reloading");
}

void notify_stopping(std::string_view status) { send("STOPPING=1\nSTATUS=" + std::string(status)); }

void notify_watchdog() { send("WATCHDOG=1"); }

uint64_t watchdog_interval_ms() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return 0;
    return std::max<uint64_t>(usec / 2 / 1000, 1);
}

void notify_status(std::string_view status) { send("STATUS=" + std::string(status)); }

void notify_failure(std::string_view message, int error) {
    std::string s = "STATUS=" + std::string(message);
    if (error > 0) s += "\nERRNO=" + std::to_string(error);
    send(s);
}

}  // namespace wsrelay::daemon
