// SPDX-License-Identifier: Apache-2.0
// One client connection, from the first byte of its HTTP request to the close of its socket.
//
// Owned by the Server (allocated on accept, freed after the loop turn in which it was retired) and
// driven by it: the event loop calls on_event(), the server calls flush() for dirty connections,
// resume_reading() for those whose read budget ran out, and the timer methods. Nothing here frees
// `this`: retire() hands the connection back to the server, which frees it once no handler can
// still hold a pointer to it.
//
// States:
//   Request  reading an HTTP request (the opening handshake, or a page request on keep-alive)
//   Open     WebSocket open: frames in, room messages out
//   Closing  a close is under way: our close frame / final HTTP response is queued or sent; input is
//            decoded only to find the peer's close frame, or discarded; freed on the peer's close,
//            EOF, or close_timeout
//   Dead     retired; waiting to be freed
//
// Reads go into the server's shared scratch buffer, so an idle connection holds no buffer at all;
// only an incomplete request, frame header or control frame is kept (`pending_`), and a fragmented
// or partly received message is reassembled in `message_`.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

#include "io/event_loop.h"
#include "io/transport.h"
#include "proto/deflate.h"
#include "proto/frame.h"
#include "proto/handshake.h"
#include "relay/frame.h"
#include "relay/outbound_queue.h"
#include "util/address.h"
#include "util/byte_buffer.h"
#include "util/intrusive_list.h"
#include "util/log.h"

namespace wsrelay::relay {

class Server;
class Room;
class Outgoing;

class Connection final : public io::Pollable {
public:
    enum class State : uint8_t { Request, Open, Closing, Dead };

    Connection(Server& server, io::UniqueFd fd, io::SslPtr ssl, const sockaddr_storage& peer, socklen_t peer_len,
               uint64_t id, bool metrics, bool api);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void on_event(uint32_t events) override;
    void flush();
    void resume_reading();

    // A room message for this peer, subject to send_queue_bytes and the slow-consumer policy.
    void enqueue(Outgoing& message);
    // A room's batch: `messages` messages (`payload_bytes` in all) framed back to back in `frame`.
    // Admitted or refused whole, under the same limits.
    void enqueue_batch(const FramePtr& frame, uint32_t messages, uint64_t payload_bytes);
    // Negotiated permessage-deflate: room messages come to it one by one (never batched).
    bool takes_compressed() const noexcept { return deflate_server_bits_ != 0; }

    // Server-initiated WebSocket close (shutdown, idle, slow consumer, protocol error): queues the
    // close frame after what is already queued and waits for the peer's. Not open: retires.
    void start_close(uint16_t code, std::string_view reason);

    // Timers, called by the server when the connection's deadline on its timer list passed.
    void on_handshake_timeout();
    void send_ping();
    void on_close_timeout();

    // Config reload: new decoder limits apply from the next frame.
    void apply_limits();

    State state() const noexcept { return state_; }
    uint64_t id() const noexcept { return id_; }
    Room* room() const noexcept { return room_; }
    util::AddressText peer() const noexcept { return util::format_peer(ip, peer_port_, peer_family_); }
    // The user its token named (sub); empty without a token.
    std::string_view user() const noexcept { return identity_ ? std::string_view(identity_->user) : std::string_view(); }
    // auth.expire_connections: the token's exp (+ leeway) passed.
    void on_token_expired();

    // Intrusive list hooks: one per list the connection can be on.
    util::ListHook hub_hook_;    // Server::connections_ while alive, Server::graveyard_ once retired
    util::ListHook room_hook_;   // Room::members_ while joined
    util::ListHook dirty_hook_;  // Server::dirty_: has queued bytes and may write
    util::ListHook ready_hook_;  // Server::ready_: read budget ran out before EAGAIN
    util::ListHook timer_hook_;  // one of the Server's timeout lists (handshake, idle, pinged, closing)
    uint64_t timer_since_ms = 0; // when the current timer list's period started
    util::IpKey ip;              // the peer's address, for max_connections_per_ip

private:
    void on_readable();
    bool input_blocked() const noexcept;
    void consume(std::span<std::byte> data);
    bool consume_request(std::span<std::byte>& data);
    void handle_request(const proto::Request& request);
    void upgrade(const proto::Request& request);
    bool consume_api_request(std::span<std::byte>& data, const proto::Request& request, size_t header_bytes);
    void respond(std::string response, bool keep_alive);
    void reject(const proto::HttpError& error, bool head);
    void on_data(const proto::DecodeStep& step);
    void on_compressed_data(const proto::DecodeStep& step);
    void on_control(const proto::DecodeStep& step);
    void deliver(proto::Opcode op, std::span<const std::byte> payload);
    bool take_rate_token();
    void queue_close(uint16_t code, std::string_view reason);
    void leave_room();
    void on_output_drained();
    void retire(std::string_view why);
    void save_pending(std::span<const std::byte> rest);
    util::LogFields log_fields() const noexcept;

