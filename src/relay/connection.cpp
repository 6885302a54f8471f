// SPDX-License-Identifier: Apache-2.0
#include "relay/connection.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "relay/access.h"
#include "relay/api.h"
#include "relay/hub.h"
#include "relay/server.h"
#include "util/address.h"
#include "util/log.h"

namespace wsrelay::relay {
namespace {

constexpr size_t kReadBudgetBytes = 1 << 20;  // per connection per loop turn, for fairness
constexpr size_t kMaxIov = io::Transport::kMaxIov;

proto::DecoderOptions decoder_options(const config::Config& c, bool deflate) {
    proto::DecoderOptions o;
    o.role = proto::Role::Server;
    // A compressed message's limit is checked on its inflated size (on_compressed_data); its
    // compressed frames only need to be no bigger than that.
    // (Deflate can expand incompressible data by about 0.03%: leave room for that.)
    o.max_message_bytes = deflate ? c.max_message_bytes + c.max_message_bytes / 512 + 64 : c.max_message_bytes;
    o.validate_utf8 = true;  // the decoder skips compressed messages; they are validated inflated
    o.allow_rsv1 = deflate;
    return o;
}

proto::HandshakeLimits handshake_limits(const config::Config& c) {
    return {static_cast<size_t>(c.max_header_bytes), static_cast<size_t>(c.max_header_count)};
}

HttpResponse metrics_response(Server& server, bool head) {
    const std::string body = render_metrics(server.stats(), server.open_connections(), server.hub().member_count(),
                                            server.hub().room_count());
    HttpResponse r;
    r.bytes = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\nCache-Control: no-store\r\n\r\n";
    if (!head) r.bytes += body;
    return r;
}

bool origin_allowed(const config::Config& c, std::string_view origin) {
    if (c.allowed_origins.empty()) return true;
    return std::any_of(c.allowed_origins.begin(), c.allowed_origins.end(),
                       [&](const std::string& o) { return proto::iequals(o, origin); });
}

}  // namespace

Connection::Connection(Server& server, io::UniqueFd fd, io::SslPtr ssl, const sockaddr_storage& peer,
                       socklen_t peer_len, uint64_t id, bool metrics, bool api)
    : server_(server),
      transport_(std::move(fd), std::move(ssl)),
      id_(id),
      decoder_(decoder_options(server.config(), false)),
      parser_(std::make_unique<proto::RequestParser>(handshake_limits(server.config()))) {
    const auto* address = reinterpret_cast<const sockaddr*>(&peer);
    ip = util::ip_key(address);
    peer_family_ = static_cast<uint8_t>(peer_len >= sizeof(sa_family_t) ? address->sa_family : AF_UNSPEC);
    peer_port_ = util::port_of(address);
    metrics_ = metrics;
    api_ = api;
}

Connection::~Connection() {
    // The server unlinks us from its lists in retire(); these are the ones it cannot know about.
    hub_hook_.unlink();
    room_hook_.unlink();
    dirty_hook_.unlink();
    ready_hook_.unlink();
    timer_hook_.unlink();
}

util::LogFields Connection::log_fields() const noexcept {
    util::LogFields f;
    f.conn = id_;
    f.peer = peer();
    if (room_) f.room = room_->name();
    f.user = user();
    return f;
}

// --- Events --------------------------------------------------------------------------------------

void Connection::on_event(uint32_t events) {
    if (state_ == State::Dead) return;  // retired earlier in this batch; freed after it
    if (events & EPOLLOUT) {
        writable_ = true;
        if (transport_.read_wants_write()) on_readable();  // a TLS read that had to write first
        if (!queue_.empty()) flush();
    }
    // EPOLLRDHUP/EPOLLHUP/EPOLLERR all mean "a read will not block": it returns the data still
    // buffered, then EOF or the socket error, which on_readable() handles.
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        readable_ = true;
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hangup_ = true;
        on_readable();
        if (transport_.write_wants_read() && !queue_.empty()) flush();  // a TLS write that had to read
    }
}

void Connection::resume_reading() {
    if (state_ != State::Dead && (readable_ || stalled_)) on_readable();
}

