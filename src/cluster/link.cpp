// SPDX-License-Identifier: Apache-2.0
#include "cluster/link.h"

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace wsrelay::cluster {

namespace {

constexpr uint64_t kFirstBackoffMs = 100;
constexpr uint64_t kMaxBackoffMs = 2000;   // a restarted Redis is back in use within ~2 s
constexpr uint64_t kConnectTimeoutMs = 5000;
constexpr size_t kChannelsPerCommand = 256;  // (UN)SUBSCRIBE arguments per command
constexpr size_t kReadChunk = 16 * 1024;

struct ReplyFree {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

}  // namespace

std::string default_node_id() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) std::strcpy(host, "localhost");
    return std::string(host) + ":" + std::to_string(::getpid());
}

RedisLink::RedisLink(relay::Server& server, io::EventLoop& loop, const config::Cluster& settings, std::string password)
    : server_(server),
      loop_(loop),
      settings_(settings),
      password_(std::move(password)),
      node_id_(settings.node_id.empty() ? default_node_id() : settings.node_id) {
    server_.stats().cluster = true;
    down_since_ms_ = io::monotonic_ms();
    connect();
}

RedisLink::~RedisLink() {
    server_.hub().set_backplane(nullptr);  // the server outlives us: its connections leave later
    close_sides();
    retired_.clear();
}

// --- Connections ---------------------------------------------------------------------------------

void RedisLink::connect() {
    connect_started_ms_ = io::monotonic_ms();
    pub_ = open_side("publisher");
    if (pub_) sub_ = open_side("subscriber");
    if (!pub_ || !sub_) return;
    // First the setup (AUTH, SELECT), then a PING whose answer says the side is usable; they wait
    // in hiredis's output buffer until the connection is established. The publisher then asks
    // for no replies at all (CLIENT REPLY OFF, Redis >= 3.2): nothing comes back for a PUBLISH,
    // so publishing costs a write and no read or wake-up.
    for (Side* s : {pub_.get(), sub_.get()}) {
        if (!password_.empty()) {
            const char* argv[] = {"AUTH", password_.data()};
            const size_t len[] = {4, password_.size()};
            send(*s, 2, argv, len);
            s->setup.push_back("AUTH");
        }
        if (settings_.db) {
            const std::string db = std::to_string(settings_.db);
            const char* argv[] = {"SELECT", db.data()};
            const size_t len[] = {6, db.size()};
            send(*s, 2, argv, len);
            s->setup.push_back("SELECT");
        }
        const char* ping[] = {"PING"};
        const size_t ping_len[] = {4};
        send(*s, 1, ping, ping_len);
        s->setup.push_back("PING");
    }
    const char* reply_off[] = {"CLIENT", "REPLY", "OFF"};
    const size_t reply_off_len[] = {6, 5, 3};
    if (pub_) send(*pub_, 3, reply_off, reply_off_len);
}

void RedisLink::send(Side& side, int argc, const char** argv, const size_t* len) {
    // Formatted by hiredis and appended to its output buffer, written by flush() (or on the
    // EPOLLOUT edge that completes the connect). Not through redisAsyncCommand: hiredis would
    // expect a reply for each command (and abort on one it did not expect); replies are ours.
    if (side.retired || !side.ac) return;  // lost earlier (out of memory)
    sds cmd = nullptr;
    const long long n = redisFormatSdsCommandArgv(&cmd, argc, argv, len);
    if (n < 0 || redisAppendFormattedCommand(&side.ac->c, cmd, static_cast<size_t>(n)) != REDIS_OK) {
        redisFreeSdsCommand(cmd);
        return lost(&side, "out of memory");
    }
    redisFreeSdsCommand(cmd);
    side.want_write = true;
}

