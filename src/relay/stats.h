// Counters of the whole server, for logs, the STATUS= line and /metrics. Plain integers: one thread.
#pragma once

#include <cstdint>

namespace wsrelay::relay {

struct Stats {
    uint64_t connections_accepted = 0;
    uint64_t connections_refused = 0;  // max_connections reached
    uint64_t websocket_upgrades = 0;
    uint64_t http_requests = 0;
    uint64_t handshake_failures = 0;
    uint64_t messages_in = 0;
    uint64_t bytes_in = 0;        // WebSocket message payload bytes received
    uint64_t messages_out = 0;    // deliveries: one message to one recipient
    uint64_t bytes_out = 0;       // payload bytes of those deliveries
    uint64_t messages_dropped_slow_consumer = 0;
    uint64_t closes_slow_consumer = 0;
    uint64_t closes_protocol_error = 0;
    uint64_t closes_idle = 0;
    uint64_t accept_pauses = 0;
};

}  // namespace wsrelay::relay