bool Connection::input_blocked() const noexcept {
    // Input backpressure: a peer whose own output is piling up (it sends requests or pings but
    // does not read the answers) is not read from until it catches up. Its bytes wait in the
    // kernel's buffers and TCP flow control slows it down; our memory stays bounded.
    return queue_.bytes() >= server_.config().send_queue_bytes / 2;
}

void Connection::on_readable() {
    for (size_t budget = kReadBudgetBytes; state_ != State::Dead;) {
        if (input_blocked()) {
            input_paused_ = true;  // flush() resumes us once the queue has drained
            return;
        }
        // TLS copies into the buffer fastest from some starting points (see io::alias_free_skew).
        const std::span<std::byte> scratch = server_.scratch().subspan(transport_.read_skew(server_.scratch().data()));
        // Put the unconsumed tail of the last read in front, so parsers see contiguous input.
        const size_t have = pending_.size();
        if (have) std::memcpy(scratch.data(), pending_.span().data(), have);
        if (stalled_) {
            // Input left unprocessed when the queue filled up: process it before reading more.
            stalled_ = false;
            pending_.release();
            consume(scratch.first(have));
            continue;
        }
        const std::span<std::byte> room = scratch.subspan(have);
        const io::IoResult r = transport_.read(room);
        if (r.status == io::IoStatus::WouldBlock) {
            readable_ = false;
            return;
        }
        if (r.status == io::IoStatus::Eof) {
            if (!transport_.handshake_done()) {
                // A truncated ClientHello, or a client that gave up: the peer's business, logged.
                ++server_.stats().tls_handshake_failures;
                WSLOG_EVENT(util::LogLevel::Info, log_fields(), "conn=%llu peer=%s TLS handshake failed: connection closed during the handshake",
                            static_cast<unsigned long long>(id_), peer().c_str());
                return retire("connection closed during the TLS handshake");
            }
            if (state_ == State::Open) {
                close_code_ = 1006;
                close_note().reason = "connection dropped without a close frame";
            }
            return retire("peer closed the connection");
        }
        if (r.status == io::IoStatus::Error) {
            close_code_ = state_ == State::Open ? 1006 : close_code_;
            if (const std::string tls_error = transport_.tls_error(); !tls_error.empty()) {
                // Garbage, plain HTTP or a truncated ClientHello on a TLS port: the peer's fault.
                if (!transport_.handshake_done()) {
                    ++server_.stats().tls_handshake_failures;
                    WSLOG_EVENT(util::LogLevel::Info, log_fields(), "conn=%llu peer=%s TLS handshake failed: %s", static_cast<unsigned long long>(id_),
                             peer().c_str(), tls_error.c_str());
                }
                return retire(tls_error);
            }
            return retire(std::strerror(r.error));
        }
        if (!tls_counted_ && transport_.tls() && transport_.handshake_done()) {
            tls_counted_ = true;
            ++server_.stats().tls_handshakes;
        }
        pending_.release();
        // Any bytes at all count as activity: back to the end of the idle list, ping cancelled.
        if (state_ == State::Open) server_.set_timer(*this, server_.idle_timers());
        consume(scratch.first(have + r.bytes));
        // consume() stopped with input left over because our queue filled up (stalled_): it set
        // input_paused_, so flush() puts us on the ready list once the queue has drained. Return
        // now, whatever the read said about the socket: the bytes in `pending_` bring no new
        // edge, and nothing but that resume processes them.
        if (stalled_) return;
        budget -= std::min(budget, r.bytes);
        // The read emptied the socket (a short recv, and TLS holds nothing back): the read after
        // it would only say EAGAIN. New data brings a new edge, so stop here and save that
        // syscall. (A hang-up must be read to EOF.)
        if (!hangup_ && r.drained) {
            readable_ = false;
            return;
        }
        if (budget == 0) {
            // Edge-triggered: no new edge will come for data already buffered, so come back to it
            // next turn, after everyone else had a chance.
            if (state_ != State::Dead) server_.mark_ready(*this);
            return;
        }
    }
}

// --- Input ---------------------------------------------------------------------------------------

void Connection::save_pending(std::span<const std::byte> rest) { pending_.assign(rest); }