std::unique_ptr<RedisLink::Side> RedisLink::open_side(const char* name) {
    redisAsyncContext* ac = settings_.unix_path.empty()
                                ? redisAsyncConnect(settings_.host.c_str(), settings_.port)
                                : redisAsyncConnectUnix(settings_.unix_path.c_str());
    if (!ac || ac->err) {
        const std::string why = ac ? ac->errstr : "out of memory";
        if (ac) redisAsyncFree(ac);
        lost(nullptr, why);
        return nullptr;
    }
    auto side = std::make_unique<Side>();
    side->link = this;
    side->name = name;
    side->ac = ac;
    side->fd = ac->c.fd;
    ac->data = side.get();
    // hiredis's event hooks. The fd is registered once, edge-triggered, for both directions:
    // reads are drained in on_event(); queued output is written in flush() (or on the EPOLLOUT
    // edge that says a full socket has room again, or that the connect completed).
    ac->ev.data = side.get();
    ac->ev.addRead = [](void*) {};
    ac->ev.delRead = [](void*) {};
    ac->ev.addWrite = [](void* p) { static_cast<Side*>(p)->want_write = true; };
    ac->ev.delWrite = [](void* p) { static_cast<Side*>(p)->want_write = false; };
    ac->ev.cleanup = [](void* p) {  // the context is being freed (it closes the fd next)
        Side& s = *static_cast<Side*>(p);
        if (s.fd >= 0) s.link->loop_.remove(s.fd);
        s.fd = -1;
        s.ac = nullptr;
        s.ready = false;
        s.want_write = false;
    };
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (const int e = loop_.add(side->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, side.get())) {
        side->fd = -1;
        side->retired = true;
        redisAsyncFree(ac);
        lost(nullptr, std::string("epoll_ctl: ") + std::strerror(e));
        return nullptr;
    }
    return side;
}

void RedisLink::Side::on_event(uint32_t events) {
    if (!ac || retired) return;  // freed, or given up, earlier in this batch of events
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && (want_write || !(ac->c.flags & REDIS_CONNECTED))) {
        redisAsyncHandleWrite(ac);  // completes the connect, or writes what a full socket held back
        if (!ac || retired) return;
    }
    if (!(ac->c.flags & REDIS_CONNECTED)) return;  // the connect is still under way
    const bool closed = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    if ((events & EPOLLIN) || closed) link->read_replies(*this, closed);
}

void RedisLink::read_replies(Side& side, bool closed) {
    // Edge-triggered: read until the socket is empty. A short read emptied it (data arriving
    // later brings a new edge), so no further read or FIONREAD is needed to know. When Redis has
    // closed (RDHUP/HUP/ERR), read on to the end of the stream: that close came with this edge and
    // no other edge will report it (an instance whose members only listen would never notice the
    // loss). hiredis's reader parses; each reply is handled (which may retire the side) and freed.
    // Bounded: each read consumes a chunk or ends the loop.
    std::array<char, kReadChunk> buf;
    for (int chunks = 0; chunks < (1 << 20); ++chunks) {
        const ssize_t n = ::read(side.fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) return lost(&side, n == 0 ? "Server closed the connection" : std::strerror(errno));
        redisReader* reader = side.ac->c.reader;
        if (redisReaderFeed(reader, buf.data(), static_cast<size_t>(n)) != REDIS_OK)
            return lost(&side, "out of memory");
        for (;;) {
            void* r = nullptr;
            if (redisReaderGetReply(reader, &r) != REDIS_OK)
                return lost(&side, std::string("not the Redis protocol: ") + reader->errstr);
            if (!r) break;
            const ReplyPtr reply(static_cast<redisReply*>(r));
            on_reply(side, *reply);
            if (side.retired || !side.ac) return;
        }
        if (!closed && static_cast<size_t>(n) < buf.size()) return;
    }
}

void RedisLink::on_reply(Side& side, const redisReply& reply) {
    if (!side.setup.empty()) {
        // The answers to AUTH, SELECT and PING, in the order sent.
        const char* what = side.setup.front();
        side.setup.pop_front();
        if (reply.type == REDIS_REPLY_ERROR)
            return lost(&side, std::string(what) + " refused: " + std::string(reply.str, reply.len));
        if (side.setup.empty()) side_ready(side);
        return;
    }
    if (reply.type == REDIS_REPLY_ERROR) {
        // A refused (UN)SUBSCRIBE (an ACL, say), or a server that answers the publisher all the
        // same (one that knows no CLIENT REPLY OFF answers it with an error, then every PUBLISH).
        uint64_t suppressed = 0;
        if (server_.warn_allowed(suppressed))
            WSLOG_WARNING("cluster: redis answered the %s with an error: %.*s (%llu similar suppressed)", side.name,
                          static_cast<int>(std::min<size_t>(reply.len, 200)), reply.str,
                          static_cast<unsigned long long>(suppressed));
        return;
    }
    if (&side == sub_.get()) subscriber_reply(reply);
    // Anything else on the publisher is the count a PUBLISH returns from a server that ignores
    // CLIENT REPLY OFF: nothing to do with it.
}

