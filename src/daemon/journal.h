// SPDX-License-Identifier: Apache-2.0
// Native journald logging: when stderr is the journal's stream (JOURNAL_STREAM names its device and
// inode, see systemd.exec(5)), log lines go through sd_journal_sendv() with structured fields
// instead, so the journal can be filtered by peer, room and close code.
#pragma once

namespace wsrelay::daemon {

// Installs the journald sink if stderr is connected to the journal. Returns true if it did.
bool use_journal_if_connected() noexcept;

}  // namespace wsrelay::daemon