void Connection::consume(std::span<std::byte> data) {
    while (!data.empty()) {
        if (input_blocked()) {
            // Our queue for this peer is over half its limit: keep the rest for later. flush()
            // resumes reading (and so processing `pending_`) once the queue has drained below a
            // quarter; input_paused_ is what it looks at, so it must be set on every path that
            // stops here (a read that also drained the socket brings no new edge).
            stalled_ = true;
            input_paused_ = true;
            return save_pending(data);
        }
        switch (state_) {
            case State::Request:
                if (!consume_request(data)) return;
                break;
            case State::Open:
            case State::Closing: {
                if (discard_input_ || close_received_) return;  // nothing more to learn from input
                const proto::DecodeStep s = decoder_.next(data);
                data = data.subspan(s.consumed);
                switch (s.kind) {
                    case proto::StepKind::NeedMore: return save_pending(data);
                    case proto::StepKind::Data: on_data(s); break;
                    case proto::StepKind::Control: on_control(s); break;
                    case proto::StepKind::Error:
                        discard_input_ = true;
                        message_.release();  // a message left unfinished is never delivered
                        if (state_ == State::Open) start_close(proto::to_wire(s.error.code), s.error.reason);
                        return;
                }
                break;
            }
            case State::Dead: return;
        }
    }
}

// Returns false when the rest of `data` must wait (saved) or be dropped.
bool Connection::consume_request(std::span<std::byte>& data) {
    const proto::ParseResult r = parser_->parse(data);
    switch (r.status) {
        case proto::ParseStatus::NeedMore: save_pending(data); return false;
        case proto::ParseStatus::Error:
            WSLOG_EVENT(util::LogLevel::Info, log_fields(), "conn=%llu peer=%s bad request: %d %.*s", static_cast<unsigned long long>(id_), peer().c_str(),
                     r.error.status, static_cast<int>(r.error.reason.size()), r.error.reason.data());
            reject(r.error, false);
            return false;
        case proto::ParseStatus::Done: break;
    }
    if (api_ && parser_->request().kind == proto::RequestKind::Http && is_api_path(parser_->request().path))
        return consume_api_request(data, parser_->request(), r.consumed);
    handle_request(parser_->request());  // views into `data`: used before `data` moves on
    data = data.subspan(r.consumed);
    if (state_ == State::Request) parser_->reset();
    return state_ != State::Dead;
}

void Connection::handle_request(const proto::Request& req) {
    if (req.kind == proto::RequestKind::WebSocket) return upgrade(req);
    ++server_.stats().http_requests;
    HttpResponse res;
    if (metrics_ && req.path == "/metrics" && (req.method == "GET" || req.head)) {
        res = metrics_response(server_, req.head);
    } else if (is_api_path(req.path)) {
        // Not an api listener: nothing is there, whatever the method. A body it may carry is not
        // read, so the connection ends with the answer.
        res = not_found(req.head);
        res.close = true;
    } else {
        res = respond_http(req, server_.site());
    }
    if (res.status >= 400) server_.stats().count_refusal(res.status);
    WSLOG_EVENT(util::LogLevel::Debug, log_fields(), "conn=%llu peer=%s %.*s %.*s -> %d", static_cast<unsigned long long>(id_), peer().c_str(),
              static_cast<int>(req.method.size()), req.method.data(), static_cast<int>(req.path.size()),
              req.path.data(), res.status);  // the path: a query may hold a token
    respond(std::move(res.bytes), req.keep_alive && !res.close && !server_.shutting_down());
}

