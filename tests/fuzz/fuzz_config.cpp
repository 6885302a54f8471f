// SPDX-License-Identifier: Apache-2.0
// Fuzz target: arbitrary text into the config loader. It must return a Config or one error that
// names the source, never crash, hang or throw; and a valid result must satisfy the invariants the
// rest of the server relies on.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto r = wsrelay::config::parse_config(text, "fuzz.toml");
    if (!r.ok) {
        // Every error names the file first: "fuzz.toml:LINE:COL: ..." or "fuzz.toml: ...".
        if (r.error.rfind("fuzz.toml", 0) != 0) __builtin_trap();
        return 0;
    }
    const auto& c = r.config;
    if (c.listen.empty()) __builtin_trap();
    if (c.send_queue_bytes < c.max_message_bytes + 14) __builtin_trap();
    if (c.idle_timeout_ms <= c.ping_interval_ms) __builtin_trap();
    if (c.max_header_bytes > 65536 || c.max_connections == 0 || c.message_burst == 0) __builtin_trap();
    for (const auto& l : c.listen)
        if (l.tls && (c.tls.certificate.empty() || c.tls.private_key.empty())) __builtin_trap();
    return 0;
}
