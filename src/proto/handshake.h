// SPDX-License-Identifier: Apache-2.0
// The HTTP/1.1 request that opens a connection (RFC 7230 message syntax) and the WebSocket opening
// handshake on top of it (RFC 6455 §4.1-4.2), sans I/O.
//
// The caller accumulates received bytes contiguously and calls RequestParser::parse() with all of
// them after each read. The parser resumes its search for the blank line where it stopped, so a
// request arriving one byte at a time costs O(total) work; once the header block is complete it is
// parsed in one pass into string views that point into the caller's buffer (valid while that buffer
// is). `consumed` says where the request ended: bytes after it (a pipelined request, or the first
// WebSocket frame sent eagerly) stay the caller's, never dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wsrelay::proto {

struct HandshakeLimits {
    size_t max_header_bytes = 8192;  // request line + headers + blank line; past it: 431
    size_t max_header_count = 64;    // past it: 431
};

// A refusal: the status to answer with and a short reason for the body and the log.
struct HttpError {
    uint16_t status = 400;
    std::string_view reason;  // static text
};

enum class RequestKind : uint8_t {
    WebSocket,  // a valid RFC 6455 upgrade request
    Http,       // any other well-formed request; the caller decides what to serve (or 405)
};

struct Header {
    std::string_view name;   // as sent (compare case-insensitively)
    std::string_view value;  // without surrounding whitespace
};

struct Request {
    RequestKind kind = RequestKind::Http;
    std::string_view method;
    std::string_view target;  // as sent
    std::string_view path;    // target without query; starts with '/' (absolute-form is reduced)
    std::string_view query;   // after '?', without it; empty if none
    int version_minor = 1;    // HTTP/1.<minor>
    bool keep_alive = true;   // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive
    bool head = false;        // method is HEAD
    std::string_view host;
    std::string_view origin;
    std::string_view key;        // Sec-WebSocket-Key (validated: base64 of 16 bytes)
    std::vector<std::string_view> protocols;   // Sec-WebSocket-Protocol tokens, all headers, in order
    std::vector<std::string_view> extensions;  // Sec-WebSocket-Extensions list elements, verbatim
    std::vector<Header> headers;               // every header line, in order
    // Finds the first header with this (case-insensitive) name; empty view if absent.
    std::string_view header(std::string_view name) const noexcept;
};

enum class ParseStatus : uint8_t { NeedMore, Done, Error };

struct ParseResult {
    ParseStatus status = ParseStatus::NeedMore;
    size_t consumed = 0;  // Done: bytes of the request, including leading empty lines
    HttpError error;      // Error: the response to send (then close the connection)
};

class RequestParser {
public:
    explicit RequestParser(const HandshakeLimits& limits = {}) : limits_(limits) {}

    // `buffered` holds every byte received for this request so far, from its first byte. After Done
    // or Error the result is final; call reset() before parsing the next request on the connection.
    ParseResult parse(std::span<const std::byte> buffered);
    const Request& request() const noexcept { return request_; }
    void reset() noexcept;
    void set_limits(const HandshakeLimits& limits) noexcept { limits_ = limits; }

private:
    ParseResult parse_block(std::string_view block, size_t consumed);
    ParseResult finish_websocket();

    HandshakeLimits limits_;
    size_t scanned_ = 0;  // bytes already searched for the end of the header block
    Request request_;
};

// Sec-WebSocket-Accept for a key: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string websocket_accept(std::string_view key);

// The 101 Switching Protocols response. `protocol` and `extensions` are added when non-empty.
std::string build_upgrade_response(std::string_view key, std::string_view protocol = {},
                                   std::string_view extensions = {});

// An error response with a text/plain body naming the reason, "Connection: close", and the headers
// the status calls for (426: Sec-WebSocket-Version: 13; 405: Allow: GET, HEAD) plus `extra_headers`
// (each line ending in CRLF, e.g. a WWW-Authenticate challenge). HEAD gets no body.
std::string build_error_response(const HttpError& error, bool head = false, std::string_view extra_headers = {});

// The standard reason phrase for the statuses this server sends ("Not Found").
std::string_view status_text(uint16_t status) noexcept;

// ASCII case-insensitive equality, and "does this comma-separated list contain the token".
bool iequals(std::string_view a, std::string_view b) noexcept;
bool list_contains_token(std::string_view list, std::string_view token) noexcept;

}  // namespace wsrelay::proto