// An API request: its body is gathered first (kept in `pending_` across reads, the request parsed
// again when the rest arrives), then answered. Returns as consume_request() does.
bool Connection::consume_api_request(std::span<std::byte>& data, const proto::Request& req, size_t header_bytes) {
    BodyPlan plan = plan_body(server_, req);
    HttpResponse res;
    if (plan.refusal.status != 0) {
        res = std::move(plan.refusal);
    } else if (data.size() - header_bytes < plan.length) {
        // RFC 9110 §10.1.1: a client that asks waits for "100 Continue" before it sends the body
        // (curl does, for bodies over 1 KiB). Sent once: when no byte of the body has come yet.
        if (data.size() == header_bytes && proto::iequals(req.header("Expect"), "100-continue")) {
            queue_.push_back(Frame::copy_of(std::string_view("HTTP/1.1 100 Continue\r\n\r\n")));
            server_.mark_dirty(*this);
        }
        parser_->reset();
        save_pending(data);
        return false;
    } else {
        res = api_response(server_, req, std::span<const std::byte>(data.subspan(header_bytes, plan.length)));
        header_bytes += plan.length;
    }
    // HEAD: the headers a GET would get, without the body (the client reads none).
    if (req.head) res.bytes.resize(res.bytes.find("\r\n\r\n") + 4);
    ++server_.stats().http_requests;
    server_.stats().count_api(res.status);
    WSLOG_EVENT(res.status >= 400 ? util::LogLevel::Info : util::LogLevel::Debug, log_fields(),
                "conn=%llu peer=%s API %.*s %.*s -> %d", static_cast<unsigned long long>(id_), peer().c_str(),
                static_cast<int>(req.method.size()), req.method.data(), static_cast<int>(req.path.size()), req.path.data(),
                res.status);
    respond(std::move(res.bytes), req.keep_alive && !res.close && !server_.shutting_down());
    data = data.subspan(header_bytes);
    if (state_ == State::Request) parser_->reset();
    return state_ != State::Dead;
}

void Connection::upgrade(const proto::Request& req) {
    const config::Config& cfg = server_.config();
    if (!origin_allowed(cfg, req.origin)) {
        WSLOG_EVENT(util::LogLevel::Info, log_fields(), "conn=%llu peer=%s origin \"%.*s\" not allowed: 403", static_cast<unsigned long long>(id_),
                 peer().c_str(), static_cast<int>(req.origin.size()), req.origin.data());
        return reject({403, "origin not allowed"}, false);
    }
    // [auth] decides before a room is made for the request.
    Admission admission = admit(req, req.path, cfg.room_settings(req.path), cfg, *server_.credentials().tokens,
                                static_cast<int64_t>(::time(nullptr)));
    if (admission.status != 0) {
        server_.stats().count_auth_refusal(admission.status, admission.error == "invalid_request");
        WSLOG_EVENT(util::LogLevel::Info, log_fields(), "conn=%llu peer=%s room=%.*s token refused: %.*s: %u",
                    static_cast<unsigned long long>(id_), peer().c_str(), static_cast<int>(req.path.size()), req.path.data(),
                    static_cast<int>(admission.description.size()), admission.description.data(), admission.status);
        server_.stats().count_refusal(admission.status);
        return respond(refusal_response(admission), false);
    }
    Room& room = server_.hub().room(req.path, cfg);
    if (room.full()) {
        uint64_t suppressed = 0;
        if (server_.warn_allowed(suppressed))
            WSLOG_EVENT(util::LogLevel::Warning, log_fields(), "conn=%llu peer=%s room=%.*s is full (max_members=%u): 503 (%llu similar suppressed)",
                        static_cast<unsigned long long>(id_), peer().c_str(), static_cast<int>(room.name().size()), room.name().data(),
                        room.settings().max_members, static_cast<unsigned long long>(suppressed));
        return reject({503, "room is full"}, false);
    }
    // RFC 6455 §4.2.2: no subprotocol is selected; of the extensions only permessage-deflate, when
    // enabled, is accepted (RFC 7692).
    proto::DeflateSettings deflate;
    deflate.enabled = cfg.deflate;
    deflate.server_max_window_bits = static_cast<int>(cfg.deflate_server_max_window_bits);
    deflate.client_max_window_bits = static_cast<int>(cfg.deflate_client_max_window_bits);
    const auto agreed = proto::negotiate_deflate(req.extensions, deflate);
    if (agreed) {
        deflate_server_bits_ = static_cast<uint8_t>(agreed->server_window_bits);
        deflate_client_bits_ = static_cast<uint8_t>(agreed->client_window_bits);
        decoder_.set_options(decoder_options(cfg, true));
    }
    queue_.push_back(Frame::copy_of(proto::build_upgrade_response(req.key, {}, agreed ? agreed->response : "")));
    server_.mark_dirty(*this);
    parser_.reset();  // the request's memory goes back; views into it are not used after this
    state_ = State::Open;
    upgraded_ = true;
    room_ = &room;
    rate_tokens_milli_ = cfg.message_burst * 1000;  // a full bucket to start with
    rate_refilled_ms_ = server_.now_ms();
    if (admission.has_token) {
        listen_only_ = !admission.publish;
        identity_ = std::make_unique<Identity>();
        identity_->user = std::move(admission.user);
        if (cfg.auth.expire_connections && admission.expires_s != 0) {
            identity_->expires_s = admission.expires_s;
            server_.watch_expiry(*this, admission.expires_s);
        }
    }
    server_.hub().join(room, *this);
    ++server_.stats().websocket_upgrades;
    server_.set_timer(*this, server_.idle_timers());
    const std::string_view user = this->user();
    WSLOG_EVENT(util::LogLevel::Info, log_fields(), "conn=%llu peer=%s room=%.*s%s%.*s connected, %zu open", static_cast<unsigned long long>(id_), peer().c_str(),
             static_cast<int>(room.name().size()), room.name().data(), user.empty() ? "" : " user=", static_cast<int>(user.size()), user.data(),
             server_.open_connections());
}

