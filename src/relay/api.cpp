// SPDX-License-Identifier: Apache-2.0
#include "relay/api.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "proto/utf8.h"
#include "relay/access.h"
#include "relay/server.h"

namespace wsrelay::relay {
namespace {

constexpr std::string_view kRooms = "/api/rooms";
constexpr std::string_view kMessages = "/messages";

HttpResponse json(uint16_t status, const nlohmann::json& body, bool close = false, std::string_view extra = {}) {
    // Room paths and users are bytes from clients: invalid UTF-8 is replaced, never thrown on.
    const std::string text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    HttpResponse r;
    r.status = status;
    r.close = close;
    r.bytes.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(proto::status_text(status)).append("\r\n");
    r.bytes.append(extra);
    r.bytes.append("Content-Type: application/json\r\nContent-Length: ").append(std::to_string(text.size()));
    r.bytes.append("\r\nCache-Control: no-store\r\n");
    if (close) r.bytes.append("Connection: close\r\n");
    r.bytes.append("\r\n").append(text);
    return r;
}

HttpResponse error(uint16_t status, std::string_view what, bool close = false, std::string_view extra = {}) {
    return json(status, {{"error", what}}, close, extra);
}

// "text/plain; charset=utf-8" -> text; "application/json" -> text; anything else: binary.
bool is_text(std::string_view content_type) noexcept {
    const std::string_view type = content_type.substr(0, content_type.find(';'));
    return (type.size() >= 5 && proto::iequals(type.substr(0, 5), "text/")) ||
           proto::iequals(type.substr(0, type.find_last_not_of(" \t") + 1), "application/json");
}

// The room of "/api/rooms<room>/messages" (`messages` true) or "/api/rooms<room>"; empty if the
// path is neither.
std::string_view room_of(std::string_view path, bool messages) noexcept {
    if (!path.starts_with(kRooms)) return {};
    std::string_view rest = path.substr(kRooms.size());
    if (messages) {
        if (!rest.ends_with(kMessages)) return {};
        rest.remove_suffix(kMessages.size());
        if (rest.empty() || rest.front() != '/') return {};
        return rest;
    }
    return !rest.empty() && rest.front() == '/' ? rest : std::string_view{};
}

HttpResponse post_message(Server& server, std::string_view room, const proto::Request& req,
                          std::span<const std::byte> body) {
    const bool text = is_text(req.header("Content-Type"));
    if (text && !proto::is_valid_utf8(body)) return error(400, "the body is not valid UTF-8 (Content-Type says text)");
    const size_t delivered = server.hub().post(room, text ? proto::Opcode::Text : proto::Opcode::Binary, body);
    ++server.stats().api_messages;
    return json(202, {{"delivered", delivered}});
}

HttpResponse list_rooms(Server& server) {
    std::vector<std::pair<std::string_view, size_t>> rooms;
    server.hub().for_each_room([&](const Room& r) { rooms.emplace_back(r.name(), r.size()); });
    std::sort(rooms.begin(), rooms.end());
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [path, members] : rooms) list.push_back({{"path", path}, {"members", members}});
    return json(200, {{"rooms", std::move(list)}});
}

HttpResponse show_room(Server& server, std::string_view path) {
    std::vector<std::string_view> users;
    size_t members = 0;
    if (Room* r = server.hub().find(path)) {
        members = r->size();
        r->for_each_member([&](const Connection& c) {
            if (!c.user().empty()) users.push_back(c.user());
        });
    }
    std::sort(users.begin(), users.end());
    return json(200, {{"path", path}, {"members", members}, {"users", users}});
}

}  // namespace

BodyPlan plan_body(Server& server, const proto::Request& req) {
    BodyPlan p;
    // A request whose body is not read cannot be followed by another on this connection.
    const bool has_body = !req.header("Content-Length").empty() || !req.header("Transfer-Encoding").empty();
    const Credentials& cred = server.credentials();
    if (server.config().api_key_file.empty() || cred.api_keys.empty()) {
        p.refusal = error(503, "the API is not enabled: [api] key_file is not set", has_body);
        return p;
    }
    const std::string_view key = bearer_credentials(req);
    if (!api_key_valid(key, cred.api_keys)) {
        p.refusal = error(401, key.empty() ? "an API key is required (Authorization: Bearer <key>)" : "wrong API key",
                          has_body, "WWW-Authenticate: Bearer realm=\"wsrelay-api\"\r\n");
        return p;
    }
    if (!req.header("Transfer-Encoding").empty()) {
        p.refusal = error(411, "send the body with Content-Length (chunked bodies are not accepted)", true);
        return p;
    }
    const std::string_view length = req.header("Content-Length");
    // Two lengths that differ: which one a proxy in front used is unknowable (RFC 9112 §6.3).
    for (const proto::Header& h : req.headers)
        if (proto::iequals(h.name, "Content-Length") && h.value != length) {
            p.refusal = error(400, "more than one Content-Length", true);
            return p;
        }
    if (length.empty()) {
        if (req.method == "POST") p.refusal = error(411, "Content-Length is required");
        return p;
    }
    uint64_t n = 0;
    const auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), n);
    if (ec != std::errc() || end != length.data() + length.size()) {
        p.refusal = error(400, "malformed Content-Length", true);
        return p;
    }
    if (n > server.config().max_message_bytes) {
        p.refusal = error(413, "the message is larger than limits.max_message_bytes (" +
                                   std::to_string(server.config().max_message_bytes) + " bytes)", true);
        return p;
    }
    p.length = static_cast<size_t>(n);
    return p;
}

HttpResponse api_response(Server& server, const proto::Request& req, std::span<const std::byte> body) {
    if (const std::string_view room = room_of(req.path, true); !room.empty()) {
        if (req.method != "POST") return error(405, "use POST to send a message", false, "Allow: POST\r\n");
        return post_message(server, room, req, body);
    }
    if (req.path == kRooms || req.path == std::string(kRooms) + "/") {
        if (req.method != "GET" && !req.head) return error(405, "use GET to list the rooms", false, "Allow: GET, HEAD\r\n");
        return list_rooms(server);
    }
    if (const std::string_view room = room_of(req.path, false); !room.empty()) {
        if (req.method != "GET" && !req.head) return error(405, "use GET to see a room", false, "Allow: GET, HEAD\r\n");
        return show_room(server, room);
    }
    return error(404, "no such API endpoint");
}

}  // namespace wsrelay::relay
