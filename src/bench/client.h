// SPDX-License-Identifier: Apache-2.0
// One connection of the load generator, from its non-blocking connect() to the close of its
// socket: TCP connect, TLS handshake (wss), the WebSocket upgrade (or the raw protocol's join and
// welcome), then messages; finally a clean close (our close frame, the server's, then its FIN).
//
// Owned by the Driver (allocated when the run needs a connection, freed after the loop turn in
// which it finished) and driven by it: the event loop calls on_event(); the Driver calls
// send_message(), begin_close() and flush() (once per loop turn for dirty clients, so a burst
// of messages goes out in one write). The client reports back through Driver::on_open(),
// on_message() and on_done(); none of them frees `this`.
//
// States:
//   Connecting    connect() in progress
//   TlsHandshake  wss: SSL_do_handshake() until done
//   Upgrading     our upgrade request (raw: the join message) is out; waiting for 101 (raw: welcome)
//   Open          messages both ways
//   Closing       our close frame (raw: FIN) is queued; waiting for the server's close and FIN
//   Done          finished; freed after this loop turn
//
// Reads go into the Driver's shared scratch buffer; all a client keeps between reads is the
// unconsumed tail of a frame header or control frame (at most 139 bytes, `carry_`), so the
// receive path allocates nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bench/options.h"
#include "bench/wire.h"
#include "io/event_loop.h"
#include "io/transport.h"
#include "proto/frame.h"
#include "util/address.h"
#include "util/intrusive_list.h"

namespace wsrelay::bench {

class Driver;

// What the connection is for; the Driver decides what its messages mean.
enum class Role : uint8_t {
    Echo,        // sends, and counts its own messages coming back
    Subscriber,  // only receives (broadcast)
    Publisher,   // sends with a window; its own messages coming back acknowledge them
    Connector,   // handshakes, then closes at once (connect)
    Idler,       // holds the connection open and answers pings (idle)
};

// How a connection ended.
enum class Outcome : uint8_t {
    Closed,   // clean: close handshake (raw: FIN both ways) completed
    Aborted,  // we dropped it on purpose (end of the run)
    Failed,   // an error, a refusal, or the server closed it unasked
};

class Client final : public io::Pollable {
public:
    enum class State : uint8_t { Connecting, TlsHandshake, Upgrading, Open, Closing, Done };

    // `target` (the Driver's options: the URL, or --publisher-url) outlives the client. `index` is
    // its place among the clients of its role in the setup order (the Driver's to interpret).
    Client(Driver& driver, Role role, uint32_t index, const Target& target, std::string room);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Creates the socket (bound to `source` when given) and starts a non-blocking connect.
    // On failure the client is unusable (abort() it): `error` is the errno of the failed `step`.
    struct StartResult {
        int error = 0;
        const char* step = "";  // "socket", "bind", "connect", "TLS setup", "epoll_ctl"
    };
    StartResult start(const util::SocketAddress* source);

    void on_event(uint32_t events) override;

    // Queues one benchmark message stamped with the current time; written at the next flush.
    void send_message();
    // Polite close: WebSocket close 1000 (raw: half-close) after what is queued, then wait for the
    // server's. A connection that is not open yet is just dropped (Outcome::Aborted).
    void begin_close();
    // Drops the connection now with the given outcome.
    void abort(Outcome outcome, std::string_view why);
    // Writes queued bytes until done or the socket is full.
    void flush();

    Role role() const noexcept { return role_; }
    uint32_t index() const noexcept { return index_; }
    State state() const noexcept { return state_; }
    bool opened() const noexcept { return opened_; }
    uint64_t started_ns() const noexcept { return started_ns_; }  // when start() was called
    uint64_t closing_since_ns() const noexcept { return closing_since_ns_; }

    util::ListHook live_hook_;   // Driver::live_ until Done, then Driver::graveyard_
    util::ListHook dirty_hook_;  // Driver::dirty_: has bytes to write
    // The Driver's count for this connection: echo, deliveries since its last send; publisher,
    // its messages not acknowledged yet.
    uint64_t tally = 0;

private:
    void on_connected();
    void continue_tls_handshake();
    void send_upgrade();
    void on_readable(bool drain_to_eof);
    void consume(std::span<std::byte> data);
    bool consume_upgrade_response(std::span<std::byte>& data);
    void decode(std::span<std::byte> data);
    void on_piece(const proto::DecodeStep& step);
    void on_control(const proto::DecodeStep& step);
    void on_eof();
    void become_open();
    void finish(Outcome outcome, std::string_view why);

    Driver& driver_;
    const Role role_;
    const uint32_t index_;
    const Target& target_;        // where to connect: address, TLS, Host header
    State state_ = State::Connecting;
    bool raw_ = false;
    bool opened_ = false;         // reached Open (even if closing now)
    bool writable_ = true;        // no EAGAIN/short write since the last EPOLLOUT edge
    bool close_received_ = false; // the server's close frame arrived
    bool write_shut_ = false;     // raw: FIN sent
    uint8_t ts_have_ = 0;         // timestamp bytes of the current incoming message seen so far
    uint8_t carry_len_ = 0;
    proto::MaskKey mask_key_ = 0;
    uint64_t started_ns_ = 0;
    uint64_t closing_since_ns_ = 0;
    uint16_t server_close_code_ = 0;  // a close the server started (an error for the run)
    io::Transport transport_{io::UniqueFd()};
    SSL* ssl_ = nullptr;          // owned by transport_; for the handshake
    proto::FrameDecoder decoder_;
    RawDecoder raw_decoder_;
    MessageTemplate message_;
    OutBuffer out_;
    std::string room_;            // the request path (raw: the join message)
    std::string http_;            // the upgrade response so far; freed once upgraded
    std::string expected_accept_; // Sec-WebSocket-Accept we must get; freed once upgraded
    std::byte ts_[kTimestampBytes];
    std::byte carry_[proto::kMaxFrameHeaderBytes + proto::kMaxControlPayload];
};

}  // namespace wsrelay::bench