void Connection::respond(std::string response, bool keep_alive) {
    queue_.push_back(Frame::copy_of(response));
    server_.mark_dirty(*this);
    if (keep_alive) {
        server_.set_timer(*this, server_.handshake_timers());  // waiting for the next request
        return;
    }
    // Last response: send it, half-close, and let the peer close (a lingering close, so the
    // response is not destroyed by a reset if the peer sent more than we read).
    state_ = State::Closing;
    close_sent_ = true;
    discard_input_ = true;
    server_.set_timer(*this, server_.closing_timers());
}

void Connection::reject(const proto::HttpError& error, bool head) {
    server_.stats().count_refusal(error.status);
    respond(proto::build_error_response(error, head), false);
}

void Connection::on_data(const proto::DecodeStep& s) {
    if (state_ != State::Open) return;  // after our close frame, data is read and ignored
    if (s.compressed) return on_compressed_data(s);
    // On a deflate connection the decoder allows a little more than max_message_bytes (room for
    // incompressible data); an uncompressed message gets the exact limit here.
    if (deflate_server_bits_ && message_.size() + s.payload.size() > server_.config().max_message_bytes) {
        discard_input_ = true;
        message_.release();
        return start_close(proto::to_wire(proto::CloseCode::MessageTooBig), "message too big");
    }
    if (s.message_begins && s.message_ends) return deliver(s.opcode, s.payload);  // no copy
    message_.append(s.payload);
    if (s.message_ends) {
        deliver(s.opcode, message_.span());
        message_.release();
    }
}

bool Connection::take_rate_token() {
    const config::Config& cfg = server_.config();
    if (cfg.message_rate == 0) return true;
    // Refill at message_rate per second, up to message_burst; one message costs one token.
    const uint64_t now = server_.now_ms();
    const uint64_t cap = cfg.message_burst * 1000;
    rate_tokens_milli_ = std::min(cap, rate_tokens_milli_ + (now - rate_refilled_ms_) * cfg.message_rate);
    rate_refilled_ms_ = now;
    if (rate_tokens_milli_ < 1000) return false;
    rate_tokens_milli_ -= 1000;
    return true;
}

void Connection::deliver(proto::Opcode op, std::span<const std::byte> payload) {
    ++server_.stats().messages_in;
    server_.stats().bytes_in += payload.size();
    if (listen_only_) {
        if (server_.config().auth.listen_only_action == config::LimitAction::Drop) {
            ++server_.stats().messages_dropped_listen_only;
            return;
        }
        return start_close(proto::to_wire(proto::CloseCode::PolicyViolation), "listen only");
    }
    if (!take_rate_token()) {
        const config::Config& cfg = server_.config();
        uint64_t suppressed = 0;
        const bool log = server_.warn_allowed(suppressed);
        if (cfg.rate_limit_action == config::LimitAction::Drop) {
            ++server_.stats().messages_dropped_rate_limit;
            if (log)
                WSLOG_EVENT(util::LogLevel::Warning, log_fields(),
                            "conn=%llu peer=%s room=%.*s message_rate (%llu/s) exceeded: message dropped (%llu similar suppressed)",
                            static_cast<unsigned long long>(id_), peer().c_str(), static_cast<int>(room_->name().size()), room_->name().data(),
                            static_cast<unsigned long long>(cfg.message_rate), static_cast<unsigned long long>(suppressed));
            return;
        }
        if (log)
            WSLOG_EVENT(util::LogLevel::Warning, log_fields(),
                        "conn=%llu peer=%s room=%.*s message_rate (%llu/s) exceeded: closing 1008 (%llu similar suppressed)",
                        static_cast<unsigned long long>(id_), peer().c_str(), static_cast<int>(room_->name().size()), room_->name().data(),
                        static_cast<unsigned long long>(cfg.message_rate), static_cast<unsigned long long>(suppressed));
        return start_close(proto::to_wire(proto::CloseCode::PolicyViolation), "message rate exceeded");
    }
    server_.hub().broadcast(*room_, op, payload, this);
}

