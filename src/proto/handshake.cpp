// SPDX-License-Identifier: Apache-2.0
#include "proto/handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>

namespace wsrelay::proto {
namespace {

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// RFC 7230 §3.2.6 tchar.
bool is_tchar(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) noexcept { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}

// RFC 7230 §3.2: field-value is VCHAR, obs-text, SP and HTAB. No other control character (CR, LF,
// NUL...) may appear: accepting them is how request smuggling starts.
bool valid_field_value(std::string_view v) noexcept {
    for (const char c : v) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7F) return false;
    }
    return true;
}

// Calls f(element) for each trimmed, non-empty element of a comma-separated list (RFC 7230 §7).
template <class F>
void for_each_element(std::string_view list, F&& f) {
    while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view item = trim(list.substr(0, comma));
        if (!item.empty()) f(item);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
}

ParseResult error(uint16_t status, std::string_view reason) {
    return {ParseStatus::Error, 0, {status, reason}};
}

// Sec-WebSocket-Key must be the base64 encoding of exactly 16 bytes (RFC 6455 §4.1 item 7): 24
// characters ending in "==".
bool valid_key(std::string_view key) noexcept {
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
    const auto b64 = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    };
    if (!std::all_of(key.begin(), key.begin() + 22, b64)) return false;  // no '=' among the data
    std::array<unsigned char, 18> out{};
    const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(key.data()), 24);
    // EVP_DecodeBlock counts the two padding bytes as output; it returns -1 on a non-base64 character.
    // The last data character must not carry bits beyond the 16th byte (a canonical encoding).
    if (n != 18) return false;
    const char last = key[21];
    return std::string_view("AQgw").find(last) != std::string_view::npos;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

bool list_contains_token(std::string_view list, std::string_view token) noexcept {
    bool found = false;
    for_each_element(list, [&](std::string_view item) { found = found || iequals(item, token); });
    return found;
}

std::string_view Request::header(std::string_view name) const noexcept {
    for (const Header& h : headers)
        if (iequals(h.name, name)) return h.value;
    return {};
}

void RequestParser::reset() noexcept {
    scanned_ = 0;
    request_ = Request{};
}

ParseResult RequestParser::parse(std::span<const std::byte> buffered) {
    std::string_view text(reinterpret_cast<const char*>(buffered.data()), buffered.size());
    // RFC 7230 §3.5: ignore empty lines before the request line (some clients send a CRLF after a
    // POST body). They count towards the header limit like any other byte.
    size_t start = 0;
    while (start + 1 < text.size() && text[start] == '\r' && text[start + 1] == '\n') start += 2;

    // Resume the search for CRLFCRLF where the last call stopped (minus 3: it may straddle reads).
    const size_t from = std::max(start, scanned_ >= 3 ? scanned_ - 3 : 0);
    // Fail fast on what cannot be HTTP at all (a TLS ClientHello on a plain port starts with 0x16):
    // a request line starts with a method token.
    if (start < text.size() && !is_tchar(text[start]) && text[start] != '\r')
        return error(400, "not an HTTP request");
    const size_t end = text.find("\r\n\r\n", from);
    if (end == std::string_view::npos) {
        scanned_ = text.size();
        if (text.size() > limits_.max_header_bytes) return error(431, "request header too large");
        return {};
    }
    const size_t consumed = end + 4;
    if (consumed > limits_.max_header_bytes) return error(431, "request header too large");
    return parse_block(text.substr(start, end + 2 - start), consumed);
}