    Server& server_;
    io::Transport transport_;
    const uint64_t id_;
    Room* room_ = nullptr;
    // Token bucket of limits.message_rate: tokens left (scaled by 1000) and when last refilled.
    uint64_t rate_tokens_milli_ = 0;
    uint64_t rate_refilled_ms_ = 0;
    // The small fields together, so that padding does not grow the object: idle connections are
    // many, and a Connection is most of what one costs (see "Small rooms" in hub.h).
    State state_ = State::Request;
    bool readable_ = true;        // no EAGAIN seen since the last EPOLLIN edge
    bool hangup_ = false;         // the peer hung up (RDHUP/HUP/ERR): read until EOF
    bool writable_ = true;        // no EAGAIN/short write since the last EPOLLOUT edge
    bool close_sent_ = false;     // our close frame (or final HTTP response) is queued
    bool close_received_ = false; // the peer's close frame arrived
    bool discard_input_ = false;  // Closing with nothing left to decode (HTTP, or after an error)
    bool write_shut_ = false;     // shutdown(SHUT_WR) done
    bool upgraded_ = false;       // the WebSocket handshake succeeded (closes are logged at info)
    bool input_paused_ = false;   // not reading: our queue for this peer is over half its limit
    bool stalled_ = false;        // `pending_` holds input that was not processed yet
    bool tls_counted_ = false;    // the TLS handshake completed and was counted
    bool metrics_ = false;        // this connection's listener serves /metrics
    bool api_ = false;            // this connection's listener serves the HTTP API (/api/...)
    bool listen_only_ = false;    // its token says publish: false: its messages are not relayed
    // permessage-deflate: the agreed window sizes (0: not negotiated); see also inflating_.
    uint8_t deflate_server_bits_ = 0;
    uint8_t deflate_client_bits_ = 0;
    uint8_t peer_family_ = 0;     // AF_INET, AF_INET6 or AF_UNIX: with `ip` and the port, the log's peer=
    uint16_t peer_port_ = 0;
    uint16_t close_code_ = 0;     // for the log line: the code of the close under way
    // The state of a compressed message being received (only while one is).
    struct Inflating {
        explicit Inflating(int window_bits) : inflater(window_bits) {}
        proto::Inflater inflater;
        std::vector<std::byte> out;
        proto::Utf8Validator utf8;
    };
    std::unique_ptr<Inflating> inflating_;
    proto::FrameDecoder decoder_;
    std::unique_ptr<proto::RequestParser> parser_;  // only while in State::Request
    OutboundQueue queue_;
    util::ByteBuffer pending_;    // unconsumed input: a partial request, frame header or control frame
    util::ByteBuffer message_;    // a message being reassembled
    // What the close log line says; allocated only once a close begins (idle connections are many).
    struct CloseNote {
        std::string reason;
        std::string room;  // the room it was in (set on leaving)
    };
    std::unique_ptr<CloseNote> close_note_;
    // Who its token says it is; allocated only for members that presented one.
    struct Identity {
        std::string user;        // sub
        int64_t expires_s = 0;   // exp + leeway (seconds since the epoch) while on the server's expiry watch; 0: not
    };
    std::unique_ptr<Identity> identity_;
    CloseNote& close_note() {
        if (!close_note_) close_note_ = std::make_unique<CloseNote>();
        return *close_note_;
    }
};

}  // namespace wsrelay::relay