void Connection::on_control(const proto::DecodeStep& s) {
    switch (s.opcode) {
        case proto::Opcode::Ping:
            // RFC 6455 §5.5.2-3: answer with a pong carrying the same payload, ahead of queued data.
            if (state_ == State::Open) {
                queue_.push_priority(Frame::encode(proto::Opcode::Pong, s.payload));
                server_.mark_dirty(*this);
            }
            return;
        case proto::Opcode::Pong: return;  // liveness only (the read already counted as activity)
        case proto::Opcode::Close: break;
        default: return;
    }
    close_received_ = true;
    if (state_ == State::Open) {
        // RFC 6455 §5.5.1: answer with a close frame, echoing the status code.
        close_code_ = s.close_code;
        close_note().reason.assign(s.close_reason);
        const uint16_t reply = s.close_code == proto::to_wire(proto::CloseCode::NoStatus)
                                   ? proto::to_wire(proto::CloseCode::Normal)
                                   : s.close_code;
        queue_close(reply, {});
        return;
    }
    // We had sent ours: the handshake is complete once our frame is out.
    if (queue_.empty()) retire("close handshake complete");
}

// --- Output --------------------------------------------------------------------------------------

// A permessage-deflate message: inflated as it streams in, into a buffer that exists only until
// the message ends. The size limit applies to the inflated size, checked as it grows, so a
// decompression bomb is refused (1009) before it costs more than max_message_bytes; text is
// validated as it is inflated (1007 in the fragment where it goes wrong).
void Connection::on_compressed_data(const proto::DecodeStep& s) {
    const config::Config& cfg = server_.config();
    if (s.message_begins) inflating_ = std::make_unique<Inflating>(deflate_client_bits_);
    Inflating& in = *inflating_;
    const size_t before = in.out.size();
    switch (in.inflater.feed(s.payload, s.message_ends, in.out, cfg.max_message_bytes)) {
        case proto::Inflater::Status::Ok: break;
        case proto::Inflater::Status::TooBig:
            inflating_.reset();
            discard_input_ = true;
            return start_close(proto::to_wire(proto::CloseCode::MessageTooBig), "message too big");
        case proto::Inflater::Status::Corrupt:
            inflating_.reset();
            discard_input_ = true;
            return start_close(proto::to_wire(proto::CloseCode::InvalidPayload), "invalid compressed data");
    }
    if (s.opcode == proto::Opcode::Text) {
        const bool ok = in.utf8.feed(std::span(in.out).subspan(before)) && (!s.message_ends || in.utf8.complete());
        if (!ok) {
            inflating_.reset();
            discard_input_ = true;
            return start_close(proto::to_wire(proto::CloseCode::InvalidPayload), "invalid UTF-8 in text message");
        }
    }
    if (s.message_ends) {
        const auto done = std::move(inflating_);
        deliver(s.opcode, done->out);
    }
}

void Connection::enqueue(Outgoing& message) {
    if (state_ != State::Open) return;
    const config::Config& cfg = server_.config();
    // Compressed for a client that negotiated it (and a message worth compressing), else plain.
    const FramePtr* chosen = nullptr;
    if (deflate_server_bits_ && message.payload().size() >= cfg.deflate_min_bytes)
        if (const FramePtr& d = message.deflated(deflate_server_bits_)) chosen = &d;
    enqueue_batch(chosen ? *chosen : message.plain(), 1, message.payload().size());
}