ParseResult RequestParser::parse_block(std::string_view block, size_t consumed) {
    Request& r = request_;
    // --- Request line: method SP request-target SP HTTP-version CRLF (RFC 7230 §3.1.1) ---
    const size_t eol = block.find("\r\n");
    const std::string_view line = block.substr(0, eol);
    std::string_view rest = block.substr(eol + 2);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return error(400, "malformed request line");
    r.method = line.substr(0, sp1);
    r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(r.method)) return error(400, "malformed method");
    if (r.target.empty() || !std::all_of(r.target.begin(), r.target.end(), [](char c) {
            return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7F;
        }))
        return error(400, "malformed request target");
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
        version[5] > '9' || version[7] < '0' || version[7] > '9')
        return error(400, "malformed HTTP version");
    if (version[5] != '1' || version[7] > '1') return error(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    r.version_minor = version[7] - '0';
    r.head = r.method == "HEAD";

    // --- Target: origin-form, or absolute-form reduced to its path (RFC 7230 §5.3) ---
    std::string_view target = r.target;
    bool empty_path = false;  // absolute-form with no path: "http://host" or "http://host?q"
    if (target.front() != '/') {
        const size_t scheme = target.find("://");
        if (scheme == std::string_view::npos) return error(400, "request target is not a path");
        const size_t start = target.find_first_of("/?", scheme + 3);
        if (start == std::string_view::npos) {
            target = {};
        } else {
            target = target.substr(start);
        }
        empty_path = target.empty() || target.front() == '?';
    }
    if (target.find('#') != std::string_view::npos) return error(400, "fragment in request target");
    const size_t q = target.find('?');
    r.path = empty_path ? std::string_view("/") : target.substr(0, q);
    r.query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);

    // --- Header fields (RFC 7230 §3.2) ---
    size_t host_count = 0, key_count = 0;
    std::string_view ws_version;
    bool has_version = false, has_body = false;
    // Repeated headers form one list (RFC 7230 §3.2.2): tokens are collected across all of them.
    bool upgrade_websocket = false, connection_upgrade = false, connection_close = false, connection_keep_alive = false;
    while (!rest.empty()) {
        const size_t le = rest.find("\r\n");
        const std::string_view hl = rest.substr(0, le);
        rest.remove_prefix(le + 2);
        // RFC 7230 §3.2.4: obsolete line folding may be rejected with 400; we do.
        if (is_ows(hl.front())) return error(400, "obsolete header line folding");
        const size_t colon = hl.find(':');
        if (colon == std::string_view::npos) return error(400, "header line without a colon");
        // No whitespace between name and colon (RFC 7230 §3.2.4): the name must be a bare token.
        const std::string_view name = hl.substr(0, colon);
        if (!is_token(name)) return error(400, "malformed header name");
        const std::string_view value = trim(hl.substr(colon + 1));
        if (!valid_field_value(value)) return error(400, "control character in header value");
        if (r.headers.size() == limits_.max_header_count) return error(431, "too many request headers");
        r.headers.push_back({name, value});

        if (iequals(name, "host")) {
            ++host_count;
            r.host = value;
        } else if (iequals(name, "upgrade")) {
            upgrade_websocket = upgrade_websocket || list_contains_token(value, "websocket");
        } else if (iequals(name, "connection")) {
            connection_upgrade = connection_upgrade || list_contains_token(value, "upgrade");
            connection_close = connection_close || list_contains_token(value, "close");
            connection_keep_alive = connection_keep_alive || list_contains_token(value, "keep-alive");
        } else if (iequals(name, "sec-websocket-key")) {
            ++key_count;
            r.key = value;
        } else if (iequals(name, "sec-websocket-version")) {
            // Repeated headers form one list (RFC 7230 §3.2.2); anything but exactly "13" is refused.
            ws_version = has_version ? std::string_view("repeated") : value;
            has_version = true;
        } else if (iequals(name, "sec-websocket-protocol")) {
            for_each_element(value, [&](std::string_view p) { r.protocols.push_back(p); });
        } else if (iequals(name, "sec-websocket-extensions")) {
            for_each_element(value, [&](std::string_view e) { r.extensions.push_back(e); });
        } else if (iequals(name, "origin")) {
            r.origin = value;
        } else if (iequals(name, "content-length")) {
            has_body = has_body || value != "0";
        } else if (iequals(name, "transfer-encoding")) {
            has_body = true;
        }
    }
    // HTTP/1.1 is persistent unless "close"; HTTP/1.0 only with "keep-alive" (RFC 7230 §6.3).
    r.keep_alive = !connection_close && (r.version_minor == 1 || connection_keep_alive);

    // RFC 7230 §5.4: an HTTP/1.1 request without exactly one Host is answered with 400.
    if (host_count > 1 || (r.version_minor == 1 && host_count == 0)) return error(400, "missing or repeated Host header");

    if (!upgrade_websocket) {
        // Not an upgrade: a plain request. We serve no request bodies, so one would desync a
        // keep-alive connection; refuse it and close.
        if ((r.method == "GET" || r.head) && has_body) return error(400, "request body not allowed");
        r.kind = RequestKind::Http;
        return {ParseStatus::Done, consumed, {}};
    }

    // --- RFC 6455 §4.2.1: the opening handshake ---
    if (r.method != "GET") return error(405, "WebSocket upgrade requires GET");
    if (r.version_minor != 1) return error(400, "WebSocket upgrade requires HTTP/1.1");
    if (!connection_upgrade) return error(400, "Connection header lacks the upgrade token");
    if (!has_version || ws_version != "13") return error(426, "unsupported Sec-WebSocket-Version (need 13)");
    if (key_count != 1 || !valid_key(r.key)) return error(400, "invalid Sec-WebSocket-Key");
    if (has_body) return error(400, "request body not allowed");
    r.kind = RequestKind::WebSocket;
    return {ParseStatus::Done, consumed, {}};
}

std::string websocket_accept(std::string_view key) {
    std::string input;
    input.reserve(key.size() + kWebSocketGuid.size());
    input.append(key).append(kWebSocketGuid);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    unsigned char b64[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
    const int n = EVP_EncodeBlock(b64, digest, SHA_DIGEST_LENGTH);
    return std::string(reinterpret_cast<const char*>(b64), static_cast<size_t>(n));
}

std::string build_upgrade_response(std::string_view key, std::string_view protocol, std::string_view extensions) {
    std::string r;
    r.reserve(160);
    r.append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    r.append(websocket_accept(key)).append("\r\n");
    if (!protocol.empty()) r.append("Sec-WebSocket-Protocol: ").append(protocol).append("\r\n");
    if (!extensions.empty()) r.append("Sec-WebSocket-Extensions: ").append(extensions).append("\r\n");
    r.append("\r\n");
    return r;
}

std::string_view status_text(uint16_t status) noexcept {
    switch (status) {
        case 101: return "Switching Protocols";
        case 200: return "OK";
        case 202: return "Accepted";
        case 204: return "No Content";
        case 304: return "Not Modified";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 426: return "Upgrade Required";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Error";
    }
}

std::string build_error_response(const HttpError& e, bool head, std::string_view extra_headers) {
    std::string body;
    body.append(std::to_string(e.status)).append(" ").append(status_text(e.status)).append(": ");
    body.append(e.reason).append("\n");
    std::string r;
    r.reserve(200 + body.size());
    r.append("HTTP/1.1 ").append(std::to_string(e.status)).append(" ").append(status_text(e.status)).append("\r\n");
    if (e.status == 426) r.append("Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
    if (e.status == 405) r.append("Allow: GET, HEAD\r\n");
    r.append(extra_headers);
    r.append("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ").append(std::to_string(body.size()));
    r.append("\r\nConnection: close\r\n\r\n");
    if (!head) r.append(body);
    return r;
}

}  // namespace wsrelay::proto
