// SPDX-License-Identifier: Apache-2.0
// Fuzz target for RequestParser: the opening handshake as it arrives over a socket.
//
// Input: [control byte][request bytes...]. The control byte picks the limits (bits 0-1) and how the
// request is cut into reads (bits 2-7, see split_points()). The bytes are fed cumulatively, as a
// connection does: parse(everything received so far) after each read. The outcome must be the one
// a single parse() of the whole input gives, and a finished request must satisfy the invariants the
// relay relies on. Any violation is __builtin_trap(): a crash libFuzzer records as a reproducer.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "fuzz_split.h"
#include "proto/handshake.h"

using namespace wsrelay::proto;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

HandshakeLimits limits_for(uint8_t control) {
    HandshakeLimits l;  // 0: the defaults (8192 bytes, 64 headers)
    switch (control & 3) {
        case 1: l.max_header_bytes = 96; break;  // shorter than most real requests
        case 2: l.max_header_count = 2; break;   // Host + one more
        case 3: l.max_header_bytes = 256, l.max_header_count = 0; break;
    }
    return l;
}

bool within(std::string_view v, std::span<const std::byte> buf) {
    if (v.empty()) return true;
    const auto* b = reinterpret_cast<const char*>(buf.data());
    return v.data() >= b && v.data() + v.size() <= b + buf.size();
}

// Everything the parser reports, compared field by field between the two ways of feeding it.
bool same_outcome(const ParseResult& a, const Request& ra, const ParseResult& b, const Request& rb) {
    if (a.status != b.status) return false;
    if (a.status == ParseStatus::Error) return a.error.status == b.error.status && a.error.reason == b.error.reason;
    if (a.status == ParseStatus::NeedMore) return true;
    if (a.consumed != b.consumed || ra.kind != rb.kind) return false;
    if (ra.method != rb.method || ra.target != rb.target || ra.path != rb.path || ra.query != rb.query ||
        ra.version_minor != rb.version_minor || ra.keep_alive != rb.keep_alive || ra.head != rb.head ||
        ra.host != rb.host || ra.origin != rb.origin || ra.key != rb.key || ra.protocols != rb.protocols ||
        ra.extensions != rb.extensions || ra.headers.size() != rb.headers.size())
        return false;
    for (size_t i = 0; i < ra.headers.size(); ++i)
        if (ra.headers[i].name != rb.headers[i].name || ra.headers[i].value != rb.headers[i].value) return false;
    return true;
}

// A response we build must be exactly one header block: CR and LF only as line ends, so nothing a
// peer sent can inject a header or end the block early.
bool one_header_block(std::string_view resp, bool body_follows) {
    const size_t end = resp.find("\r\n\r\n");
    if (end == std::string_view::npos) return false;
    if (!body_follows && end + 4 != resp.size()) return false;
    const std::string_view head = resp.substr(0, end + 2);
    for (size_t i = 0; i < head.size(); ++i) {
        if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')) return false;
        if (head[i] == '\r' && (i + 1 == head.size() || head[i + 1] != '\n')) return false;
    }
    return true;
}

void check_done(const ParseResult& r, const Request& req, std::span<const std::byte> in, const HandshakeLimits& lim) {
    check(r.consumed >= 4 && r.consumed <= in.size());
    check(r.consumed <= lim.max_header_bytes);
    const std::string_view text(reinterpret_cast<const char*>(in.data()), r.consumed);
    check(text.substr(text.size() - 4) == "\r\n\r\n");
    check(req.headers.size() <= lim.max_header_count);
    check(!req.path.empty() && req.path.front() == '/');
    check(!req.method.empty());
    // Views point into the request bytes (the absolute-form "/" fallback is a literal).
    check(within(req.method, in.first(r.consumed)) && within(req.target, in.first(r.consumed)));
    check(within(req.query, in.first(r.consumed)) && within(req.host, in.first(r.consumed)));
    check(within(req.key, in.first(r.consumed)) && within(req.origin, in.first(r.consumed)));
    for (const Header& h : req.headers) check(within(h.name, in.first(r.consumed)) && within(h.value, in.first(r.consumed)));
    for (const auto p : req.protocols) check(!p.empty() && within(p, in.first(r.consumed)));
    for (const auto e : req.extensions) check(!e.empty() && within(e, in.first(r.consumed)));
    check(req.version_minor == 0 || req.version_minor == 1);
    check(req.head == (req.method == "HEAD"));

    if (req.kind == RequestKind::WebSocket) {
        check(req.method == "GET" && req.version_minor == 1);
        check(req.key.size() == 24);
        const std::string accept = websocket_accept(req.key);
        check(accept.size() == 28 && accept.back() == '=');
        const std::string_view proto = req.protocols.empty() ? std::string_view{} : req.protocols.front();
        const std::string_view ext = req.extensions.empty() ? std::string_view{} : req.extensions.front();
        const std::string resp = build_upgrade_response(req.key, proto, ext);
        check(resp.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        check(resp.find("Sec-WebSocket-Accept: " + accept + "\r\n") != std::string::npos);
        check(one_header_block(resp, false));
    }
}

void check_error(const ParseResult& r, bool head) {
    const uint16_t s = r.error.status;
    check(s == 400 || s == 405 || s == 426 || s == 431 || s == 505);
    check(!r.error.reason.empty() && status_text(s) != "Error");
    const std::string resp = build_error_response(r.error, head);
    check(resp.starts_with("HTTP/1.1 " + std::to_string(s) + " "));
    check(one_header_block(resp, !head));
    // Content-Length matches the body (HEAD: announced, not sent).
    const size_t cl = resp.find("Content-Length: ");
    check(cl != std::string::npos);
    const size_t body = resp.find("\r\n\r\n") + 4;
    if (!head) check(std::stoul(resp.substr(cl + 16)) == resp.size() - body);
    else check(body == resp.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t control = data[0];
    const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
    const HandshakeLimits limits = limits_for(control);

    // The reference: the whole input in one parse().
    RequestParser whole(limits);
    const ParseResult expected = whole.parse(in);

    // As a connection sees it: after each read, parse everything buffered so far.
    RequestParser parser(limits);
    ParseResult got;
    for (const size_t end : wsrelay::fuzz::split_points(static_cast<uint8_t>(control >> 2), in.size())) {
        got = parser.parse(in.first(end));
        if (got.status != ParseStatus::NeedMore) break;
        check(got.consumed == 0);
    }
    check(same_outcome(got, parser.request(), expected, whole.request()));

    switch (got.status) {
        case ParseStatus::NeedMore:
            // Undecided is only allowed while the limit has not been passed.
            check(in.size() <= limits.max_header_bytes);
            break;
        case ParseStatus::Error:
            check_error(got, false);
            check_error(got, true);
            break;
        case ParseStatus::Done: {
            check_done(got, parser.request(), in, limits);
            // reset() must give a parser indistinguishable from a new one: parse what follows the
            // request (a pipelined request, or frames sent eagerly) with both.
            const auto rest = in.subspan(got.consumed);
            parser.reset();
            RequestParser fresh(limits);
            const ParseResult a = parser.parse(rest);
            const ParseResult b = fresh.parse(rest);
            check(same_outcome(a, parser.request(), b, fresh.request()));
            if (a.status == ParseStatus::Done) check_done(a, parser.request(), rest, limits);
            break;
        }
    }
    return 0;
}
