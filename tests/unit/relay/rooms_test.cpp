// SPDX-License-Identifier: Apache-2.0
// Rooms as the Hub keeps them (hub.h, "Small rooms"): one allocation with the name behind it,
// settings pointing into the running Config, a chained table of their own, batches borrowed from a
// pool. Through a real Server driven turn by turn (rig.h) where members are involved.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "relay/hub.h"
#include "relay/stats.h"
#include "rig.h"

using namespace wsrelay;
using test::Client;
using test::Rig;

namespace {

constexpr uint8_t kText = 0x1, kClose = 0x8;

config::Config base_config() {
    config::Config cfg = config::default_config();
    cfg.message_rate = 0;
    cfg.max_connections_per_ip = 0;
    return cfg;
}

std::vector<std::string> texts(const Client& c) {
    std::vector<std::string> out;
    for (const test::Received& f : c.frames)
        if (f.opcode == kText) out.push_back(f.payload);
    return out;
}

}  // namespace

TEST_CASE("rooms: found by their exact name, however long or odd, one object per name") {
    relay::Stats stats;
    relay::Hub hub(stats);
    const config::Config cfg = base_config();
    hub.apply(cfg);
    std::vector<std::string> names = {"/", "/a", "/A", "/a/", "/room with spaces", std::string("/nul\0inside", 11),
                                      "/" + std::string(3000, 'x'), "/\xC3\xA9t\xC3\xA9"};
    for (int i = 0; i < 5000; ++i) names.push_back("/bench/" + std::to_string(i));  // several rehashes
    std::vector<relay::Room*> rooms;
    for (const std::string& n : names) rooms.push_back(&hub.room(n, cfg));
    CHECK(hub.rooms_allocated() == names.size());
    for (size_t i = 0; i < names.size(); ++i) {
        INFO("room " << i);
        CHECK(rooms[i]->name() == names[i]);                 // the bytes behind the object
        CHECK(&hub.room(names[i], cfg) == rooms[i]);         // the same room again, not a new one
        CHECK(hub.find(names[i]) == nullptr);                // no members: not a room for find()
        CHECK(rooms[i]->size() == 0);
    }
    CHECK(hub.rooms_allocated() == names.size());
    CHECK(hub.room_count() == 0);
    // Names that differ only in length or a last byte are different rooms.
    CHECK(&hub.room("/bench/1", cfg) != &hub.room("/bench/10", cfg));
    CHECK(&hub.room("/a", cfg) != &hub.room("/a/", cfg));
}

TEST_CASE("rooms: settings point into the running config; a reload re-points every room") {
    relay::Stats stats;
    relay::Hub hub(stats);
    auto cfg = std::make_unique<config::Config>(base_config());
    cfg->rooms = {.echo = true, .max_members = 0};
    cfg->room_overrides["/small"] = {.echo = false, .max_members = 2};
    hub.apply(*cfg);
    relay::Room& small = hub.room("/small", *cfg);
    relay::Room& other = hub.room("/other", *cfg);
    CHECK(&small.settings() == &cfg->room_overrides.at("/small"));  // shared, not copied
    CHECK(&other.settings() == &cfg->rooms);
    CHECK_FALSE(small.settings().echo);
    CHECK(other.settings().echo);

    // The reload's Config replaces the old one, which is freed: every room must follow.
    auto next = std::make_unique<config::Config>(base_config());
    next->rooms = {.echo = false, .max_members = 5};
    next->room_overrides["/other"] = {.echo = true, .max_members = 1};
    hub.apply(*next);
    cfg.reset();
    CHECK(&small.settings() == &next->rooms);  // its [[room]] entry is gone: the defaults now
    CHECK(small.settings() == config::RoomSettings{.echo = false, .max_members = 5});
    CHECK(&other.settings() == &next->room_overrides.at("/other"));
    CHECK(other.settings() == config::RoomSettings{.echo = true, .max_members = 1});
}

