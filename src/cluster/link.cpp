// SPDX-License-Identifier: Apache-2.0
#include "cluster/link.h"

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "util/log.h"

namespace wsrelay::cluster {

namespace {

constexpr uint64_t kFirstBackoffMs = 100;
constexpr uint64_t kMaxBackoffMs = 2000;   // a restarted Redis is back in use within ~2 s
constexpr uint64_t kConnectTimeoutMs = 5000;
constexpr size_t kChannelsPerCommand = 256;  // (UN)SUBSCRIBE arguments per command

std::string reply_error(const redisReply* r) {
    if (!r) return "no reply (connection lost)";
    if (r->type == REDIS_REPLY_ERROR) return std::string(r->str, r->len);
    return {};
}

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
    // First the setup (AUTH, SELECT), then a PING whose answer says the side is usable. hiredis
    // queues them until the connection is established.
    for (Side* s : {pub_.get(), sub_.get()}) {
        if (!password_.empty()) {
            const char* argv[] = {"AUTH", password_.data()};
            const size_t len[] = {4, password_.size()};
            redisAsyncCommandArgv(s->ac, on_setup_reply, const_cast<char*>("AUTH"), 2, argv, len);
        }
        if (settings_.db) {
            const std::string db = std::to_string(settings_.db);
            const char* argv[] = {"SELECT", db.data()};
            const size_t len[] = {6, db.size()};
            redisAsyncCommandArgv(s->ac, on_setup_reply, const_cast<char*>("SELECT"), 2, argv, len);
        }
        redisAsyncCommand(s->ac, on_ping_reply, nullptr, "PING");
    }
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
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && (want_write || !(ac->c.flags & REDIS_CONNECTED)))
        redisAsyncHandleWrite(ac);  // completes the connect, or writes what a full socket held back
    // Edge-triggered: read until the socket is empty. hiredis reads one chunk per call and runs
    // the callbacks of every complete reply in it (which may retire this side). When Redis has
    // closed (RDHUP/HUP/ERR), read on until hiredis sees the end and disconnects: that close came
    // with this edge, and no other edge will report it (an instance whose members only listen
    // would never notice the loss). Bounded: each call consumes a chunk or reaches the end.
    const bool closed = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    if (!(events & EPOLLIN) && !closed) return;
    for (int chunks = 0; ac && !retired && chunks < (1 << 20); ++chunks) {
        redisAsyncHandleRead(ac);
        int queued = 0;
        if (!ac || retired) return;
        if (!closed && (::ioctl(fd, FIONREAD, &queued) != 0 || queued <= 0)) return;
    }
}

// hiredis callbacks. Each finds its Side through the context; a retired side is being freed, and
// its callbacks (run with no reply, or the disconnect) change nothing.
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

void RedisLink::on_setup_reply(redisAsyncContext* ac, void* reply, void* privdata) {
    Side* side = static_cast<Side*>(ac->data);
    const std::string error = reply_error(static_cast<redisReply*>(reply));
    if (!side || side->retired || !reply || error.empty()) return;  // a lost connection: on_disconnect
    side->link->lost(side, std::string(static_cast<const char*>(privdata)) + " refused: " + error);
}

void RedisLink::on_ping_reply(redisAsyncContext* ac, void* reply, void*) {
    Side* side = static_cast<Side*>(ac->data);
    if (!side || side->retired || !reply || static_cast<redisReply*>(reply)->type == REDIS_REPLY_ERROR) return;
    side->link->side_ready(*side);
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
        redisAsyncCommandArgv(sub_->ac, on_subscriber_reply, nullptr, static_cast<int>(argv.size()), argv.data(),
                              len.data());
    }
    channels.clear();
}

void RedisLink::on_subscriber_reply(redisAsyncContext* ac, void* r, void*) {
    const auto* reply = static_cast<redisReply*>(r);
    Side* side = static_cast<Side*>(ac->data);
    if (!side || side->retired || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
    RedisLink& link = *side->link;
    const redisReply* kind = reply->element[0];
    const redisReply* channel = reply->element[1];
    const redisReply* data = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING) return;
    const std::string_view k(kind->str, kind->len);
    if (k == "message" && data->type == REDIS_REPLY_STRING) {
        link.on_message({channel->str, channel->len}, {reinterpret_cast<const std::byte*>(data->str), data->len});
    } else if ((k == "subscribe" || k == "unsubscribe") && data->type == REDIS_REPLY_INTEGER) {
        link.server_.stats().cluster_subscribed_rooms = static_cast<uint64_t>(std::max<long long>(0, data->integer));
        if (k == "unsubscribe") {
            // Answered: the room may be subscribed again (if it got a member meanwhile).
            const std::string_view room = room_of(link.settings_.channel_prefix, {channel->str, channel->len});
            if (const auto it = link.unsubscribing_.find(room); it != link.unsubscribing_.end()) {
                link.changed_.insert(*it);
                link.unsubscribing_.erase(it);
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
        r->broadcast(m.op, m.payload, nullptr);
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
            redisAsyncCommandArgv(pub_->ac, nullptr, nullptr, 3, argv, len);
            stats.cluster_published += w.messages();
            ++stats.cluster_publishes;
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
