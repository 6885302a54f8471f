// SPDX-License-Identifier: Apache-2.0
// The HTTP API for backends, served on listeners with `api = true`:
//   POST /api/rooms<room path>/messages   one message into a room (202 {"delivered": n})
//   GET  /api/rooms                        this instance's rooms and their member counts
//   GET  /api/rooms<room path>             one room: its member count and its members' users (sub)
// Every request needs `Authorization: Bearer <key>` with a key of [api] key_file. Answers are JSON.
//
// The connection gathers a request's body before answering; plan_body() says, from the headers
// alone, how long the body is or why the request is refused before it is read (no key: 401, no
// keys configured: 503, no Content-Length: 411, too big: 413).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "proto/handshake.h"
#include "relay/http.h"

namespace wsrelay::relay {

class Server;

inline bool is_api_path(std::string_view path) noexcept { return path == "/api" || path.starts_with("/api/"); }

struct BodyPlan {
    HttpResponse refusal{.bytes = {}, .status = 0};  // status 0: read `length` bytes of body, then call api_response()
    size_t length = 0;
};
BodyPlan plan_body(Server& server, const proto::Request& req);

// The answer to an API request whose body (plan_body().length bytes) has arrived.
HttpResponse api_response(Server& server, const proto::Request& req, std::span<const std::byte> body);

}  // namespace wsrelay::relay