TEST_CASE("rooms: a room per connection lives exactly as long as its member") {
    Rig rig(base_config(), false);
    constexpr int kRooms = 300;
    std::vector<Client*> solo;
    for (int i = 0; i < kRooms; ++i) solo.push_back(&rig.connect(false, 0, 0, "/user/" + std::to_string(i)));
    Client& a = rig.connect(false, 0, 0, "/shared");
    Client& b = rig.connect(false, 0, 0, "/shared");
    REQUIRE(rig.run_until([&] {
        for (Client* c : solo)
            if (!c->open()) return false;
        return a.open() && b.open();
    }));
    CHECK(rig.server().hub().room_count() == kRooms + 1);
    CHECK(rig.server().hub().rooms_allocated() == kRooms + 1);
    // Everyone speaks once: each solo member hears itself only; the shared room hears both.
    for (int i = 0; i < kRooms; ++i) solo[i]->out += test::client_frame(kText, "from " + std::to_string(i));
    a.out += test::client_frame(kText, "from a");
    b.out += test::client_frame(kText, "from b");
    rig.settle();
    for (int i = 0; i < kRooms; ++i) {
        INFO("solo member " << i);
        CHECK(texts(*solo[i]) == std::vector<std::string>{"from " + std::to_string(i)});
    }
    CHECK(texts(a).size() == 2);
    CHECK(texts(b).size() == 2);

    // Half the solo members leave: their rooms are freed at the end of that turn.
    for (int i = 0; i < kRooms; i += 2) solo[i]->send_close(1000);
    rig.settle();
    CHECK(rig.server().hub().room_count() == kRooms / 2 + 1);
    CHECK(rig.server().hub().rooms_allocated() == kRooms / 2 + 1);
    // The rest and the shared room's members leave too: nothing is left allocated.
    for (int i = 1; i < kRooms; i += 2) solo[i]->send_close(1000);
    a.send_close(1000);
    b.send_close(1000);
    rig.settle();
    CHECK(rig.server().hub().room_count() == 0);
    CHECK(rig.server().hub().rooms_allocated() == 0);
    CHECK(rig.server().hub().member_count() == 0);
}

TEST_CASE("rooms: a room emptied and joined again in the same turn is kept, and works") {
    Rig rig(base_config(), false);
    Client& first = rig.connect(false, 0, 0, "/again");
    REQUIRE(rig.run_until([&] { return first.open(); }));
    // In one turn: the only member's close frame, and a newcomer's upgrade to the same room.
    first.send_close(1000);
    Client& second = rig.connect(false, 0, 0, "/again");
    first.write_some(SIZE_MAX, rig.staging());
    second.write_some(SIZE_MAX, rig.staging());
    rig.turn();
    CHECK(rig.server().hub().rooms_allocated() == 1);
    REQUIRE(rig.run_until([&] { return second.open() && first.eof; }));
    CHECK(rig.server().hub().room_count() == 1);
    Client& third = rig.connect(false, 0, 0, "/again");
    REQUIRE(rig.run_until([&] { return third.open(); }));
    second.out += test::client_frame(kText, "still a room");
    REQUIRE(rig.run_until([&] { return texts(third).size() == 1 && texts(second).size() == 1; }));
    CHECK(texts(third) == std::vector<std::string>{"still a room"});
    CHECK(texts(first).empty());
}

TEST_CASE("rooms: many small rooms batching in the same turn each deliver their own, in order") {
    // More rooms busy in one turn than a handful of pooled batches: each borrows its own.
    Rig rig(base_config(), false);
    constexpr int kRooms = 64, kMessages = 5;
    std::vector<std::pair<Client*, Client*>> pairs;
    for (int i = 0; i < kRooms; ++i) {
        const std::string path = "/pair/" + std::to_string(i);
        pairs.emplace_back(&rig.connect(false, 0, 0, path), &rig.connect(false, 0, 0, path));
    }
    REQUIRE(rig.run_until([&] {
        for (auto [x, y] : pairs)
            if (!x->open() || !y->open()) return false;
        return true;
    }));
    for (int i = 0; i < kRooms; ++i)
        for (int m = 0; m < kMessages; ++m)
            pairs[i].first->out += test::client_frame(kText, std::to_string(i) + ":" + std::to_string(m));
    rig.settle();
    for (int i = 0; i < kRooms; ++i) {
        INFO("room " << i);
        std::vector<std::string> want;
        for (int m = 0; m < kMessages; ++m) want.push_back(std::to_string(i) + ":" + std::to_string(m));
        CHECK(texts(*pairs[i].first) == want);   // echo
        CHECK(texts(*pairs[i].second) == want);  // the other member, nothing from other rooms
    }
}
