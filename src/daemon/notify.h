// SPDX-License-Identifier: Apache-2.0
// The service manager protocol (sd_notify): readiness, reload, stop and status. Each call is a
// no-op when NOTIFY_SOCKET is unset, so wsrelay behaves the same without systemd.
#pragma once

#include <cstdint>
#include <string_view>

namespace wsrelay::daemon {

void notify_ready(std::string_view status);
// RELOADING=1 with MONOTONIC_USEC=, as Type=notify-reload expects; notify_ready() ends it.
void notify_reloading();
void notify_stopping(std::string_view status);
void notify_status(std::string_view status);
// WATCHDOG=1. watchdog_interval_ms() is how often to send it (half of WatchdogSec=), 0 if off.
void notify_watchdog();
uint64_t watchdog_interval_ms();
// A startup failure: STATUS= with the message and ERRNO= when there is one.
void notify_failure(std::string_view message, int error);

}  // namespace wsrelay::daemon
