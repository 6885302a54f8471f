// SPDX-License-Identifier: Apache-2.0
// A real Server driven in-process, one turn at a time, with WebSocket clients on the other end of
// AF_UNIX socket pairs (plain, or TLS through io::Transport with a throwaway certificate). The
// test decides when the server runs and when each client reads or writes, and how much: short
// writes and would-blocks then happen where the test puts them, the same way for the same seed.
//
// Clients check everything the server sends them as it arrives: a 101 response, then server frames
// only (FIN set, RSV clear, unmasked, a known opcode, control frames <= 125 bytes, minimal length
// encoding), nothing after a close frame. Any violation is kept in `Client::error`.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/config.h"
#include "io/event_loop.h"
#include "io/tls_context.h"
#include "io/transport.h"
#include "relay/server.h"
#include "self_signed.h"
#include "util/log.h"

namespace wsrelay::test {

// A throwaway certificate and key (self_signed.h) as PEM, made once per process.
inline io::TlsCertificate throwaway_certificate() {
    static const io::TlsCertificate cert = [] {
        const SelfSigned s = self_signed();
        auto pem = [](auto write) {
            BIO* b = BIO_new(BIO_s_mem());
            write(b);
            char* data = nullptr;
            const long n = BIO_get_mem_data(b, &data);
            std::string text(data, static_cast<size_t>(n));
            BIO_free(b);
            return text;
        };
        io::TlsCertificate c;
        c.certificate = pem([&](BIO* b) { PEM_write_bio_X509(b, s.cert.get()); });
        c.private_key = pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, s.key.get(), nullptr, nullptr, 0, nullptr, nullptr); });
        return c;
    }();
    return cert;
}

// The same, as files in a temporary folder (the [tls] settings name files).
inline io::TlsCertificate throwaway_certificate_files() {
    static const io::TlsCertificate files = [] {
        char dir[] = "/tmp/wsrelay-rig-XXXXXX";
        if (!::mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
        const io::TlsCertificate pem = throwaway_certificate();
        io::TlsCertificate f;
        f.certificate = std::string(dir) + "/cert.pem";
        f.private_key = std::string(dir) + "/key.pem";
        std::ofstream(f.certificate) << pem.certificate;
        std::ofstream(f.private_key) << pem.private_key;
        return f;
    }();
    return files;
}

inline std::shared_ptr<io::TlsContexts> test_tls_contexts() {
    io::TlsSettings settings;
    settings.certificates.push_back(throwaway_certificate_files());
    std::string error;
    auto tls = io::TlsContexts::load(settings, error);
    if (!tls) throw std::runtime_error("TLS contexts: " + error);
    return tls;
}

// One frame as the server sent it.
struct Received {
    uint8_t opcode;
    std::string payload;
    bool compressed = false;  // arrived compressed (permessage-deflate); `payload` is inflated
};

// A masked client frame (RFC 6455 §5.3: every client frame is masked).
inline std::string client_frame(uint8_t opcode, std::string_view payload, uint32_t mask_seed = 0x5a17c3e1) {
    std::string f;
    f.push_back(static_cast<char>(0x80 | opcode));
    const size_t n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
        f.push_back(static_cast<char>(0x80 | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n & 0xFF));
    } else {
        f.push_back(static_cast<char>(0x80 | 127));
        for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    }
    const char mask[4] = {static_cast<char>(mask_seed >> 24), static_cast<char>(mask_seed >> 16),
                          static_cast<char>(mask_seed >> 8), static_cast<char>(mask_seed)};
    f.append(mask, 4);
    for (size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i & 3]));
    return f;
}

