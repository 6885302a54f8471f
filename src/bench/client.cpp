// SPDX-License-Identifier: Apache-2.0
#include "bench/client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bench/driver.h"
#include "proto/handshake.h"

namespace wsrelay::bench {
namespace {

// The upgrade response must fit in this; wsrelay's 101 is about 130 bytes.
constexpr size_t kMaxUpgradeResponseBytes = 16 * 1024;

proto::DecoderOptions client_decoder_options() {
    proto::DecoderOptions o;
    o.role = proto::Role::Client;
    o.max_message_bytes = uint64_t{1} << 40;  // we only count and timestamp messages, never buffer them
    o.validate_utf8 = false;                  // measuring the server, not checking it
    return o;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

}  // namespace

Client::Client(Driver& driver, Role role, uint32_t index, const Target& target, std::string room)
    : driver_(driver),
      role_(role),
      index_(index),
      target_(target),
      raw_(target.raw),
      decoder_(client_decoder_options()),
      room_(std::move(room)) {}

Client::~Client() {
    live_hook_.unlink();
    dirty_hook_.unlink();
}

Client::StartResult Client::start(const util::SocketAddress* source) {
    started_ns_ = driver_.now_ns();
    const util::SocketAddress& to = target_.address;
    io::UniqueFd fd(::socket(to.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return {errno, "socket"};
    // Small messages must leave as soon as they are written: Nagle would hold them for an ACK.
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (source) {
        // The port is chosen at connect() time, for the whole 4-tuple: each source address then
        // gives its own ~28k ephemeral ports per destination.
        ::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (::bind(fd.get(), source->get(), source->length) != 0) return {errno, "bind"};
    }
    if (::connect(fd.get(), to.get(), to.length) != 0 && errno != EINPROGRESS) return {errno, "connect"};
    io::SslPtr ssl;
    if (target_.tls) {
        ssl = driver_.tls()->new_session(target_.host);
        if (!ssl) return {EPROTO, "TLS setup"};
        ssl_ = ssl.get();
    }
    const int raw_fd = fd.get();
    transport_ = io::Transport(std::move(fd), std::move(ssl));
    // Registered once for everything; the connect's completion arrives as EPOLLOUT.
    if (const int e = driver_.loop().add(raw_fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this)) return {e, "epoll_ctl"};
    return {};
}

// --- Events --------------------------------------------------------------------------------------

void Client::on_event(uint32_t events) {
    if (state_ == State::Done) return;  // finished earlier in this batch; freed after it
    if (state_ == State::Connecting) {
        int error = 0;
        socklen_t len = sizeof error;
        ::getsockopt(transport_.fd(), SOL_SOCKET, SO_ERROR, &error, &len);
        if (error) return finish(Outcome::Failed, std::string("connect: ") + std::strerror(error));
        if (!(events & EPOLLOUT)) return;  // not connected yet (cannot really happen)
        on_connected();
        if (state_ == State::Done) return;
    }
    if (events & EPOLLOUT) writable_ = true;
    if (state_ == State::TlsHandshake) {
        continue_tls_handshake();
        if (state_ == State::TlsHandshake || state_ == State::Done) return;
    }
    if (events & EPOLLOUT) {
        if (transport_.read_wants_write()) on_readable(true);  // a TLS read that had to write first
        if (!out_.empty()) flush();
    }
    // EPOLLRDHUP/HUP/ERR all mean "a read will not block": it returns what is still buffered, then
    // EOF or the error. With those, read to the end: no later edge will announce the EOF again.
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        on_readable((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
        if (state_ != State::Done && transport_.write_wants_read() && !out_.empty()) flush();
    }
}

void Client::on_connected() {
    if (transport_.tls()) {
        state_ = State::TlsHandshake;
        return continue_tls_handshake();
    }
    send_upgrade();
}

void Client::continue_tls_handshake() {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) return send_upgrade();
    switch (SSL_get_error(ssl_, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE: return;  // every event retries: we are registered for both edges
        default: return finish(Outcome::Failed, "TLS handshake: " + io::tls_error_string());
    }
}

void Client::send_upgrade() {
    state_ = State::Upgrading;
    if (raw_) {
        append_raw_message(out_, std::as_bytes(std::span(room_)));
        return flush();
    }
    // RFC 6455 §4.1: the key is 16 random bytes, base64-encoded.
    unsigned char nonce[16];
    const uint64_t a = driver_.random(), b = driver_.random();
    std::memcpy(nonce, &a, 8);
    std::memcpy(nonce + 8, &b, 8);
    char key[32];
    EVP_EncodeBlock(reinterpret_cast<unsigned char*>(key), nonce, sizeof nonce);  // 24 chars + NUL
    expected_accept_ = proto::websocket_accept(key);
    const std::string request = "GET " + room_ + " HTTP/1.1\r\nHost: " + target_.host_header +
                                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                                "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    out_.append(std::as_bytes(std::span(request)));
    flush();
}

// --- Input ---------------------------------------------------------------------------------------

void Client::on_readable(bool drain_to_eof) {
    while (state_ != State::Done) {
        // TLS copies into the buffer fastest from some starting points (see io::alias_free_skew).
        const std::span<std::byte> scratch = driver_.scratch().subspan(transport_.read_skew(driver_.scratch().data()));
        // The unconsumed tail of the last read goes in front, so the decoder sees contiguous bytes.
        const size_t have = carry_len_;
        if (have) std::memcpy(scratch.data(), carry_, have);
        carry_len_ = 0;
        const std::span<std::byte> room = scratch.subspan(have);
        const io::IoResult r = transport_.read(room);
        if (r.status == io::IoStatus::WouldBlock) {
            std::memcpy(carry_, scratch.data(), have);
            carry_len_ = static_cast<uint8_t>(have);
            return;
        }
        if (r.status == io::IoStatus::Eof) return on_eof();
        if (r.status == io::IoStatus::Error)
            return finish(Outcome::Failed, transport_.tls_error().empty() ? std::string("read: ") + std::strerror(r.error)
                                                                         : transport_.tls_error());
        driver_.refresh_now();  // one clock read per read(): every message in it arrived now
        consume(scratch.first(have + r.bytes));
        // The read emptied the socket (and TLS holds nothing back), and any byte that arrives later
        // raises a new edge: skip the read that would only say EAGAIN. Not after RDHUP/HUP/ERR
        // (the EOF must be read now).
        if (!drain_to_eof && r.drained) return;
    }
}

void Client::consume(std::span<std::byte> data) {
    if (state_ == State::Upgrading && !raw_ && !consume_upgrade_response(data)) return;
    decode(data);
}

// Returns true once upgraded, with `data` advanced past the response.
bool Client::consume_upgrade_response(std::span<std::byte>& data) {
    const size_t before = http_.size();
    http_.append(reinterpret_cast<const char*>(data.data()), data.size());
    const size_t end = http_.find("\r\n\r\n");
    if (end == std::string::npos) {
        data = {};
        if (http_.size() > kMaxUpgradeResponseBytes) finish(Outcome::Failed, "upgrade response too long");
        return false;
    }
    data = data.subspan(end + 4 - before);  // what follows the header block is WebSocket frames
    const std::string_view head(http_.data(), end);
    const std::string_view status_line = head.substr(0, head.find("\r\n"));
    if (!status_line.starts_with("HTTP/1.1 101")) {
        finish(Outcome::Failed, "upgrade refused: " + std::string(status_line));
        return false;
    }
    // RFC 6455 §4.1: the client must fail the connection unless Sec-WebSocket-Accept matches.
    bool accepted = false;
    for (size_t at = status_line.size() + 2; at < head.size();) {
        const size_t eol = std::min(head.find("\r\n", at), head.size());
        const std::string_view line = head.substr(at, eol - at);
        at = eol + 2;
        const size_t colon = line.find(':');
        if (colon != std::string_view::npos && proto::iequals(line.substr(0, colon), "Sec-WebSocket-Accept"))
            accepted = trim(line.substr(colon + 1)) == expected_accept_;
    }
    if (!accepted) {
        finish(Outcome::Failed, "upgrade: missing or wrong Sec-WebSocket-Accept");
        return false;
    }
    std::string().swap(http_);  // the memory goes back: idle connections keep no buffers
    std::string().swap(expected_accept_);
    become_open();
    return state_ != State::Done;
}

void Client::decode(std::span<std::byte> data) {
    while (state_ != State::Done) {
        const proto::DecodeStep s = raw_ ? raw_decoder_.next(data) : decoder_.next(data);
        data = data.subspan(s.consumed);
        switch (s.kind) {
            case proto::StepKind::NeedMore:
                // At most a frame header plus a control frame (the decoder's contract), or a
                // partial raw length: it fits.
                std::memcpy(carry_, data.data(), data.size());
                carry_len_ = static_cast<uint8_t>(data.size());
                return;
            case proto::StepKind::Data: on_piece(s); break;
            case proto::StepKind::Control: on_control(s); break;
            case proto::StepKind::Error:
                return finish(Outcome::Failed, "protocol error from the server: " + std::string(s.error.reason));
        }
    }
}

void Client::on_piece(const proto::DecodeStep& s) {
    if (s.message_begins) ts_have_ = 0;
    // Gather the first 8 payload bytes across pieces: a message may arrive split over reads.
    if (ts_have_ < kTimestampBytes && !s.payload.empty()) {
        const size_t take = std::min(kTimestampBytes - ts_have_, s.payload.size());
        std::memcpy(ts_ + ts_have_, s.payload.data(), take);
        ts_have_ = static_cast<uint8_t>(ts_have_ + take);
    }
    if (!s.message_ends) return;
    if (state_ == State::Upgrading) return become_open();  // raw: the welcome message
    if (state_ != State::Open) return;                      // closing: the rest is not counted
    uint64_t sent = 0;
    const bool timed = ts_have_ == kTimestampBytes && read_timestamp(ts_, driver_.options().text, sent);
    driver_.on_message(*this, timed, sent);
}

void Client::on_control(const proto::DecodeStep& s) {
    switch (s.opcode) {
        case proto::Opcode::Ping:
            // RFC 6455 §5.5.3: a pong carries the ping's payload; ours is masked like every frame.
            if (state_ == State::Open) {
                append_ws_frame(out_, proto::Opcode::Pong, s.payload, mask_key_);
                driver_.mark_dirty(*this);
            }
            return;
        case proto::Opcode::Close:
            close_received_ = true;
            if (state_ == State::Open) {
                // The server started the close: answer it (RFC 6455 §5.5.1), and report it.
                server_close_code_ = s.close_code;
                const std::byte code[2] = {std::byte{static_cast<uint8_t>(s.close_code >> 8)},
                                           std::byte{static_cast<uint8_t>(s.close_code)}};
                append_ws_frame(out_, proto::Opcode::Close, code, mask_key_);
                state_ = State::Closing;
                closing_since_ns_ = driver_.now_ns();
                driver_.mark_dirty(*this);
            }
            return;  // either way, the server closes TCP next (RFC 6455 §7.1.1); we wait for EOF
        default: return;
    }
}

void Client::on_eof() {
    if (server_close_code_)
        return finish(Outcome::Failed, "server closed the connection with code " + std::to_string(server_close_code_));
    if (state_ == State::Closing && (close_received_ || raw_)) return finish(Outcome::Closed, "closed");
    finish(Outcome::Failed, "server closed the connection");
}

void Client::become_open() {
    state_ = State::Open;
    opened_ = true;
    mask_key_ = static_cast<proto::MaskKey>(driver_.random());
    const Options& o = driver_.options();
    if (role_ == Role::Echo || role_ == Role::Publisher) {
        message_ = MessageTemplate(raw_, o.text, o.size, mask_key_);
        // Room for what the scenario keeps in flight, so steady traffic never grows the buffer.
        const size_t in_flight = role_ == Role::Echo ? o.depth : o.window;
        out_.reserve(in_flight * message_.size() + 256);
    }
    driver_.on_open(*this);
}

// --- Output --------------------------------------------------------------------------------------

void Client::send_message() {
    message_.append_to(out_, driver_.now_ns());
    driver_.mark_dirty(*this);
}

void Client::begin_close() {
    if (state_ != State::Open) {
        if (state_ != State::Closing && state_ != State::Done) finish(Outcome::Aborted, "not open at the end of the run");
        return;
    }
    state_ = State::Closing;
    closing_since_ns_ = driver_.now_ns();
    if (!raw_) {
        const std::byte normal[2] = {std::byte{0x03}, std::byte{0xE8}};  // 1000
        append_ws_frame(out_, proto::Opcode::Close, normal, mask_key_);
    }
    driver_.mark_dirty(*this);  // raw: the flush half-closes once the queue is empty
}

void Client::abort(Outcome outcome, std::string_view why) {
    if (state_ != State::Done) finish(outcome, why);
}

void Client::flush() {
    dirty_hook_.unlink();
    while (!out_.empty() && writable_ && state_ != State::Done) {
        const std::span<const std::byte> bytes = out_.pending();
        const iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
        const io::IoResult r = transport_.writev({&iov, 1}, driver_.write_staging());
        if (r.status == io::IoStatus::WouldBlock) {
            // A TLS write that must read first is retried on the next EPOLLIN, not EPOLLOUT.
            if (!transport_.write_wants_read()) writable_ = false;
            return;
        }
        if (r.status != io::IoStatus::Ok)
            return finish(Outcome::Failed, std::string("write: ") + std::strerror(r.error));
        out_.consume(r.bytes);
        // A short plain write means the socket buffer is full: the EPOLLOUT edge says when not.
        if (!transport_.tls() && r.bytes < bytes.size()) writable_ = false;
    }
    if (raw_ && state_ == State::Closing && out_.empty() && !write_shut_) {
        transport_.shutdown_write();  // raw close: FIN; the server answers with its own
        write_shut_ = true;
    }
}

void Client::finish(Outcome outcome, std::string_view why) {
    state_ = State::Done;
    dirty_hook_.unlink();
    transport_.close();  // also leaves the epoll set
    driver_.on_done(*this, outcome, why);
}

}  // namespace wsrelay::bench
