// SPDX-License-Identifier: Apache-2.0
#include "proto/deflate.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "proto/handshake.h"

namespace wsrelay::proto {
namespace {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// A window-bits value: 8..15, digits only, optionally quoted (RFC 7692 §7.1.2: the value may be
// a quoted-string whose content is a valid token).
std::optional<int> window_bits_value(std::string_view v) noexcept {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    // "A decimal integer value without leading zeroes" (RFC 7692 §7.1.2.1).
    if (v.empty() || v.size() > 2 || v.front() == '0') return std::nullopt;
    int n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc{} || end != v.data() + v.size() || n < 8 || n > 15) return std::nullopt;
    return n;
}

}  // namespace

std::optional<DeflateAgreement> negotiate_deflate(const std::vector<std::string_view>& offers,
                                                  const DeflateSettings& settings) {
    if (!settings.enabled) return std::nullopt;
    for (std::string_view offer : offers) {
        // offer = extension-token *( ";" extension-param )
        size_t semi = offer.find(';');
        if (!iequals(trim(offer.substr(0, semi)), "permessage-deflate")) continue;
        bool server_nct = false, client_nct = false, bad = false;
        std::optional<int> server_bits;    // offered limit on our window
        bool client_bits_offered = false;  // the client lets us limit its window
        std::optional<int> client_bits;    // ... and its own limit, if it gave one
        while (semi != std::string_view::npos && !bad) {
            offer.remove_prefix(semi + 1);
            semi = offer.find(';');
            const std::string_view param = trim(offer.substr(0, semi));
            const size_t eq = param.find('=');
            const std::string_view name = trim(param.substr(0, eq));
            const std::optional<std::string_view> value =
                eq == std::string_view::npos ? std::nullopt : std::optional(trim(param.substr(eq + 1)));
            if (iequals(name, "server_no_context_takeover")) {
                bad = server_nct || value;
                server_nct = true;
            } else if (iequals(name, "client_no_context_takeover")) {
                bad = client_nct || value;
                client_nct = true;
            } else if (iequals(name, "server_max_window_bits")) {
                bad = server_bits.has_value() || !value || !(server_bits = window_bits_value(*value));
            } else if (iequals(name, "client_max_window_bits")) {
                bad = client_bits_offered;
                client_bits_offered = true;
                if (value && !(client_bits = window_bits_value(*value))) bad = true;
            } else {
                bad = true;  // an unknown parameter: decline this offer (RFC 7692 §7.1)
            }
        }
        if (bad) continue;
        // zlib cannot produce a raw deflate stream with an 8-bit window: a client that insists on
        // server_max_window_bits=8 is declined rather than lied to.
        const int ours = std::min(server_bits.value_or(15), settings.server_max_window_bits);
        if (ours < 9) continue;
        DeflateAgreement a;
        a.server_window_bits = ours;
        a.response = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        if (ours != 15 || server_bits) a.response += "; server_max_window_bits=" + std::to_string(ours);
        // We may lower the client's window only if it sent client_max_window_bits.
        a.client_window_bits = client_bits.value_or(15);
        if (client_bits_offered) {
            a.client_window_bits = std::min(a.client_window_bits, settings.client_max_window_bits);
            a.response += "; client_max_window_bits=" + std::to_string(a.client_window_bits);
        }
        return a;
    }
    return std::nullopt;
}

// --- Inflater ---

Inflater::Inflater(int window_bits) {
    // zlib's raw inflate needs a window of at least the sender's; 15 decodes everything, but a
    // smaller agreed window keeps the 2^bits buffer small.
    ok_ = inflateInit2(&z_, -std::max(window_bits, 9)) == Z_OK;
}

Inflater::~Inflater() {
    if (ok_) inflateEnd(&z_);
}

Inflater::Status Inflater::run(const uint8_t* in, size_t n, std::vector<std::byte>& out, uint64_t max_bytes) {
    if (ended_) return Status::Ok;
    z_.next_in = const_cast<Bytef*>(in);
    z_.avail_in = static_cast<uInt>(n);
    // Inflate through a fixed buffer and append only what was produced: the cost of a call is
    // proportional to its input and output, whatever the message size so far (a message sent as
    // many tiny compressed frames must not cost quadratic time).
    uint8_t buf[16384];
    for (;;) {
        z_.next_out = buf;
        z_.avail_out = sizeof buf;
        const int r = inflate(&z_, Z_SYNC_FLUSH);
        const size_t produced = sizeof buf - z_.avail_out;
        if (out.size() + produced > max_bytes) return Status::TooBig;
        out.insert(out.end(), reinterpret_cast<std::byte*>(buf), reinterpret_cast<std::byte*>(buf) + produced);
        if (r == Z_STREAM_END) {
            // A final block (BFINAL set) ends the stream; RFC 7692 lets a sender end a message so.
            // The 0x00 0x00 0xFF 0xFF we append afterwards is then simply not needed.
            ended_ = true;
            return Status::Ok;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) return Status::Corrupt;
        if (z_.avail_out != 0) {
            // The buffer was not filled: all output so far is out. Either all input was used (wait
            // for more), or inflate could not progress on what is left (corrupt).
            if (z_.avail_in == 0) return Status::Ok;
            if (r == Z_BUF_ERROR) return Status::Corrupt;
        }
    }
}

Inflater::Status Inflater::feed(std::span<const std::byte> in, bool last, std::vector<std::byte>& out,
                                uint64_t max_bytes) {
    if (!ok_) return Status::Corrupt;
    if (!in.empty()) {
        const Status s = run(reinterpret_cast<const uint8_t*>(in.data()), in.size(), out, max_bytes);
        if (s != Status::Ok) return s;
    }
    if (last) {
        static constexpr uint8_t kTail[4] = {0x00, 0x00, 0xFF, 0xFF};
        return run(kTail, sizeof kTail, out, max_bytes);
    }
    return Status::Ok;
}

// --- Deflater ---

Deflater::Deflater(int window_bits, int level) : window_bits_(window_bits) {
    // memLevel 8 is zlib's default; windowBits negative = raw deflate, as RFC 7692 requires.
    ok_ = deflateInit2(&z_, level, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK;
}

Deflater::~Deflater() {
    if (ok_) deflateEnd(&z_);
}

bool Deflater::compress(std::span<const std::byte> message, std::vector<std::byte>& out) {
    out.clear();
    if (!ok_ || deflateReset(&z_) != Z_OK) return false;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(message.data()));
    z_.avail_in = static_cast<uInt>(message.size());
    out.resize(deflateBound(&z_, static_cast<uLong>(message.size())) + 16);
    z_.next_out = reinterpret_cast<Bytef*>(out.data());
    z_.avail_out = static_cast<uInt>(out.size());
    if (deflate(&z_, Z_SYNC_FLUSH) != Z_OK || z_.avail_in != 0) return false;
    out.resize(out.size() - z_.avail_out);
    // RFC 7692 §7.2.1: remove the 0x00 0x00 0xFF 0xFF that the sync flush ends with.
    if (out.size() < 4) return false;
    out.resize(out.size() - 4);
    if (out.empty()) out.push_back(std::byte{0x00});  // an empty message: one empty stored block
    return true;
}

}  // namespace wsrelay::proto
