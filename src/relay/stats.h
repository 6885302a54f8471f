// SPDX-License-Identifier: Apache-2.0
// Counters of the whole server, for logs, the STATUS= line and /metrics. Plain integers: one thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace wsrelay::relay {

struct Stats {
    // Close codes counted one by one; anything else lands in "other".
    static constexpr std::array<uint16_t, 10> kCloseCodes{1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1010, 1011};
    // Handshake refusals by HTTP status (and TLS handshake failures separately).
    static constexpr std::array<uint16_t, 12> kRefusalStatuses{400, 401, 403, 404, 405, 408, 411, 413, 426, 431, 503, 505};
    // HTTP API answers by status.
    static constexpr std::array<uint16_t, 9> kApiStatuses{200, 202, 400, 401, 404, 405, 411, 413, 503};

    uint64_t connections_accepted = 0;
    uint64_t connections_refused = 0;  // max_connections reached (also counted as a 503 refusal)
    uint64_t websocket_upgrades = 0;
    uint64_t http_requests = 0;
    uint64_t tls_handshakes = 0;
    uint64_t tls_handshake_failures = 0;
    uint64_t messages_in = 0;
    uint64_t bytes_in = 0;        // WebSocket message payload bytes received
    uint64_t messages_out = 0;    // deliveries: one message to one recipient
    uint64_t bytes_out = 0;       // payload bytes of those deliveries
    uint64_t messages_dropped_slow_consumer = 0;
    uint64_t messages_dropped_rate_limit = 0;
    uint64_t messages_dropped_listen_only = 0;  // from listen-only members, auth.listen_only_action = "drop"
    // [auth] refusals of upgrades: no token (401), an invalid one (401), a room it does not name (403).
    uint64_t auth_refused_missing = 0;
    uint64_t auth_refused_invalid = 0;
    uint64_t auth_refused_forbidden = 0;
    uint64_t api_messages = 0;     // messages posted through the HTTP API
    std::array<uint64_t, kApiStatuses.size() + 1> api_responses{};  // by kApiStatuses, then other
    uint64_t accept_pauses = 0;
    // [cluster]: the Redis backplane (cluster/link.*), reported only when it is configured.
    // `workers` > 1: this worker's number, added to every /metrics sample as worker="N" (empty: one
    // process, no label). Prometheus scrapes each worker and sums them itself.
    std::string worker;
    bool cluster = false;
    bool cluster_up = false;
    uint64_t cluster_published = 0;        // messages published to Redis
    uint64_t cluster_publishes = 0;        // PUBLISH commands (a loop turn's messages of a room share one)
    uint64_t cluster_received = 0;         // messages from other instances, delivered here
    uint64_t cluster_dropped = 0;          // messages not published: link down or max_pending_bytes reached
    uint64_t cluster_reconnects = 0;       // links re-established after a loss
    uint64_t cluster_subscribed_rooms = 0; // rooms subscribed on Redis (rooms with local members)
    std::array<uint64_t, kCloseCodes.size() + 1> closes{};            // by kCloseCodes, then other
    std::array<uint64_t, kRefusalStatuses.size() + 1> refusals{};     // error responses by status, then other

    void count_close(uint16_t code) noexcept {
        size_t i = 0;
        while (i < kCloseCodes.size() && kCloseCodes[i] != code) ++i;
        ++closes[i];
    }
    void count_refusal(uint16_t status) noexcept {
        size_t i = 0;
        while (i < kRefusalStatuses.size() && kRefusalStatuses[i] != status) ++i;
        ++refusals[i];
    }
    void count_auth_refusal(uint16_t status, bool missing) noexcept {
        ++(status == 403 ? auth_refused_forbidden : missing ? auth_refused_missing : auth_refused_invalid);
    }
    void count_api(uint16_t status) noexcept {
        size_t i = 0;
        while (i < kApiStatuses.size() && kApiStatuses[i] != status) ++i;
        ++api_responses[i];
    }
    uint64_t refusal_count(uint16_t status) const noexcept {
        for (size_t i = 0; i < kRefusalStatuses.size(); ++i)
            if (kRefusalStatuses[i] == status) return refusals[i];
        return refusals.back();
    }
    uint64_t close_count(uint16_t code) const noexcept {
        for (size_t i = 0; i < kCloseCodes.size(); ++i)
            if (kCloseCodes[i] == code) return closes[i];
        return closes.back();
    }
};

// Prometheus text exposition (version 0.0.4) of the counters and the live gauges.
std::string render_metrics(const Stats& stats, size_t open_connections, size_t websocket_connections, size_t rooms);

}  // namespace wsrelay::relay
