// SPDX-License-Identifier: Apache-2.0
// permessage-deflate (RFC 7692), sans I/O: negotiating the extension from a client's offers, and
// the per-message compressor and decompressor built on zlib.
//
// Memory is bounded by design: the server always negotiates client_no_context_takeover (RFC 7692
// §7.1.1.2: the client must then compress each message on its own), so an inflater exists only
// while a compressed message is being received and is freed when it ends — an idle connection
// holds no zlib state at all. Outgoing messages are compressed with server_no_context_takeover, so
// one compressed frame can be shared by every recipient with the same window size.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wsrelay::proto {

// What the server is willing to do (from the config).
struct DeflateSettings {
    bool enabled = false;
    int server_max_window_bits = 15;  // 8..15: our compressor's window (ours to choose)
    int client_max_window_bits = 15;  // 8..15: asked of clients that let us choose
    int level = 6;                    // zlib compression level 1..9
};

// The parameters agreed with one client.
struct DeflateAgreement {
    int server_window_bits = 15;  // our compression window for this client
    int client_window_bits = 15;  // the client's window (our inflater uses it)
    std::string response;         // the Sec-WebSocket-Extensions value for the 101 response
};

// Picks the first offer in `offers` (Sec-WebSocket-Extensions list elements, as the handshake
// parser exposes them) that is a valid permessage-deflate offer we can honour (RFC 7692 §5, §7.1).
// Offers with unknown or repeated parameters, or invalid values, are declined (skipped).
std::optional<DeflateAgreement> negotiate_deflate(const std::vector<std::string_view>& offers,
                                                  const DeflateSettings& settings);

// Decompresses one message. Output goes to `sink` in pieces; stops with an error as soon as the
// inflated size would exceed `max_bytes` (a decompression bomb costs at most that much memory).
class Inflater {
public:
    enum class Status : uint8_t { Ok, TooBig, Corrupt };

    explicit Inflater(int window_bits);
    ~Inflater();
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;

    // Feeds compressed bytes; appends the inflated bytes to `out`. `last` marks the end of the
    // message (the 0x00 0x00 0xFF 0xFF tail of RFC 7692 §7.2.2 is added here).
    Status feed(std::span<const std::byte> in, bool last, std::vector<std::byte>& out, uint64_t max_bytes);

private:
    Status run(const uint8_t* in, size_t n, std::vector<std::byte>& out, uint64_t max_bytes);
    z_stream z_{};
    bool ok_ = false;
    bool ended_ = false;  // the sender set BFINAL: anything after the final block is ignored
};

// Compresses whole messages, each on its own (no context takeover). One instance serves the whole
// server: it is reset, not reallocated, between messages.
class Deflater {
public:
    Deflater(int window_bits, int level);
    ~Deflater();
    Deflater(const Deflater&) = delete;
    Deflater& operator=(const Deflater&) = delete;

    // The compressed form of `message` per RFC 7692 §7.2.1 (sync-flushed, without the trailing
    // 0x00 0x00 0xFF 0xFF), in `out` (replaced).
    bool compress(std::span<const std::byte> message, std::vector<std::byte>& out);
    int window_bits() const noexcept { return window_bits_; }

private:
    z_stream z_{};
    int window_bits_;
    bool ok_ = false;
};

}  // namespace wsrelay::proto