// hiredis callbacks for the connection itself. Each finds its Side through the context; a
// retired side is being freed, and its disconnect changes nothing.
// hiredis frees the context itself after these two: the side lets go of it first, so that
// lost() does not free it a second time.
void RedisLink::on_connect(const redisAsyncContext* ac, int status) {
    Side* side = static_cast<Side*>(ac->data);
    if (!side || side->retired || status == REDIS_OK) return;
    const std::string why = ac->errstr ? ac->errstr : "connect failed";
    side->ac = nullptr;
    side->link->lost(side, why);
}

void RedisLink::on_disconnect(const redisAsyncContext* ac, int status) {
    Side* side = static_cast<Side*>(ac->data);
    if (!side || side->retired) return;
    const std::string why = status == REDIS_OK ? "connection closed" : (ac->errstr ? ac->errstr : "connection lost");
    side->ac = nullptr;
    side->link->lost(side, why);
}

void RedisLink::side_ready(Side& side) {
    side.ready = true;
    if (!pub_ || !sub_ || !pub_->ready || !sub_->ready || up_) return;
    up_ = true;
    server_.stats().cluster_up = true;
    backoff_ms_ = 0;
    const uint64_t now = io::monotonic_ms();
    if (was_up_) {
        ++server_.stats().cluster_reconnects;
        WSLOG_NOTICE("cluster: redis link to %s is back after %.1f s down; %llu messages for remote members were dropped meanwhile",
                     settings_.endpoint().c_str(), static_cast<double>(now - down_since_ms_) / 1000.0,
                     static_cast<unsigned long long>(server_.stats().cluster_dropped - dropped_at_down_));
    } else {
        WSLOG_NOTICE("cluster: redis link to %s up (node %s, channels %sroom:<path>)", settings_.endpoint().c_str(),
                     node_id_.c_str(), settings_.channel_prefix.c_str());
    }
    was_up_ = true;
    outage_logged_ = false;
    last_error_.clear();
    changed_.insert(active_.begin(), active_.end());  // subscribed at the end of this turn
}

void RedisLink::lost(Side* side, const std::string& why) {
    const uint64_t now = io::monotonic_ms();
    if (up_ || !outage_logged_) {
        // One warning per outage (and one when the first connection fails); repeats go lower.
        if (up_) {
            down_since_ms_ = now;
            dropped_at_down_ = server_.stats().cluster_dropped;
        }
        WSLOG_WARNING("cluster: redis link to %s %s (%s: %s); local delivery continues, retrying",
                      settings_.endpoint().c_str(), up_ ? "down" : "unavailable", side ? side->name : "connect",
                      why.c_str());
        outage_logged_ = true;
        last_error_ = why;
    } else if (why != last_error_) {
        WSLOG_INFO("cluster: redis link to %s still down: %s", settings_.endpoint().c_str(), why.c_str());
        last_error_ = why;
    } else {
        WSLOG_DEBUG("cluster: redis link to %s: %s", settings_.endpoint().c_str(), why.c_str());
    }
    up_ = false;
    server_.stats().cluster_up = false;
    server_.stats().cluster_subscribed_rooms = 0;
    changed_.clear();
    subscribed_.clear();
    unsubscribing_.clear();
    close_sides();
    backoff_ms_ = backoff_ms_ ? std::min(backoff_ms_ * 2, kMaxBackoffMs) : kFirstBackoffMs;
    retry_at_ms_ = now + backoff_ms_;
}