void Connection::enqueue_batch(const FramePtr& frame, uint32_t messages, uint64_t payload_bytes) {
    if (state_ != State::Open) return;
    const config::Config& cfg = server_.config();
    if (queue_.bytes() + frame->size() > cfg.send_queue_bytes && writable_ && !queue_.empty()) {
        // Writes wait for the end of the turn, but a turn can bring one room more than
        // send_queue_bytes (a busy room on a loaded machine: many senders, a long turn). The limit
        // is for peers that do not read: before calling this one slow, give its socket what it
        // takes now. (Only here, on the way to the limit; the hot path still writes once a turn.)
        // flush() may retire us (a write error); the walk over the room tolerates that.
        flush();
        if (state_ != State::Open) return;
    }
    if (queue_.bytes() + frame->size() > cfg.send_queue_bytes) {
        // Slow consumer: the room never waits for it, and its memory stays bounded.
        uint64_t suppressed = 0;
        const bool log = server_.warn_allowed(suppressed);
        if (cfg.slow_consumer == config::LimitAction::Drop) {
            server_.stats().messages_dropped_slow_consumer += messages;
            if (log)
                WSLOG_EVENT(util::LogLevel::Warning, log_fields(), "conn=%llu peer=%s room=%.*s send queue full (%llu bytes): %u message%s dropped (%llu similar suppressed)",
                            static_cast<unsigned long long>(id_), peer().c_str(), static_cast<int>(room_->name().size()), room_->name().data(),
                            static_cast<unsigned long long>(queue_.bytes()), messages, messages == 1 ? "" : "s",
                            static_cast<unsigned long long>(suppressed));
            return;
        }
        if (log)
            WSLOG_EVENT(util::LogLevel::Warning, log_fields(), "conn=%llu peer=%s room=%.*s send queue full (%llu bytes): closing 1008 (%llu similar suppressed)",
                        static_cast<unsigned long long>(id_), peer().c_str(), static_cast<int>(room_->name().size()), room_->name().data(),
                        static_cast<unsigned long long>(queue_.bytes()), static_cast<unsigned long long>(suppressed));
        return start_close(proto::to_wire(proto::CloseCode::PolicyViolation), "send queue full");
    }
    server_.stats().messages_out += messages;
    server_.stats().bytes_out += payload_bytes;
    queue_.push_back(frame);
    server_.mark_dirty(*this);
}

void Connection::start_close(uint16_t code, std::string_view reason) {
    if (state_ == State::Request) return retire(reason);
    if (state_ != State::Open) return;
    close_code_ = code;
    close_note().reason.assign(reason);
    queue_close(code, reason);
}

void Connection::queue_close(uint16_t code, std::string_view reason) {
    // Our close goes after everything already queued: messages accepted for this peer are not
    // thrown away, and the time it may take is bounded by close_timeout.
    leave_room();
    // Leaving hands us our share of the room's pending batch; if that overflowed the queue, the
    // slow-consumer policy closed us (1008) within the call, and that close frame is the one.
    if (state_ != State::Open) return;
    state_ = State::Closing;
    close_sent_ = true;
    queue_.push_back(Frame::close(code, reason));
    server_.mark_dirty(*this);
    server_.set_timer(*this, server_.closing_timers());
}

void Connection::flush() {
    dirty_hook_.unlink();
    while (!queue_.empty() && writable_ && state_ != State::Dead) {
        iovec iov[kMaxIov];
        const size_t n = queue_.fill_iov(iov, kMaxIov);
        size_t total = 0;
        for (size_t i = 0; i < n; ++i) total += iov[i].iov_len;
        const io::IoResult r = transport_.writev({iov, n}, server_.write_staging());
        if (r.status == io::IoStatus::WouldBlock) {
            // TLS: the record is encrypted and must go out as it is; a pong queued before the
            // retry goes after those bytes.
            queue_.pin(transport_.pending_write_bytes());
            writable_ = false;
            return;
        }
        if (r.status != io::IoStatus::Ok) {
            if (state_ == State::Open) close_code_ = 1006;
            return retire(std::strerror(r.error));
        }
        queue_.consume(r.bytes);
        if (input_paused_ && queue_.bytes() < server_.config().send_queue_bytes / 4) {
            input_paused_ = false;
            server_.mark_ready(*this);  // read again next turn: no new edge will say so
        }
        // A short write means the socket buffer is full: wait for the EPOLLOUT edge rather than
        // spend a syscall to learn EAGAIN.
        // (TLS writes at most one staging buffer per call, so only WouldBlock means "full" there.)
        if (!transport_.tls() && r.bytes < total) writable_ = false;
    }
    if (queue_.empty() && state_ == State::Closing) on_output_drained();
}

