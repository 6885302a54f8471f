// SPDX-License-Identifier: Apache-2.0
// RequestParser, websocket_accept and the response builders (proto/handshake.h): the HTTP/1.1
// request (RFC 7230) that opens a connection and the WebSocket opening handshake (RFC 6455 §4).
// Every request is also parsed as handshake.h describes a caller doing it: the bytes received so far
// presented cumulatively, split at every point and one byte at a time.
#include <algorithm>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "proto/handshake.h"
#include "test_support.h"

using namespace wsrelay::proto;
using namespace wsrelay::test;

namespace {

using Lines = std::vector<std::string>;

// Request lines joined with CRLF, ended by the empty line.
std::string request(const Lines& lines) {
    std::string s;
    for (const std::string& l : lines) s += l + "\r\n";
    return s + "\r\n";
}

// The client handshake of RFC 6455 §1.2 / §4.1, without the optional headers.
const Lines kUpgrade = {
    "GET /chat HTTP/1.1",
    "Host: server.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
};

std::string header_name(std::string_view line) { return std::string(line.substr(0, line.find(':'))); }

// `lines` with every header called `name` replaced by `replacement` (dropped when it is empty).
Lines replaced(Lines lines, std::string_view name, const std::string& replacement) {
    Lines out;
    for (std::string& l : lines) {
        if (l.find(':') != std::string::npos && iequals(header_name(l), name)) {
            if (!replacement.empty()) out.push_back(replacement);
        } else {
            out.push_back(std::move(l));
        }
    }
    return out;
}

Lines plus(Lines lines, std::initializer_list<std::string> extra) {
    lines.insert(lines.end(), extra.begin(), extra.end());
    return lines;
}

Lines with_request_line(Lines lines, std::string line) {
    lines.front() = std::move(line);
    return lines;
}

// A Request with its views copied, comparable and printable.
struct Snapshot {
    RequestKind kind = RequestKind::Http;
    std::string method, target, path, query;
    int version_minor = 1;
    bool keep_alive = true, head = false;
    std::string host, origin, key;
    std::vector<std::string> protocols, extensions;
    std::vector<std::pair<std::string, std::string>> headers;
    bool operator==(const Snapshot&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Snapshot& s) {
    os << (s.kind == RequestKind::WebSocket ? "WebSocket " : "Http ") << s.method << " " << s.target << " HTTP/1."
       << s.version_minor << " path=" << s.path << " query=" << s.query << " keep_alive=" << s.keep_alive
       << " head=" << s.head << " host=" << s.host << " origin=" << s.origin << " key=" << s.key << " protocols=[";
    for (const auto& p : s.protocols) os << p << ";";
    os << "] extensions=[";
    for (const auto& e : s.extensions) os << e << ";";
    return os << "] " << s.headers.size() << " headers";
}

Snapshot snapshot(const Request& r) {
    Snapshot s{r.kind, std::string(r.method), std::string(r.target), std::string(r.path), std::string(r.query),
               r.version_minor, r.keep_alive, r.head, std::string(r.host), std::string(r.origin), std::string(r.key),
               {}, {}, {}};
    for (const auto p : r.protocols) s.protocols.emplace_back(p);
    for (const auto e : r.extensions) s.extensions.emplace_back(e);
    for (const Header& h : r.headers) s.headers.emplace_back(h.name, h.value);
    return s;
}

struct Parsed {
    ParseStatus status = ParseStatus::NeedMore;
    size_t consumed = 0;
    uint16_t http_status = 0;  // Error only
    Snapshot request;          // Done only
    bool operator==(const Parsed&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Parsed& p) {
    switch (p.status) {
        case ParseStatus::NeedMore: return os << "NeedMore";
        case ParseStatus::Error: return os << "Error " << p.http_status;
        case ParseStatus::Done: return os << "Done consumed=" << p.consumed << " " << p.request;
    }
    return os;
}

Parsed result_of(const RequestParser& parser, const ParseResult& r) {
    Parsed p{r.status, r.consumed, 0, {}};
    if (r.status == ParseStatus::Error) {
        p.consumed = 0;
        p.http_status = r.error.status;
    }
    if (r.status == ParseStatus::Done) p.request = snapshot(parser.request());
    return p;
}

Parsed parse_once(std::string_view text, const HandshakeLimits& limits = {}) {
    RequestParser parser(limits);
    const ParseResult r = parser.parse(as_bytes(text));
    if (r.status == ParseStatus::Error) {
        // An error always comes with a reason for the log and the response body.
        CHECK_FALSE(r.error.reason.empty());
    }
    return result_of(parser, r);
}

// Parses `text` whole, then at every split point (its first `cut` bytes, then all of them, into
// one parser) and one byte at a time (cumulative prefixes of growing length). Every way must give
// the whole parse's result; a Done request must be reported exactly when its last byte arrives,
// never before. Returns the whole parse.
Parsed parse_every_way(std::string_view text, const HandshakeLimits& limits = {}) {
    const Parsed whole = parse_once(text, limits);
    size_t wrong = 0;
    std::string first_wrong;
    auto note = [&](const std::string& how, const Parsed& got) {
        if (++wrong == 1) {
            std::ostringstream os;
            os << how << ": " << got;
            first_wrong = os.str();
        }
    };
    for (size_t cut = 0; cut <= text.size(); ++cut) {
        RequestParser parser(limits);
        const Parsed first = result_of(parser, parser.parse(as_bytes(text.substr(0, cut))));
        const bool early = whole.status == ParseStatus::Done && cut < whole.consumed;
        if (early && first.status != ParseStatus::NeedMore) note("prefix of " + std::to_string(cut) + " bytes", first);
        if (first.status != ParseStatus::NeedMore) {
            if (!early && first != whole) note("prefix of " + std::to_string(cut) + " bytes", first);
            continue;
        }
        const Parsed second = result_of(parser, parser.parse(as_bytes(text)));
        if (second != whole) note("all bytes after a prefix of " + std::to_string(cut), second);
    }
    RequestParser parser(limits);
    Parsed last;
    size_t n = 0;
    while (n < text.size()) {
        last = result_of(parser, parser.parse(as_bytes(text.substr(0, ++n))));
        if (last.status != ParseStatus::NeedMore) break;
    }
    if (last != whole) note("one byte at a time, stopped at " + std::to_string(n), last);
    if (whole.status == ParseStatus::Done && n != whole.consumed)
        note("one byte at a time, Done at " + std::to_string(n), last);
    INFO(wrong << " ways of feeding differ from the whole parse (" << whole << "); the first: " << first_wrong);
    CHECK(wrong == 0);
    return whole;
}

Snapshot expect_websocket(std::string_view text, const HandshakeLimits& limits = {}) {
    INFO(printable(text, 400));
    const Parsed p = parse_every_way(text, limits);
    CHECK(p.status == ParseStatus::Done);
    CHECK(p.consumed == text.size());
    CHECK(p.request.kind == RequestKind::WebSocket);
    return p.request;
}

Snapshot expect_http(std::string_view text, const HandshakeLimits& limits = {}) {
    INFO(printable(text, 400));
    const Parsed p = parse_every_way(text, limits);
    CHECK(p.status == ParseStatus::Done);
    CHECK(p.consumed == text.size());
    CHECK(p.request.kind == RequestKind::Http);
    return p.request;
}

void expect_error(std::string_view text, uint16_t status, const HandshakeLimits& limits = {}) {
    INFO(printable(text, 400));
    const Parsed p = parse_every_way(text, limits);
    CHECK(p.status == ParseStatus::Error);
    CHECK(p.http_status == status);
}

}  // namespace

TEST_CASE("handshake: websocket_accept() (RFC 6455 §1.3, §4.2.2 item 5.4)", "[handshake]") {
    CHECK(websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");  // RFC 6455 §1.3
    CHECK(websocket_accept("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST_CASE("handshake: the RFC 6455 §1.2 client handshake", "[handshake]") {
    const std::string text = request(plus(kUpgrade, {"Origin: http://example.com", "Sec-WebSocket-Protocol: chat, superchat"}));
    const Snapshot r = expect_websocket(text);
    CHECK(r.method == "GET");
    CHECK(r.target == "/chat");
    CHECK(r.path == "/chat");
    CHECK(r.query == "");
    CHECK(r.version_minor == 1);
    CHECK(r.host == "server.example.com");
    CHECK(r.origin == "http://example.com");
    CHECK(r.key == "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK(r.protocols == std::vector<std::string>{"chat", "superchat"});
    CHECK(r.extensions.empty());
    REQUIRE(r.headers.size() == 7);
    CHECK(r.headers.front() == std::pair<std::string, std::string>{"Host", "server.example.com"});
}

TEST_CASE("handshake: browser upgrade requests", "[handshake]") {
    SECTION("Chrome's header set") {
        const std::string text = request({
            "GET /chat?room=lobby&x=1 HTTP/1.1",
            "Host: relay.example.com:8443",
            "Connection: Upgrade",
            "Pragma: no-cache",
            "Cache-Control: no-cache",
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Upgrade: websocket",
            "Origin: https://relay.example.com:8443",
            "Sec-WebSocket-Version: 13",
            "Accept-Encoding: gzip, deflate, br, zstd",
            "Accept-Language: en-US,en;q=0.9",
            "Cookie: session=abc123; theme=dark",
            "Sec-WebSocket-Key: 7a2Wq3c2vcKmfs0qyqVlXw==",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            "Sec-WebSocket-Protocol: chat.v2, chat.v1",
        });
        const Snapshot r = expect_websocket(text);
        CHECK(r.path == "/chat");
        CHECK(r.query == "room=lobby&x=1");
        CHECK(r.host == "relay.example.com:8443");
        CHECK(r.origin == "https://relay.example.com:8443");
        CHECK(r.key == "7a2Wq3c2vcKmfs0qyqVlXw==");
        CHECK(r.protocols == std::vector<std::string>{"chat.v2", "chat.v1"});
        CHECK(r.extensions == std::vector<std::string>{"permessage-deflate; client_max_window_bits"});
        CHECK(r.headers.size() == 14);
        CHECK(r.keep_alive);
    }
    SECTION("Firefox's: Connection: keep-alive, Upgrade") {
        const std::string text = request({
            "GET /ws HTTP/1.1",
            "Host: localhost:8080",
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "Accept: */*",
            "Accept-Language: en-US,en;q=0.5",
            "Accept-Encoding: gzip, deflate, br",
            "Sec-WebSocket-Version: 13",
            "Origin: http://localhost:8080",
            "Sec-WebSocket-Extensions: permessage-deflate",
            "Sec-WebSocket-Key: Q2hhbmdlIG1lIHBsZWFzZQ==",
            "Connection: keep-alive, Upgrade",
            "Sec-Fetch-Dest: empty",
            "Sec-Fetch-Mode: websocket",
            "Sec-Fetch-Site: same-origin",
            "Pragma: no-cache",
            "Cache-Control: no-cache",
            "Upgrade: websocket",
        });
        const Snapshot r = expect_websocket(text);
        CHECK(r.path == "/ws");
        CHECK(r.extensions == std::vector<std::string>{"permessage-deflate"});
        CHECK(r.protocols.empty());
    }
}

TEST_CASE("handshake: RFC 6455 §4.2.1 header matching", "[handshake]") {
    SECTION("RFC 7230 §3.2: header names are case-insensitive") {
        const Snapshot r = expect_websocket(request({"GET /chat HTTP/1.1", "HOST: a.example", "upgrade: websocket",
                                                     "CONNECTION: upgrade", "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
                                                     "SEC-WEBSOCKET-VERSION: 13", "oRiGiN: http://a.example",
                                                     "sec-websocket-PROTOCOL: chat"}));
        CHECK(r.host == "a.example");
        CHECK(r.origin == "http://a.example");
        CHECK(r.protocols == std::vector<std::string>{"chat"});
        REQUIRE_FALSE(r.headers.empty());
        CHECK(r.headers[0].first == "HOST");  // names are kept as sent
    }
    SECTION("RFC 7230 §3.2.3: optional whitespace around a value is not part of it") {
        const Snapshot r = expect_websocket(request({"GET /chat HTTP/1.1", "Host:a.example", "Upgrade: \t websocket \t",
                                                     "Connection:Upgrade ", "Sec-WebSocket-Key: \tdGhlIHNhbXBsZSBub25jZQ==\t",
                                                     "Sec-WebSocket-Version:   13", "X-Empty:", "X-Blank:   "}));
        CHECK(r.host == "a.example");
        CHECK(r.key == "dGhlIHNhbXBsZSBub25jZQ==");
        REQUIRE(r.headers.size() == 7);
        CHECK(r.headers[1] == std::pair<std::string, std::string>{"Upgrade", "websocket"});
        CHECK(r.headers[5] == std::pair<std::string, std::string>{"X-Empty", ""});
        CHECK(r.headers[6] == std::pair<std::string, std::string>{"X-Blank", ""});
    }
    SECTION("RFC 7230 §6.1: Connection is a token list; the upgrade token may be anywhere in it") {
        for (const std::string c : {"Connection: keep-alive, Upgrade", "Connection: Upgrade, keep-alive",
                                    "Connection: keep-alive,Upgrade", "Connection: UPGRADE", "Connection:  , upgrade ,"}) {
            INFO(c);
            expect_websocket(request(replaced(kUpgrade, "Connection", c)));
        }
        // Two Connection headers are one list (RFC 7230 §3.2.2).
        expect_websocket(request(plus(replaced(kUpgrade, "Connection", "Connection: keep-alive"), {"Connection: Upgrade"})));
    }
    SECTION("RFC 6455 §4.2.1 item 3: the Upgrade value is matched case-insensitively") {
        for (const std::string u : {"Upgrade: WebSocket", "Upgrade: WEBSOCKET", "Upgrade: foo/1, websocket"}) {
            INFO(u);
            expect_websocket(request(replaced(kUpgrade, "Upgrade", u)));
        }
    }
    SECTION("RFC 7230 §3.2.2: repeated Sec-WebSocket-Protocol headers form one list, in order") {
        const Snapshot r = expect_websocket(request(plus(
            kUpgrade, {"Sec-WebSocket-Protocol: chat, superchat", "X-Other: 1", "Sec-WebSocket-Protocol: v2.chat"})));
        CHECK(r.protocols == std::vector<std::string>{"chat", "superchat", "v2.chat"});
    }
    SECTION("RFC 7230 §7: list elements are trimmed and empty ones skipped") {
        const Snapshot r = expect_websocket(request(plus(kUpgrade, {"Sec-WebSocket-Protocol:  chat ,superchat ,, \t v3 ,",
                                                                    "Sec-WebSocket-Extensions: a; x=1 , b"})));
        CHECK(r.protocols == std::vector<std::string>{"chat", "superchat", "v3"});
        CHECK(r.extensions == std::vector<std::string>{"a; x=1", "b"});
    }
}

TEST_CASE("handshake: refused upgrade requests", "[handshake]") {
    SECTION("RFC 6455 §4.1 item 1: the method must be GET -> 405") {
        for (const std::string method : {"POST", "PUT", "HEAD", "OPTIONS", "get"}) {
            INFO(method);
            expect_error(request(with_request_line(kUpgrade, method + " /chat HTTP/1.1")), 405);
        }
        const std::string r = build_error_response({405, "WebSocket upgrade requires GET"});
        CHECK(r.find("Allow: GET, HEAD\r\n") != std::string::npos);
    }
    SECTION("RFC 6455 §4.1 item 1: HTTP/1.1 or higher; an HTTP/1.0 upgrade -> 400") {
        expect_error(request(with_request_line(kUpgrade, "GET /chat HTTP/1.0")), 400);
    }
    SECTION("RFC 7230 §5.4: a missing or repeated Host -> 400") {
        expect_error(request(replaced(kUpgrade, "Host", "")), 400);
        expect_error(request(plus(kUpgrade, {"Host: other.example.com"})), 400);
        expect_error(request({"GET / HTTP/1.1"}), 400);  // plain requests too
    }
    SECTION("RFC 6455 §4.2.1 item 4: Connection must contain the upgrade token -> 400") {
        expect_error(request(replaced(kUpgrade, "Connection", "")), 400);
        expect_error(request(replaced(kUpgrade, "Connection", "Connection: keep-alive")), 400);
        expect_error(request(replaced(kUpgrade, "Connection", "Connection: Upgrades")), 400);
        expect_error(request(replaced(kUpgrade, "Connection", "Connection: Upgrade-Insecure")), 400);
    }
    SECTION("RFC 6455 §4.2.1 item 6 and §4.4: a version other than 13 -> 426 naming 13") {
        expect_error(request(replaced(kUpgrade, "Sec-WebSocket-Version", "")), 426);
        for (const std::string v : {"8", "12", "14", "13, 8", "8, 13", "13.0", "013"}) {
            INFO("version " << v);
            expect_error(request(replaced(kUpgrade, "Sec-WebSocket-Version", "Sec-WebSocket-Version: " + v)), 426);
        }
        // Repeated headers are one list (RFC 7230 §3.2.2): "8, 13" and "13, 13" are not "13".
        expect_error(request(plus(kUpgrade, {"Sec-WebSocket-Version: 8"})), 426);
        expect_error(request(plus(replaced(kUpgrade, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"),
                                  {"Sec-WebSocket-Version: 13"})),
                     426);
        expect_error(request(plus(kUpgrade, {"Sec-WebSocket-Version: 13"})), 426);
        const std::string r = build_error_response({426, "unsupported Sec-WebSocket-Version (need 13)"});
        CHECK(r.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0) == 0);
        CHECK(r.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
    }
    SECTION("RFC 6455 §4.2.1 item 5: the key must be base64 of 16 bytes -> 400") {
        for (const std::string k : {
                 "",
                 "dGhlIHNhbXBsZSBub25jZQ=",     // 23 characters
                 "dGhlIHNhbXBsZSBub25jZQ===",   // 25 characters
                 "dGhlIHNhbXBsZSBub25jZQ",      // no padding
                 "dGhlIHNhbXBsZSBub2!jZQ==",    // not base64
                 "dGhlIHNhbXBsZSBub2 jZQ==",    // a space inside
                 "MTIzNDU2Nzg5MDEyMzQ1",        // 15 bytes
                 "MTIzNDU2Nzg5MDEyMzQ1Njc=",    // 17 bytes: 24 characters, one '='
                 "dGhlIHNhbXBsZSBub25jZR==",    // the last character carries bits beyond byte 16
             }) {
            INFO("key \"" << k << "\"");
            expect_error(request(replaced(kUpgrade, "Sec-WebSocket-Key", "Sec-WebSocket-Key: " + k)), 400);
        }
        expect_error(request(replaced(kUpgrade, "Sec-WebSocket-Key", "")), 400);
        expect_error(request(plus(kUpgrade, {"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw=="})), 400);  // two keys
    }
}

TEST_CASE("handshake: malformed requests", "[handshake]") {
    SECTION("RFC 7230 §3.2.4: obsolete line folding -> 400") {
        expect_error(request(plus(kUpgrade, {"X-Folded: first", " second"})), 400);
        expect_error(request(plus(kUpgrade, {"X-Folded: first", "\tsecond"})), 400);
    }
    SECTION("RFC 7230 §3.2.4: whitespace between the header name and the colon -> 400") {
        expect_error(request(replaced(kUpgrade, "Host", "Host : server.example.com")), 400);
        expect_error(request(replaced(kUpgrade, "Host", "Host\t: server.example.com")), 400);
        expect_error(request(plus(kUpgrade, {": no name"})), 400);
        expect_error(request(plus(kUpgrade, {"X(bad): 1"})), 400);
    }
    SECTION("RFC 7230 §3.2: a header line without a colon -> 400") {
        expect_error(request(plus(kUpgrade, {"NoColonHere"})), 400);
    }
    SECTION("RFC 7230 §3.2: control characters in a value -> 400") {
        for (const std::string& v : {std::string("a\x01" "b"), std::string("a\x7F"), std::string("a\0b", 3), std::string("a\rb"),
                                    std::string("a\nb"), std::string("\x1B[31m")}) {
            INFO(printable(v));
            expect_error(request(plus(kUpgrade, {"X-Ctl: " + v})), 400);
        }
        expect_websocket(request(plus(kUpgrade, {"X-Tab: a\tb", "X-Obs-Text: caf\xC3\xA9"})));  // HTAB and obs-text are fine
    }
    SECTION("RFC 7230 §3.1.1: a malformed request line -> 400") {
        for (const std::string line : {
                 "GET  /chat HTTP/1.1", "GET /chat  HTTP/1.1", "GET  HTTP/1.1", "GET /chat HTTP/1.1 ", " GET /chat HTTP/1.1",
                 "GET\t/chat HTTP/1.1", "GET /chat", "GET", "GET /chat http/1.1", "GET /chat HTTP/1", "GET /chat HTTP/1.1x",
                 "GET /chat HTTP/11", "GET /chat HTTP/a.b", "G(T /chat HTTP/1.1", "GET chat HTTP/1.1", "GET /chat#frag HTTP/1.1",
                 "GET /ch\x7Ft HTTP/1.1",
             }) {
            INFO("request line \"" << printable(line) << "\"");
            expect_error(request(with_request_line(kUpgrade, line)), 400);
        }
    }
    SECTION("RFC 7230 §2.6: a major version other than 1 -> 505") {
        for (const std::string v : {"HTTP/2.0", "HTTP/3.0", "HTTP/0.9", "HTTP/1.2"}) {
            INFO(v);
            expect_error(request(with_request_line(kUpgrade, "GET /chat " + v)), 505);
        }
    }
}

TEST_CASE("handshake: header size and count limits -> 431", "[handshake]") {
    const size_t base = request({"GET / HTTP/1.1", "Host: a"}).size();  // an added "X: <n bytes>" line is n + 5
    SECTION("a request of exactly max_header_bytes is accepted, one more byte is not") {
        const std::string exact = request({"GET / HTTP/1.1", "Host: a", "X: " + std::string(100 - base - 5, 'x')});
        REQUIRE(exact.size() == 100);
        expect_http(exact, {.max_header_bytes = 100});
        const std::string over = request({"GET / HTTP/1.1", "Host: a", "X: " + std::string(100 - base - 4, 'x')});
        REQUIRE(over.size() == 101);
        expect_error(over, 431, {.max_header_bytes = 100});
    }
    SECTION("the terminator never comes: NeedMore up to the limit, then 431") {
        const std::string endless = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(200, 'x');
        RequestParser parser({.max_header_bytes = 100});
        CHECK(parser.parse(as_bytes(std::string_view(endless).substr(0, 100))).status == ParseStatus::NeedMore);
        const ParseResult r = parser.parse(as_bytes(std::string_view(endless).substr(0, 101)));
        CHECK(r.status == ParseStatus::Error);
        CHECK(r.error.status == 431);
        expect_error(endless, 431, {.max_header_bytes = 100});
    }
    SECTION("the terminator comes too late") {
        const std::string over = request({"GET / HTTP/1.1", "Host: a", "X: " + std::string(200, 'x')});
        RequestParser parser({.max_header_bytes = 100});
        CHECK(parser.parse(as_bytes(std::string_view(over).substr(0, 99))).status == ParseStatus::NeedMore);
        const ParseResult r = parser.parse(as_bytes(over));
        CHECK(r.status == ParseStatus::Error);
        CHECK(r.error.status == 431);
        // The blank line arriving just past the limit.
        const std::string just_over = request({"GET / HTTP/1.1", "Host: a", "X: " + std::string(100 - base - 4, 'x')});
        RequestParser p2({.max_header_bytes = 100});
        CHECK(p2.parse(as_bytes(std::string_view(just_over).substr(0, 100))).status == ParseStatus::NeedMore);
        CHECK(p2.parse(as_bytes(just_over)).error.status == 431);
    }
    SECTION("leading empty lines count towards the limit") {
        expect_http("\r\n\r\n" + request({"GET / HTTP/1.1", "Host: a", "X: " + std::string(100 - base - 9, 'x')}),
                    {.max_header_bytes = 100});
        expect_error("\r\n\r\n" + request({"GET / HTTP/1.1", "Host: a", "X: " + std::string(100 - base - 8, 'x')}), 431,
                     {.max_header_bytes = 100});
    }
    SECTION("exactly max_header_count headers are accepted, one more is not") {
        Lines lines = {"GET / HTTP/1.1", "Host: a"};
        for (int i = 1; i < 5; ++i) lines.push_back("X-" + std::to_string(i) + ": v");
        REQUIRE(lines.size() == 1 + 5);
        expect_http(request(lines), {.max_header_count = 5});
        expect_error(request(plus(lines, {"X-6: v"})), 431, {.max_header_count = 5});
        // Upgrade requests count the same way.
        expect_websocket(request(kUpgrade), {.max_header_count = 5});
        expect_error(request(plus(kUpgrade, {"Origin: x"})), 431, {.max_header_count = 5});
    }
    SECTION("the defaults: 8192 bytes and 64 headers") {
        Lines lines = {"GET / HTTP/1.1", "Host: a"};
        for (int i = 1; i < 64; ++i) lines.push_back("X-" + std::to_string(i) + ": v");
        expect_http(request(lines));
        expect_error(request(plus(lines, {"X-64: v"})), 431);
        const std::string big = request({"GET / HTTP/1.1", "Host: a", "X: " + std::string(8192 - base - 5, 'x')});
        REQUIRE(big.size() == 8192);
        expect_http(big);
        expect_error(request({"GET / HTTP/1.1", "Host: a", "X: " + std::string(8192 - base - 4, 'x')}), 431);
    }
}

TEST_CASE("handshake: plain HTTP requests and keep-alive (RFC 7230 §6.3)", "[handshake]") {
    struct Case {
        Lines lines;
        bool keep_alive;
    };
    const std::vector<Case> cases = {
        {{"GET / HTTP/1.1", "Host: a"}, true},  // HTTP/1.1: persistent by default
        {{"GET / HTTP/1.1", "Host: a", "Connection: close"}, false},
        {{"GET / HTTP/1.1", "Host: a", "Connection: Close"}, false},
        {{"GET / HTTP/1.1", "Host: a", "Connection: foo, close"}, false},
        {{"GET / HTTP/1.1", "Host: a", "Connection: keep-alive"}, true},
        {{"GET / HTTP/1.1", "Host: a", "Connection: keep-alive", "Connection: close"}, false},
        {{"GET / HTTP/1.0"}, false},  // HTTP/1.0: closes unless keep-alive is asked for
        {{"GET / HTTP/1.0", "Host: a"}, false},
        {{"GET / HTTP/1.0", "Connection: keep-alive"}, true},
        {{"GET / HTTP/1.0", "Connection: Keep-Alive"}, true},
        {{"GET / HTTP/1.0", "Connection: close"}, false},
        {{"GET / HTTP/1.0", "Connection: foo"}, false},
        {{"HEAD / HTTP/1.1", "Host: a"}, true},
        {{"HEAD / HTTP/1.0"}, false},
    };
    SECTION("HTTP/1.1 stays open unless Connection: close; HTTP/1.0 closes unless Connection: keep-alive") {
        for (const Case& c : cases) {
            const std::string text = request(c.lines);
            INFO(printable(text, 200));
            const Snapshot r = expect_http(text);
            CHECK(r.keep_alive == c.keep_alive);
            CHECK(r.head == (r.method == "HEAD"));
            CHECK(r.version_minor == (c.lines.front().back() == '0' ? 0 : 1));
        }
    }
    SECTION("without Upgrade: websocket a request is Http, whatever its other headers") {
        CHECK(expect_http(request(replaced(kUpgrade, "Upgrade", ""))).path == "/chat");
        CHECK(expect_http(request(replaced(kUpgrade, "Upgrade", "Upgrade: h2c"))).kind == RequestKind::Http);
    }
    SECTION("RFC 7230 §5.3: origin-form path and query") {
        const Snapshot r = expect_http(request({"GET /a/b.html?x=1&y=%20 HTTP/1.1", "Host: a"}));
        CHECK(r.path == "/a/b.html");
        CHECK(r.query == "x=1&y=%20");
        CHECK(expect_http(request({"GET /? HTTP/1.1", "Host: a"})).query == "");
    }
    SECTION("RFC 7230 §5.3.2: an absolute-form target is reduced to its path") {
        const Snapshot r = expect_http(request({"GET http://a.example:80/chat?room=1 HTTP/1.1", "Host: a.example"}));
        CHECK(r.target == "http://a.example:80/chat?room=1");
        CHECK(r.path == "/chat");
        CHECK(r.query == "room=1");
        CHECK(expect_http(request({"GET http://a.example HTTP/1.1", "Host: a.example"})).path == "/");
    }
}

TEST_CASE("handshake: request bodies are refused on GET and HEAD -> 400", "[handshake]") {
    expect_error(request({"GET / HTTP/1.1", "Host: a", "Content-Length: 5"}) + "hello", 400);
    expect_error(request({"HEAD / HTTP/1.1", "Host: a", "Content-Length: 5"}) + "hello", 400);
    expect_error(request({"GET / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked"}) + "0\r\n\r\n", 400);
    expect_error(request(plus(kUpgrade, {"Content-Length: 5"})) + "hello", 400);
    expect_http(request({"GET / HTTP/1.1", "Host: a", "Content-Length: 0"}));
}

TEST_CASE("handshake: bytes after the request are left to the caller", "[handshake]") {
    SECTION("a pipelined second request") {
        const std::string first = request({"GET /one HTTP/1.1", "Host: a"});
        const std::string second = request({"GET /two HTTP/1.1", "Host: a", "Connection: close"});
        const std::string text = first + second;
        const Parsed p = parse_every_way(text);
        CHECK(p.status == ParseStatus::Done);
        CHECK(p.consumed == first.size());
        CHECK(p.request.path == "/one");
        RequestParser parser;
        REQUIRE(parser.parse(as_bytes(text)).consumed == first.size());
        parser.reset();
        const ParseResult r = parser.parse(as_bytes(std::string_view(text).substr(first.size())));
        CHECK(r.status == ParseStatus::Done);
        CHECK(r.consumed == second.size());
        CHECK(parser.request().path == "/two");
        CHECK_FALSE(parser.request().keep_alive);
    }
    SECTION("a WebSocket frame sent eagerly after the upgrade request") {
        const std::string req = request(kUpgrade);
        const Bytes frame = masked_frame(Opcode::Text, "early");
        const std::string text = req + str(frame);
        const Parsed p = parse_every_way(text);
        CHECK(p.status == ParseStatus::Done);
        CHECK(p.request.kind == RequestKind::WebSocket);
        REQUIRE(p.consumed == req.size());
        CHECK(decode_whole(as_bytes(std::string_view(text).substr(p.consumed))).items == std::vector<Item>{want::text("early")});
    }
    SECTION("RFC 7230 §3.5: empty lines before the request line are skipped and counted in consumed") {
        const std::string req = request(kUpgrade);
        for (const std::string lead : {"\r\n", "\r\n\r\n", "\r\n\r\n\r\n"}) {
            const Parsed p = parse_every_way(lead + req);
            CHECK(p.status == ParseStatus::Done);
            CHECK(p.consumed == lead.size() + req.size());
            CHECK(p.request.method == "GET");
            CHECK(p.request.kind == RequestKind::WebSocket);
        }
    }
}

TEST_CASE("handshake: reset() parses the next request independently", "[handshake]") {
    const std::string first = request(plus(kUpgrade, {"Sec-WebSocket-Protocol: a, b", "Origin: http://one.example",
                                                      "X-Long: " + std::string(500, 'x')}));
    const std::string second = request({"HEAD /two?q HTTP/1.0", "Connection: keep-alive"});
    RequestParser parser;
    // The first request arrives in two reads, so the parser has a scan position to forget.
    REQUIRE(parser.parse(as_bytes(std::string_view(first).substr(0, first.size() - 10))).status == ParseStatus::NeedMore);
    REQUIRE(parser.parse(as_bytes(first)).status == ParseStatus::Done);
    CHECK(parser.request().protocols.size() == 2);
    parser.reset();
    // In one read: a parser that kept its old scan position would search past this shorter request.
    const ParseResult r = parser.parse(as_bytes(second));
    CHECK(r.status == ParseStatus::Done);
    CHECK(r.consumed == second.size());
    const Snapshot s = snapshot(parser.request());
    Snapshot expected;
    expected.kind = RequestKind::Http;
    expected.method = "HEAD";
    expected.target = "/two?q";
    expected.path = "/two";
    expected.query = "q";
    expected.version_minor = 0;
    expected.keep_alive = true;
    expected.head = true;
    expected.headers = {{"Connection", "keep-alive"}};
    CHECK(s == expected);
    // And a byte at a time after another reset().
    parser.reset();
    ParseResult b;
    size_t n = 0;
    while (n < second.size()) {
        b = parser.parse(as_bytes(std::string_view(second).substr(0, ++n)));
        if (b.status != ParseStatus::NeedMore) break;
    }
    CHECK(b.status == ParseStatus::Done);
    CHECK(n == second.size());
    CHECK(snapshot(parser.request()) == expected);
}

TEST_CASE("handshake: a long request fed one byte at a time completes", "[handshake]") {
    // handshake.h: the parser resumes its search where it stopped, so this is linear work. No timing
    // is asserted; a quadratic parser would only make this test slow.
    Lines lines = {"GET /chat HTTP/1.1", "Host: a"};
    for (int i = 0; i < 60; ++i) lines.push_back("X-Header-" + std::to_string(i) + ": " + std::string(1000, 'v'));
    const std::string text = request(plus(lines, {"Upgrade: websocket", "Connection: Upgrade",
                                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"}));
    RequestParser parser({.max_header_bytes = 1 << 20, .max_header_count = 100});
    ParseResult r;
    size_t n = 0;
    while (n < text.size()) {
        r = parser.parse(as_bytes(std::string_view(text).substr(0, ++n)));
        if (r.status != ParseStatus::NeedMore) break;
    }
    CHECK(r.status == ParseStatus::Done);
    CHECK(n == text.size());
    CHECK(r.consumed == text.size());
    CHECK(parser.request().kind == RequestKind::WebSocket);
    CHECK(parser.request().headers.size() == 65);
}

TEST_CASE("handshake: Request::header() finds the first header of a name, case-insensitively", "[handshake]") {
    const std::string text = request(plus(kUpgrade, {"X-Dup: one", "x-dup: two"}));
    RequestParser parser;
    REQUIRE(parser.parse(as_bytes(text)).status == ParseStatus::Done);
    const Request& r = parser.request();
    CHECK(r.header("x-DUP") == "one");
    CHECK(r.header("sec-websocket-version") == "13");
    CHECK(r.header("X-Missing").empty());
    CHECK(r.header("X-Du").empty());
}

TEST_CASE("handshake: build_upgrade_response() (RFC 6455 §4.2.2)", "[handshake]") {
    CHECK(build_upgrade_response("dGhlIHNhbXBsZSBub25jZQ==") ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "\r\n");
    CHECK(build_upgrade_response("dGhlIHNhbXBsZSBub25jZQ==", "chat", "permessage-deflate") ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "Sec-WebSocket-Protocol: chat\r\n"
          "Sec-WebSocket-Extensions: permessage-deflate\r\n"
          "\r\n");
}

TEST_CASE("handshake: build_error_response()", "[handshake]") {
    for (const uint16_t status : {400, 403, 404, 405, 408, 413, 426, 429, 431, 500, 503, 505}) {
        INFO("status " << status);
        const HttpError e{status, "the reason"};
        const std::string r = build_error_response(e);
        const size_t end = r.find("\r\n\r\n");
        REQUIRE(end != std::string::npos);
        const std::string head = r.substr(0, end + 2), body = r.substr(end + 4);
        CHECK(head.rfind("HTTP/1.1 " + std::to_string(status) + " " + std::string(status_text(status)) + "\r\n", 0) == 0);
        CHECK(head.find("\r\nConnection: close\r\n") != std::string::npos);
        CHECK(head.find("\r\nContent-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
        CHECK(head.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n") != std::string::npos);
        CHECK(body.find("the reason") != std::string::npos);
        CHECK((head.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos) == (status == 426));
        CHECK((head.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos) == (status == 405));
        // HEAD: the same head (the length of the body it would have had), no body.
        const std::string h = build_error_response(e, true);
        CHECK(h == head + "\r\n");
    }
}

TEST_CASE("handshake: status_text()", "[handshake]") {
    CHECK(status_text(101) == "Switching Protocols");
    CHECK(status_text(400) == "Bad Request");
    CHECK(status_text(202) == "Accepted");
    CHECK(status_text(401) == "Unauthorized");
    CHECK(status_text(411) == "Length Required");
    CHECK(status_text(413) == "Content Too Large");
    CHECK(status_text(404) == "Not Found");
    CHECK(status_text(405) == "Method Not Allowed");
    CHECK(status_text(426) == "Upgrade Required");
    CHECK(status_text(431) == "Request Header Fields Too Large");
    CHECK(status_text(505) == "HTTP Version Not Supported");
    CHECK_FALSE(status_text(599).empty());
}

TEST_CASE("handshake: iequals() and list_contains_token()", "[handshake]") {
    CHECK(iequals("WebSocket", "websocket"));
    CHECK(iequals("", ""));
    CHECK_FALSE(iequals("websocket", "websockets"));
    CHECK_FALSE(iequals("a", "b"));
    CHECK_FALSE(iequals("[", "{"));  // only ASCII letters fold (0x5B and 0x7B differ by 0x20 too)
    CHECK(list_contains_token("keep-alive, Upgrade", "upgrade"));
    CHECK(list_contains_token(" upgrade ", "upgrade"));
    CHECK(list_contains_token("a,,upgrade,", "upgrade"));
    CHECK_FALSE(list_contains_token("upgrades", "upgrade"));
    CHECK_FALSE(list_contains_token("up grade", "upgrade"));
    CHECK_FALSE(list_contains_token("", "upgrade"));
}

// ------------------------------------------------------------------------------------------------
// Regression tests for four parser bugs these tests found (each failed before the fix). They state
// what the RFCs require (see the comment on each); tag [regression] selects them.

// Was: valid_key() relied on EVP_DecodeBlock(), which decodes '=' anywhere as a zero sextet,
// so a key with '=' inside its 22 data characters is accepted. RFC 6455 §4.2.1 item 5 requires "a
// base64-encoded value" (RFC 4648 §4: '=' only as final padding).
TEST_CASE("handshake: a Sec-WebSocket-Key with '=' among its data characters -> 400", "[handshake][regression]") {
    for (const std::string k : {"dGhl=HNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAA=A==", "=GhlIHNhbXBsZSBub25jZQ=="}) {
        INFO("key \"" << k << "\"");
        expect_error(request(replaced(kUpgrade, "Sec-WebSocket-Key", "Sec-WebSocket-Key: " + k)), 400);
    }
}

// Was: each Upgrade header overwrites the last one, so a later Upgrade header without
// "websocket" hides an earlier one with it, and the upgrade is parsed as a plain Http request.
// RFC 7230 §3.2.2: repeated fields are one comma-separated list ("websocket, h2c" here), which
// contains "websocket" (RFC 6455 §4.2.1 item 3). The parser's own comment says the headers are folded.
TEST_CASE("handshake: repeated Upgrade headers form one list (RFC 7230 §3.2.2)", "[handshake][regression]") {
    expect_websocket(request(plus(kUpgrade, {"Upgrade: h2c"})));
}

// Was: for HTTP/1.0 keep_alive was decided from the first Connection header only
// (Request::header("connection")), so "keep-alive" in a second Connection header is ignored.
// RFC 7230 §3.2.2 / §6.3: the Connection headers form one list; keep-alive in it keeps the
// HTTP/1.0 connection open.
TEST_CASE("handshake: HTTP/1.0 keep-alive in a second Connection header (RFC 7230 §3.2.2)", "[handshake][regression]") {
    CHECK(expect_http(request({"GET / HTTP/1.0", "Connection: foo", "Connection: keep-alive"})).keep_alive);
}

// Was: an absolute-form target without a path ("http://host?q") was reduced to "/" and its query
// is dropped. RFC 7230 §5.3.2 / RFC 3986 §3: absolute-URI = scheme ":" hier-part [ "?" query ], so
// the path is empty (served as "/", RFC 7230 §5.5) and the query is "q".
TEST_CASE("handshake: an absolute-form target without a path keeps its query (RFC 7230 §5.3.2)", "[handshake][regression]") {
    const Snapshot r = expect_http(request({"GET http://a.example?room=1 HTTP/1.1", "Host: a.example"}));
    CHECK(r.path == "/");
    CHECK(r.query == "room=1");
}
