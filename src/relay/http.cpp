// SPDX-License-Identifier: Apache-2.0
#include "relay/http.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "io/unique_fd.h"

namespace wsrelay::relay {
namespace {

// Static files are small (the chat page); anything bigger is refused rather than read into memory
// on the event loop.
constexpr off_t kMaxStaticFileBytes = 16 << 20;

// The chat page loads nothing from elsewhere and runs no inline code; say so to the browser.
constexpr std::string_view kSecurityHeaders =
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; base-uri 'none'; frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n";

HttpResponse make(uint16_t status, std::string_view type, std::string_view body, bool head, bool security = false) {
    HttpResponse r;
    r.status = status;
    std::string& s = r.bytes;
    s.reserve(256 + (head ? 0 : body.size()));
    s.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(proto::status_text(status)).append("\r\n");
    s.append("Content-Type: ").append(type).append("\r\n");
    s.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    s.append("Cache-Control: no-cache\r\n");
    if (security) s.append(kSecurityHeaders);
    s.append("\r\n");
    if (!head) s.append(body);
    return r;
}

HttpResponse error(uint16_t status, std::string_view reason, bool head) {
    HttpResponse r;
    r.status = status;
    r.bytes = proto::build_error_response({status, reason}, head);
    r.close = true;
    return r;
}

// Opens `rel` beneath `root` without following any link out of it: openat2(RESOLVE_BENEATH)
// refuses "..", absolute symlinks and symlinks that lead outside, atomically.
io::UniqueFd open_beneath(const std::string& root, const std::string& rel) {
    io::UniqueFd dir(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return io::UniqueFd();
    open_how how{};
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    return io::UniqueFd(static_cast<int>(::syscall(SYS_openat2, dir.get(), rel.c_str(), &how, sizeof how)));
}

HttpResponse serve_file(const std::string& root, std::string rel, bool head) {
    io::UniqueFd fd = open_beneath(root, rel);
    struct stat st{};
    if (fd && ::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode)) {
        fd = open_beneath(root, rel + "/index.html");
        rel += "/index.html";
    }
    if (!fd) return errno == EXDEV || errno == ELOOP ? error(403, "path leaves the web root", head) : not_found(head);
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return not_found(head);
    if (st.st_size > kMaxStaticFileBytes) return error(500, "file too large to serve", head);
    std::string body(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < body.size()) {
        const ssize_t n = ::read(fd.get(), body.data() + got, body.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return error(500, "cannot read file", head);
        got += static_cast<size_t>(n);
    }
    return make(200, content_type_for(rel), body, head, true);
}

}  // namespace

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

HttpResponse not_found(bool head) {
    const std::string body = "404 Not Found\n";
    return make(404, "text/plain; charset=utf-8", body, head);
}

std::string_view content_type_for(std::string_view path) noexcept {
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 16> kTypes{{
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".webp", "image/webp"},
        {".ico", "image/x-icon"},
        {".wasm", "application/wasm"},
        {".woff2", "font/woff2"},
    }};
    for (const auto& [ext, type] : kTypes)
        if (path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext) return type;
    return "application/octet-stream";
}

bool decode_safe_path(std::string_view raw, std::string& out) {
    out.clear();
    if (raw.empty() || raw.front() != '/') return false;
    std::string decoded;
    for (size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '%') {
            if (i + 2 >= raw.size()) return false;
            const int hi = hex_value(raw[i + 1]), lo = hex_value(raw[i + 2]);
            if (hi < 0 || lo < 0) return false;
            c = static_cast<char>(hi * 16 + lo);
            // An encoded separator would let "a%2f..%2fb" pass the segment check below.
            if (c == '/' || c == '\\' || c == '\0') return false;
            i += 2;
        } else if (c == '\\') {
            return false;
        }
        decoded.push_back(c);
    }
    // Check every segment of the decoded path; "/" itself and a trailing "/" mean a directory.
    std::string_view rest(decoded);
    rest.remove_prefix(1);
    while (!rest.empty()) {
        const size_t slash = rest.find('/');
        const std::string_view seg = rest.substr(0, slash);
        if (seg.empty() || seg == "." || seg == "..") return false;
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    out = decoded.substr(1);
    if (!out.empty() && out.back() == '/') out.pop_back();
    return true;
}

HttpResponse respond_http(const proto::Request& req, const StaticSite& site) {
    if (req.method != "GET" && !req.head) return error(405, "only GET and HEAD are served here", req.head);
    if (site.healthz && req.path == "/healthz") return make(200, "text/plain; charset=utf-8", "ok\n", req.head);
    std::string rel;
    if (!decode_safe_path(req.path, rel)) return error(400, "malformed or unsafe path", req.head);
    if (!site.root.empty()) return serve_file(site.root, rel.empty() ? std::string(".") : rel, req.head);

    const std::string want = "/" + (rel.empty() ? std::string("index.html") : rel);
    for (const EmbeddedFile& f : embedded_files())
        if (f.path == want) return make(200, content_type_for(f.path), f.data, req.head, true);
    return not_found(req.head);
}

}  // namespace wsrelay::relay
