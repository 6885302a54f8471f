#include "daemon/notify.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <string>

#include "io/event_loop.h"

namespace wsrelay::daemon {
namespace {
void send(const std::string& text) { sd_notify(0, text.c_str()); }
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
