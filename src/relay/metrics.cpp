// SPDX-License-Identifier: Apache-2.0
#include <cstdio>
#include <string_view>

#include "relay/stats.h"

namespace wsrelay::relay {
namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, uint64_t value) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                  static_cast<unsigned long long>(value));
    out += buf;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void labelled(std::string& out, const char* name, const char* label, const std::string& value, uint64_t n) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s{%s=\"%s\"} %llu\n", name, label, value.c_str(), static_cast<unsigned long long>(n));
    out += buf;
}

// One sample per status of `statuses` (counts[i]), then "other" (counts.back()).
template <size_t N>
void by_status(std::string& out, const char* name, const std::array<uint16_t, N>& statuses,
               const std::array<uint64_t, N + 1>& counts) {
    for (size_t i = 0; i < N; ++i) labelled(out, name, "status", std::to_string(statuses[i]), counts[i]);
    labelled(out, name, "status", "other", counts.back());
}

}  // namespace

std::string render_metrics(const Stats& s, size_t open_connections, size_t websocket_connections, size_t rooms) {
    std::string o;
    o.reserve(4096);
    metric(o, "wsrelay_connections", "gauge", "Open connections (HTTP and WebSocket).", open_connections);
    metric(o, "wsrelay_websocket_connections", "gauge", "Open WebSocket connections joined to a room.",
           websocket_connections);
    metric(o, "wsrelay_rooms", "gauge", "Rooms with at least one member.", rooms);
    metric(o, "wsrelay_connections_accepted_total", "counter", "Connections accepted.", s.connections_accepted);
    metric(o, "wsrelay_websocket_upgrades_total", "counter", "Successful WebSocket handshakes.", s.websocket_upgrades);
    metric(o, "wsrelay_http_requests_total", "counter", "Plain HTTP requests answered.", s.http_requests);
    metric(o, "wsrelay_tls_handshakes_total", "counter", "Completed TLS handshakes.", s.tls_handshakes);
    metric(o, "wsrelay_tls_handshake_failures_total", "counter", "Failed TLS handshakes.", s.tls_handshake_failures);
    metric(o, "wsrelay_messages_received_total", "counter", "WebSocket messages received from clients.", s.messages_in);
    metric(o, "wsrelay_message_bytes_received_total", "counter", "Payload bytes of messages received.", s.bytes_in);
    metric(o, "wsrelay_messages_sent_total", "counter", "Messages queued to recipients (one per recipient).",
           s.messages_out);
    metric(o, "wsrelay_message_bytes_sent_total", "counter", "Payload bytes of messages queued to recipients.",
           s.bytes_out);
    header(o, "wsrelay_messages_dropped_total", "counter", "Messages not delivered to a recipient, by reason.");
    labelled(o, "wsrelay_messages_dropped_total", "reason", "slow_consumer", s.messages_dropped_slow_consumer);
    labelled(o, "wsrelay_messages_dropped_total", "reason", "rate_limit", s.messages_dropped_rate_limit);
    labelled(o, "wsrelay_messages_dropped_total", "reason", "listen_only", s.messages_dropped_listen_only);
    header(o, "wsrelay_closes_total", "counter", "WebSocket connections closed, by close code (1006: no close frame).");
    for (size_t i = 0; i < Stats::kCloseCodes.size(); ++i)
        labelled(o, "wsrelay_closes_total", "code", std::to_string(Stats::kCloseCodes[i]), s.closes[i]);
    labelled(o, "wsrelay_closes_total", "code", "other", s.closes.back());
    header(o, "wsrelay_http_errors_total", "counter",
           "Requests answered with an HTTP error (refused handshakes, bad requests, limits), by status.");
    by_status(o, "wsrelay_http_errors_total", Stats::kRefusalStatuses, s.refusals);
    header(o, "wsrelay_auth_refusals_total", "counter",
           "WebSocket upgrades refused by [auth]: no token (401), an invalid one (401), a room it does not name (403).");
    labelled(o, "wsrelay_auth_refusals_total", "reason", "missing", s.auth_refused_missing);
    labelled(o, "wsrelay_auth_refusals_total", "reason", "invalid", s.auth_refused_invalid);
    labelled(o, "wsrelay_auth_refusals_total", "reason", "forbidden", s.auth_refused_forbidden);
    metric(o, "wsrelay_api_messages_total", "counter", "Messages posted through the HTTP API.", s.api_messages);
    header(o, "wsrelay_api_requests_total", "counter", "HTTP API requests answered, by status.");
    by_status(o, "wsrelay_api_requests_total", Stats::kApiStatuses, s.api_responses);
    metric(o, "wsrelay_accept_pauses_total", "counter", "Times accepting paused for lack of file descriptors.",
           s.accept_pauses);
    if (s.cluster) {
        metric(o, "wsrelay_cluster_link_up", "gauge", "1 while the Redis backplane link is up, else 0.", s.cluster_up);
        metric(o, "wsrelay_cluster_messages_published_total", "counter", "Messages published to the Redis backplane.",
               s.cluster_published);
        metric(o, "wsrelay_cluster_publishes_total", "counter",
               "PUBLISH commands sent (one per room per loop turn, carrying that turn's messages).", s.cluster_publishes);
        metric(o, "wsrelay_cluster_messages_received_total", "counter",
               "Messages from other instances delivered to local members.", s.cluster_received);
        metric(o, "wsrelay_cluster_messages_dropped_total", "counter",
               "Messages not published for remote members: link down or cluster.max_pending_bytes reached.",
               s.cluster_dropped);
        metric(o, "wsrelay_cluster_reconnects_total", "counter", "Redis links re-established after a loss.",
               s.cluster_reconnects);
        metric(o, "wsrelay_cluster_subscribed_rooms", "gauge", "Rooms subscribed on Redis (rooms with local members).",
               s.cluster_subscribed_rooms);
    }
    if (!s.worker.empty()) {
        // Every sample gets worker="N": the first label, or the only one.
        std::string labelled_out;
        labelled_out.reserve(o.size() + o.size() / 4);
        const std::string label = "worker=\"" + s.worker + "\"";
        size_t start = 0;
        while (start < o.size()) {
            const size_t end = o.find('\n', start);
            const std::string_view line(o.data() + start, end - start);
            if (line.starts_with('#')) {
                labelled_out += line;
            } else if (const size_t brace = line.find('{'); brace != std::string_view::npos) {
                labelled_out.append(line.substr(0, brace + 1)).append(label).append(",").append(line.substr(brace + 1));
            } else {
                const size_t space = line.find(' ');
                labelled_out.append(line.substr(0, space)).append("{").append(label).append("}").append(line.substr(space));
            }
            labelled_out += '\n';
            start = end + 1;
        }
        o.swap(labelled_out);
    }
    return o;
}

}  // namespace wsrelay::relay
