// SPDX-License-Identifier: Apache-2.0
#include "daemon/journal.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "util/log.h"

namespace wsrelay::daemon {
namespace {

void journal_sink(util::LogLevel level, const util::LogFields* f, std::string_view message) noexcept {
    // Field buffers live on the stack; sd_journal_sendv copies them out before returning.
    char msg[2100], prio[16], conn[48], peer[128], room[600], user[600], code[40];
    iovec iov[8];
    int n = 0;
    auto add = [&](char* buf, size_t size, int len) {
        if (len > 0) iov[n++] = {buf, std::min(static_cast<size_t>(len), size - 1)};
    };
    add(msg, sizeof msg, std::snprintf(msg, sizeof msg, "MESSAGE=%.*s", static_cast<int>(message.size()), message.data()));
    add(prio, sizeof prio, std::snprintf(prio, sizeof prio, "PRIORITY=%d", static_cast<int>(level)));
    iov[n++] = {const_cast<char*>("SYSLOG_IDENTIFIER=wsrelay"), 25};
    if (f) {
        if (f->conn) add(conn, sizeof conn, std::snprintf(conn, sizeof conn, "WSRELAY_CONN=%llu", static_cast<unsigned long long>(f->conn)));
        if (f->peer.text[0] != '\0')
            add(peer, sizeof peer, std::snprintf(peer, sizeof peer, "WSRELAY_PEER=%s", f->peer.c_str()));
        if (!f->room.empty())
            add(room, sizeof room, std::snprintf(room, sizeof room, "WSRELAY_ROOM=%.*s", static_cast<int>(f->room.size()), f->room.data()));
        if (!f->user.empty())
            add(user, sizeof user, std::snprintf(user, sizeof user, "WSRELAY_USER=%.*s", static_cast<int>(f->user.size()), f->user.data()));
        if (f->close_code >= 0) add(code, sizeof code, std::snprintf(code, sizeof code, "WSRELAY_CLOSE_CODE=%d", f->close_code));
    }
    sd_journal_sendv(iov, n);
}

}  // namespace

bool use_journal_if_connected() noexcept {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (!stream) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st{};
    if (::fstat(STDERR_FILENO, &st) != 0 || st.st_dev != dev || st.st_ino != ino) return false;
    util::set_log_sink(journal_sink);
    return true;
}

}  // namespace wsrelay::daemon