inline std::string close_payload(uint16_t code) {
    return {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
}

// A permessage-deflate message (RFC 7692 §7.2.2: a raw deflate stream without its final empty
// block; the server takes no context over, so each message inflates alone). nullopt: corrupt.
inline std::optional<std::string> inflate_message(std::string_view data) {
    z_stream z{};
    if (inflateInit2(&z, -15) != Z_OK) return std::nullopt;
    std::string in(data);
    in.append("\x00\x00\xff\xff", 4);
    z.next_in = reinterpret_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    std::string out;
    int rc = Z_OK;
    while (rc == Z_OK && (z.avail_in > 0 || z.avail_out == 0)) {
        char buf[16384];
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        rc = inflate(&z, Z_SYNC_FLUSH);
        out.append(buf, sizeof buf - z.avail_out);
        if (out.size() > (64u << 20)) rc = Z_DATA_ERROR;
    }
    inflateEnd(&z);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return std::nullopt;
    return out;
}

class Rig;

// The client end of one connection.
class Client {
public:
    enum class Phase { Handshake, Open, Gone };

    bool tls = false;
    Phase phase = Phase::Handshake;
    std::string out;                 // bytes still to write to the server
    std::string in;                  // received bytes not parsed yet
    std::vector<Received> frames;    // every frame received, in order
    bool deflate = false;            // the server agreed to permessage-deflate
    bool close_sent = false;         // our close frame is in `out` (no data after it)
    bool close_received = false;
    uint16_t close_code = 0;
    bool eof = false;                // the server closed the stream (EOF or reset)
    bool reset = false;              // we dropped our end without a close (vanished peer)
    std::string error;               // the first violation seen; empty if none
    uint64_t bytes_received = 0;
    uint64_t compressed_messages = 0;

    explicit Client(io::Transport t, bool is_tls) : tls(is_tls), transport_(std::move(t)) {}

    bool open() const noexcept { return phase == Phase::Open && !close_received && !eof; }
    // May send data: open and not closing.
    bool can_send() const noexcept { return open() && !close_sent && !reset; }

    // Queues a close frame (the answer to the server's, or our own).
    void send_close(uint16_t code) {
        if (close_sent || reset) return;
        close_sent = true;
        out += client_frame(0x8, close_payload(code));
    }

    // Writes at most `max` bytes of `out`. Returns how many went.
    size_t write_some(size_t max, std::span<std::byte> staging) {
        if (reset || out.empty() || eof) return 0;
        // A TLS write that must be retried gets at least the bytes it had (OpenSSL requires it).
        const size_t want = std::min(std::max(max, transport_.pending_write_bytes()), out.size());
        const iovec v{out.data(), want};
        const io::IoResult r = transport_.writev({&v, 1}, staging);
        if (r.status != io::IoStatus::Ok) return 0;  // full, or the server went away (seen on read)
        out.erase(0, r.bytes);
        return r.bytes;
    }

    // Reads at most `max` bytes and checks what arrived. Returns how many were read.
    size_t read_some(size_t max) {
        if (reset || eof) return 0;
        std::byte buf[65536];
        size_t got = 0;
        while (got < max) {
            const size_t want = std::min(max - got, sizeof buf);
            const io::IoResult r = transport_.read({buf, want});
            if (r.status == io::IoStatus::WouldBlock) break;
            if (r.status != io::IoStatus::Ok) {
                eof = true;
                break;
            }
            in.append(reinterpret_cast<const char*>(buf), r.bytes);
            got += r.bytes;
            bytes_received += r.bytes;
            if (r.bytes < want) break;
        }
        parse();
        return got;
    }

    // A vanished peer: the socket goes away with whatever the server still had for it.
    void vanish() {
        reset = true;
        transport_.close();
    }

    void fail(std::string why) {
        if (error.empty()) error = std::move(why);
    }

private:
    void parse() {
        if (phase == Phase::Handshake) {
            const size_t end = in.find("\r\n\r\n");
            if (end == std::string::npos) return;
            if (in.compare(0, 12, "HTTP/1.1 101") != 0) fail("no 101 response: " + in.substr(0, end));
            deflate = in.substr(0, end).find("permessage-deflate") != std::string::npos;
            in.erase(0, end + 4);
            phase = Phase::Open;
        }
        size_t pos = 0;
        while (in.size() - pos >= 2) {
            const auto b0 = static_cast<uint8_t>(in[pos]);
            const auto b1 = static_cast<uint8_t>(in[pos + 1]);
            size_t len = b1 & 0x7F;
            size_t header = 2;
            if (len == 126) {
                if (in.size() - pos < 4) break;
                len = (static_cast<uint8_t>(in[pos + 2]) << 8) | static_cast<uint8_t>(in[pos + 3]);
                header = 4;
                if (len < 126) fail("non-minimal 16-bit length");
            } else if (len == 127) {
                if (in.size() - pos < 10) break;
                len = 0;
                for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<uint8_t>(in[pos + 2 + i]);
                header = 10;
                if (len < 65536) fail("non-minimal 64-bit length");
            }
            if (b1 & 0x80) fail("server sent a masked frame");
            if (!(b0 & 0x80)) fail("server sent a fragment (FIN clear)");
            const uint8_t op = b0 & 0x0F;
            const bool compressed = b0 & 0x40;
            if (b0 & 0x30) fail("server frame with RSV2/RSV3 set");
            if (compressed && !(deflate && (op == 0x1 || op == 0x2))) fail("RSV1 on a frame that cannot be compressed");
            if (op != 0x1 && op != 0x2 && op != 0x8 && op != 0x9 && op != 0xA)
                fail("server frame with opcode " + std::to_string(op));
            if (op >= 0x8 && len > 125) fail("control frame of " + std::to_string(len) + " bytes");
            if (len > (64u << 20)) {
                fail("server frame of " + std::to_string(len) + " bytes");
                in.clear();
                return;
            }
            if (!error.empty()) {
                in.clear();
                return;
            }
            if (in.size() - pos < header + len) break;
            if (close_received) fail("a frame after the close frame");
            frames.push_back({op, in.substr(pos + header, len), compressed});
            if (compressed) {
                std::optional<std::string> plain = inflate_message(frames.back().payload);
                if (!plain) {
                    fail("a compressed message that does not inflate");
                    in.clear();
                    return;
                }
                frames.back().payload = std::move(*plain);
                ++compressed_messages;
            }
            if (op == 0x8) {
                close_received = true;
                if (len >= 2)
                    close_code = static_cast<uint16_t>((static_cast<uint8_t>(in[pos + header]) << 8) |
                                                       static_cast<uint8_t>(in[pos + header + 1]));
                send_close(close_code ? close_code : 1000);  // RFC 6455 §5.5.1: answer it
            }
            pos += header + len;
        }
        in.erase(0, pos);
    }

    io::Transport transport_;
};

// The server and its clients.
class Rig {
public:
    explicit Rig(config::Config cfg, bool with_tls = true)
        : server_(loop_, std::move(cfg), {}, with_tls ? test_tls_contexts() : nullptr),
          staging_(io::Transport::kStagingBytes) {
        util::set_log_level(util::LogLevel::Err);  // slow-consumer warnings are expected here
    }

    relay::Server& server() noexcept { return server_; }
    std::span<std::byte> staging() noexcept { return staging_; }

    // A new connection whose server end has a send buffer of about `server_sndbuf` bytes (0: the
    // default) and whose client end receives into about `client_rcvbuf` (0: the default). Its
    // upgrade request to `path` is queued in `out`.
    // With `deflate`, it offers permessage-deflate (the server agrees when [deflate] is enabled).
    Client& connect(bool tls, int server_sndbuf = 0, int client_rcvbuf = 0, std::string_view path = "/room",
                    bool deflate = false) {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
            throw std::runtime_error("socketpair failed");
        if (server_sndbuf) ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &server_sndbuf, sizeof server_sndbuf);
        if (client_rcvbuf) ::setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &client_rcvbuf, sizeof client_rcvbuf);
        sockaddr_storage peer{};
        auto* in = reinterpret_cast<sockaddr_in*>(&peer);
        in->sin_family = AF_INET;
        in->sin_port = htons(static_cast<uint16_t>(1000 + clients_.size()));
        in->sin_addr.s_addr = htonl(0x7F000001);
        server_.accept_connection(io::UniqueFd(fds[0]), peer, sizeof(sockaddr_in), tls);
        io::SslPtr ssl;
        if (tls) {
            static const io::SslCtxPtr ctx = [] {
                io::SslCtxPtr c(SSL_CTX_new(TLS_client_method()));
                SSL_CTX_set_mode(c.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
                return c;
            }();
            ssl.reset(SSL_new(ctx.get()));
            SSL_set_connect_state(ssl.get());
        }
        clients_.push_back(std::make_unique<Client>(io::Transport(io::UniqueFd(fds[1]), std::move(ssl)), tls));
        Client& c = *clients_.back();
        c.out = "GET " + std::string(path) +
                " HTTP/1.1\r\nHost: rig\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                (deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "") + "\r\n";
        return c;
    }

    void turn(int n = 1) {
        for (int i = 0; i < n; ++i) server_.turn(0);
    }

    // Client `c` writes and reads everything it can, with the server running in between, until
    // `done()` or `max_turns` turns. Returns whether done() held.
    template <class Done>
    bool run_until(Done done, int max_turns = 20000) {
        for (int i = 0; i < max_turns; ++i) {
            if (done()) return true;
            for (auto& c : clients_) {
                c->write_some(SIZE_MAX, staging());
                c->read_some(SIZE_MAX);
            }
            turn();
        }
        return done();
    }

    // Everyone writes what it has and reads everything, until nothing moves for a few turns.
    void settle(int max_turns = 20000) {
        int quiet = 0;
        for (int i = 0; i < max_turns && quiet < 8; ++i) {
            size_t moved = 0;
            for (auto& c : clients_) {
                moved += c->write_some(SIZE_MAX, staging());
                moved += c->read_some(SIZE_MAX);
            }
            turn();
            quiet = moved ? 0 : quiet + 1;
        }
    }

    std::vector<std::unique_ptr<Client>>& clients() noexcept { return clients_; }

private:
    io::EventLoop loop_;
    relay::Server server_;
    std::vector<std::byte> staging_;
    std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace wsrelay::test
