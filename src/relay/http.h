// SPDX-License-Identifier: Apache-2.0
// Plain HTTP on the WebSocket port: the chat page (embedded, or files under www_root), /healthz,
// and the error responses. Builds whole responses; the connection queues them.
#pragma once

#include <string>
#include <span>
#include <string_view>

#include "proto/handshake.h"

namespace wsrelay::relay {

struct StaticSite {
    std::string root;  // empty: the files compiled into the binary
    bool healthz = true;
};

struct HttpResponse {
    std::string bytes;      // status line, headers and (unless HEAD) body
    uint16_t status = 200;
    bool close = false;     // the connection must close after this response
};

// The value of a hexadecimal digit (either case), -1 for any other character.
int hex_value(char c) noexcept;

// 404 with a short text body.
HttpResponse not_found(bool head);

// Answers a request that is not a WebSocket upgrade.
HttpResponse respond_http(const proto::Request& request, const StaticSite& site);

// Content-Type for a file name, by extension ("application/octet-stream" when unknown).
std::string_view content_type_for(std::string_view path) noexcept;

// Decodes %XX escapes of a URL path and checks it is a safe relative file path: no "." or ".."
// segments, no empty segments, no encoded '/' or '\', no NUL. Returns false if unsafe.
bool decode_safe_path(std::string_view raw, std::string& out);

// An embedded file: the build turns every file of src/www into one of these.
struct EmbeddedFile {
    std::string_view path;  // "/index.html"
    std::string_view data;
};
std::span<const EmbeddedFile> embedded_files() noexcept;

}  // namespace wsrelay::relay