void RedisLink::close_sides() {
    // Retire both sides and free their contexts. hiredis defers the free of a context whose
    // callback is running until that callback returns; the cleanup hook unregisters the fd.
    for (std::unique_ptr<Side>* s : {&pub_, &sub_}) {
        if (!*s) continue;
        Side& side = **s;
        side.retired = true;
        side.ready = false;
        retired_.push_back(std::move(*s));
        if (side.ac) redisAsyncFree(side.ac);
    }
}

void RedisLink::tick() {
    const uint64_t now = io::monotonic_ms();
    if (up_) return;
    const bool open = pub_ || sub_;
    if (open && now - connect_started_ms_ >= kConnectTimeoutMs)
        return lost(nullptr, "no answer within " + std::to_string(kConnectTimeoutMs / 1000) + " s");
    if (!open && now >= retry_at_ms_) connect();
}

// --- Subscriptions -------------------------------------------------------------------------------

void RedisLink::room_active(std::string_view room) {
    const auto [it, added] = active_.emplace(room);
    if (added && up_) changed_.emplace(room);
}

void RedisLink::room_inactive(std::string_view room) {
    const auto it = active_.find(room);
    if (it == active_.end()) return;
    active_.erase(it);
    if (up_) changed_.emplace(room);
}

void RedisLink::update_subscriptions() {
    std::vector<std::string> subscribe, unsubscribe;
    for (const std::string& room : changed_) {
        const bool want = active_.contains(room);
        if (want && !subscribed_.contains(room) && !unsubscribing_.contains(room)) {
            subscribed_.insert(room);
            subscribe.push_back(channel_for(settings_.channel_prefix, room));
        } else if (!want && subscribed_.contains(room)) {
            subscribed_.erase(room);
            unsubscribing_.insert(room);
            unsubscribe.push_back(channel_for(settings_.channel_prefix, room));
        }
    }
    changed_.clear();
    if (!unsubscribe.empty()) send_subscriptions("UNSUBSCRIBE", unsubscribe);
    if (!subscribe.empty()) send_subscriptions("SUBSCRIBE", subscribe);
}

void RedisLink::send_subscriptions(const char* command, std::vector<std::string>& channels) {
    std::vector<const char*> argv;
    std::vector<size_t> len;
    for (size_t i = 0; i < channels.size(); i += kChannelsPerCommand) {
        argv.assign(1, command);
        len.assign(1, std::strlen(command));
        for (size_t j = i; j < std::min(channels.size(), i + kChannelsPerCommand); ++j) {
            argv.push_back(channels[j].data());
            len.push_back(channels[j].size());
        }
        send(*sub_, static_cast<int>(argv.size()), argv.data(), len.data());
        if (!sub_) break;  // lost (out of memory)
    }
    channels.clear();
}

void RedisLink::subscriber_reply(const redisReply& reply) {
    // Pushed messages and the answers to (UN)SUBSCRIBE: ["message", channel, data],
    // ["subscribe" | "unsubscribe", channel, subscriptions left]. Anything else is ignored.
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 3) return;
    const redisReply* kind = reply.element[0];
    const redisReply* channel = reply.element[1];
    const redisReply* data = reply.element[2];
    if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING) return;
    const std::string_view k(kind->str, kind->len);
    if (k == "message" && data->type == REDIS_REPLY_STRING) {
        on_message({channel->str, channel->len}, {reinterpret_cast<const std::byte*>(data->str), data->len});
    } else if ((k == "subscribe" || k == "unsubscribe") && data->type == REDIS_REPLY_INTEGER) {
        server_.stats().cluster_subscribed_rooms = static_cast<uint64_t>(std::max<long long>(0, data->integer));
        if (k == "unsubscribe") {
            // Answered: the room may be subscribed again (if it got a member meanwhile).
            const std::string_view room = room_of(settings_.channel_prefix, {channel->str, channel->len});
            if (const auto it = unsubscribing_.find(room); it != unsubscribing_.end()) {
                changed_.insert(*it);
                unsubscribing_.erase(it);
            }
        }
    }
}