void Connection::on_output_drained() {
    if (close_received_) {
        transport_.shutdown_write();  // TLS: close_notify after our close frame; then FIN
        return retire("close handshake complete");
    }
    if (!write_shut_) {
        // Our close frame (or last HTTP response) is out: half-close, so the peer sees EOF after it,
        // and wait for its close frame or EOF (bounded by close_timeout).
        transport_.shutdown_write();
        write_shut_ = true;
    }
}

void Connection::leave_room() {
    if (room_) {
        close_note().room = room_->name();
        inflating_.reset();  // a message being inflated is abandoned (one delivered was moved out)
        server_.hub().leave(*room_, *this);
        room_ = nullptr;
    }
    // Not message_: we may be inside deliver() of the very message it holds (our own echo
    // overflowed our queue and closed us), and the room is still reading it. on_data() releases it
    // after the delivery, retire() in any case.
}

void Connection::retire(std::string_view why) {
    if (state_ == State::Dead) return;
    state_ = State::Dead;  // first: leaving must not queue anything for us (a batch share)
    leave_room();
    message_.release();
    const std::string room = close_note_ ? close_note_->room : std::string();
    const std::string reason = close_note_ ? close_note_->reason : std::string();
    queue_.clear();
    pending_.release();
    parser_.reset();
    transport_.close();
    if (identity_ && identity_->expires_s) server_.unwatch_expiry(*this, identity_->expires_s);
    server_.retire(*this);
    util::LogFields f = log_fields();
    f.room = room;
    f.close_code = close_code_;
    if (upgraded_) {
        server_.stats().count_close(close_code_);
        WSLOG_EVENT(util::LogLevel::Info, f, "conn=%llu peer=%s%s%s%s%.*s closed code=%u reason=\"%s\" (%.*s), %zu open",
                 static_cast<unsigned long long>(id_), peer().c_str(), room.empty() ? "" : " room=", room.c_str(),
                 f.user.empty() ? "" : " user=", static_cast<int>(f.user.size()), f.user.data(),
                 close_code_, reason.c_str(), static_cast<int>(why.size()), why.data(),
                 server_.open_connections());
    } else {
        WSLOG_EVENT(util::LogLevel::Debug, f, "conn=%llu peer=%s closed (%.*s), %zu open", static_cast<unsigned long long>(id_), peer().c_str(),
                  static_cast<int>(why.size()), why.data(), server_.open_connections());
    }
}

// --- Timers --------------------------------------------------------------------------------------

void Connection::on_token_expired() {
    identity_->expires_s = 0;  // off the server's watch (it removed us)
    if (state_ == State::Open) start_close(proto::to_wire(proto::CloseCode::PolicyViolation), "token expired");
}

void Connection::on_handshake_timeout() {
    if (!transport_.handshake_done()) {
        ++server_.stats().tls_handshake_failures;
        WSLOG_EVENT(util::LogLevel::Info, log_fields(), "conn=%llu peer=%s TLS handshake not complete within handshake_timeout",
                    static_cast<unsigned long long>(id_), peer().c_str());
        return retire("TLS handshake timed out");
    }
    if (pending_.empty()) return retire("idle HTTP connection timed out");
    WSLOG_EVENT(util::LogLevel::Info, log_fields(), "conn=%llu peer=%s request not complete within handshake_timeout: 408", static_cast<unsigned long long>(id_),
             peer().c_str());
    pending_.release();
    reject({408, "request not complete in time"}, false);
}

void Connection::send_ping() {
    if (state_ != State::Open) return;
    queue_.push_priority(Frame::encode(proto::Opcode::Ping, {}));
    server_.mark_dirty(*this);
}

void Connection::on_close_timeout() {
    if (state_ == State::Open) {  // reached through the idle list: nothing arrived at all
        return start_close(proto::to_wire(proto::CloseCode::GoingAway), "idle timeout");
    }
    retire("close timeout");
}

void Connection::apply_limits() {
    decoder_.set_options(decoder_options(server_.config(), deflate_server_bits_ != 0));
    if (parser_) parser_->set_limits(handshake_limits(server_.config()));
}

}  // namespace wsrelay::relay