void RedisLink::on_message(std::string_view channel, std::span<const std::byte> bytes) {
    const std::string_view room = room_of(settings_.channel_prefix, channel);
    const Envelope e = decode_envelope(bytes, server_.config().max_message_bytes);
    if (!e.ok || room.empty()) {
        const std::string_view why = room.empty() ? std::string_view("not a room channel") : e.error;
        uint64_t suppressed = 0;
        if (server_.warn_allowed(suppressed))
            WSLOG_WARNING("cluster: ignoring a message on redis channel \"%.*s\": %.*s (%llu similar suppressed)",
                          static_cast<int>(std::min<size_t>(channel.size(), 200)), channel.data(),
                          static_cast<int>(why.size()), why.data(), static_cast<unsigned long long>(suppressed));
        return;
    }
    if (e.node_id == node_id_) return;  // our own publication: delivered here already
    relay::Room* r = server_.hub().find(room);
    if (!r) return;  // its last local member left while this was on its way
    for (const EnvelopeMessage& m : e.messages) {
        ++server_.stats().cluster_received;
        // A member closed by this delivery may leave the room empty; the room stays allocated
        // until the end of the turn (Hub::collect_empty_rooms()), so `r` stays valid here.
        server_.hub().broadcast(*r, m.op, m.payload, nullptr);
    }
}

// --- Publishing ----------------------------------------------------------------------------------

void RedisLink::publish(std::string_view room, proto::Opcode op, std::span<const std::byte> payload) {
    auto it = pending_.find(room);
    if (it == pending_.end()) it = pending_.emplace(std::string(room), EnvelopeWriter()).first;
    EnvelopeWriter& w = it->second;
    if (w.empty()) {
        w.start(node_id_);
        pending_rooms_.push_back(it->first);
    }
    w.add(op, payload);
}

size_t RedisLink::bytes_waiting() const noexcept { return pub_ && pub_->ac ? sdslen(pub_->ac->c.obuf) : 0; }

void RedisLink::flush() {
    // Sides retired during the turn: their contexts are freed by now (a deferred free completes
    // when the callback returns), and no event fetched this turn can still name them.
    std::erase_if(retired_, [](const std::unique_ptr<Side>& s) { return s->ac == nullptr; });
    if (up_ && sub_ && sub_->ac && !changed_.empty()) update_subscriptions();
    relay::Stats& stats = server_.stats();
    for (const std::string& room : pending_rooms_) {
        EnvelopeWriter& w = pending_.find(room)->second;
        const std::string& bytes = w.bytes();
        // The bound is on what waits already: a turn's messages bigger than it on their own still
        // go when nothing waits (they are at most max_message_bytes each).
        const size_t waiting = bytes_waiting();
        if (!up_ || !pub_ || !pub_->ac || (waiting > 0 && waiting + bytes.size() > settings_.max_pending_bytes)) {
            stats.cluster_dropped += w.messages();
            uint64_t suppressed = 0;
            if (up_ && server_.warn_allowed(suppressed))
                WSLOG_WARNING("cluster: %zu bytes wait to be written to redis (max_pending_bytes %llu): %u messages for remote members of room %s dropped (%llu similar suppressed)",
                              waiting, static_cast<unsigned long long>(settings_.max_pending_bytes),
                              w.messages(), room.c_str(), static_cast<unsigned long long>(suppressed));
        } else {
            const std::string channel = channel_for(settings_.channel_prefix, room);
            const char* argv[] = {"PUBLISH", channel.data(), bytes.data()};
            const size_t len[] = {7, channel.size(), bytes.size()};
            send(*pub_, 3, argv, len);
            if (pub_) {
                stats.cluster_published += w.messages();
                ++stats.cluster_publishes;
            } else {
                stats.cluster_dropped += w.messages();  // lost while appending (out of memory)
            }
        }
        w.clear();
    }
    pending_rooms_.clear();
    // Writers are kept (with their buffers) for active rooms; those of rooms gone are let go.
    if (pending_.size() > active_.size() + 64)
        std::erase_if(pending_, [&](const auto& kv) { return !active_.contains(kv.first); });
    for (Side* s : {pub_.get(), sub_.get()})
        if (s && s->ac && s->want_write && (s->ac->c.flags & REDIS_CONNECTED)) redisAsyncHandleWrite(s->ac);
}

}  // namespace wsrelay::cluster
