// SPDX-License-Identifier: Apache-2.0
// A randomized model test of the whole output path: a real Server (rig.h) with members on plain
// and TLS connections in two rooms, tiny socket buffers and send queues, messages small enough to
// be batched and large enough to go direct, pings whose pongs jump ahead of data, readers that
// read a few bytes at a time or not at all, members that join, leave or vanish mid-burst, members
// that take permessage-deflate beside plain ones, and the slow-consumer policies. Short writes and
// would-blocks fall wherever the seed puts them.
//
// For every seed, each client checks (as the bytes arrive) that they parse as valid unmasked server
// frames ending, if at all, in one close frame; then:
//  - every message arrives whole, only to members of its sender's room, each sender's in order
//    with no duplicates, and every pong answers one of the member's pings, in order;
//  - no pressure (queues that cannot fill): every member gets every message of the room;
//  - slow_consumer = "close": what a member gets from each sender has no gaps; one that is missing
//    messages at the end was closed with 1008; nothing is counted as dropped;
//  - slow_consumer = "drop": the connection stays open and every message skipped is counted in the
//    dropped-messages metric (exactly, when no member comes or goes mid-run).
//
// WSRELAY_MODEL_SEEDS=N runs N seeds (default 3000) from WSRELAY_MODEL_FIRST_SEED (default 0);
// WSRELAY_MODEL_SEED=S runs seed S alone. A failure names its seed.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "relay/stats.h"
#include "rig.h"

using namespace wsrelay;
using test::Client;
using test::Rig;

namespace {

constexpr uint8_t kText = 0x1, kBinary = 0x2, kPing = 0x9, kPong = 0xA;

enum class Pressure { None, Close, Drop };

const char* name(Pressure p) {
    switch (p) {
        case Pressure::None: return "none";
        case Pressure::Close: return "close";
        case Pressure::Drop: return "drop";
    }
    return "?";
}

// Message `seq` of member `sender`: "sender:seq:" then bytes that depend on both. Odd seqs are
// binary (with non-ASCII bytes), even ones text.
std::string message(uint32_t sender, uint32_t seq, size_t size) {
    std::string s = std::to_string(sender) + ":" + std::to_string(seq) + ":";
    const bool binary = seq & 1;
    uint32_t x = sender * 2654435761u ^ seq * 40503u;
    while (s.size() < size) {
        x = x * 1103515245u + 12345u;
        s.push_back(binary ? static_cast<char>(x >> 16) : static_cast<char>('a' + (x >> 16) % 26));
    }
    return s;
}

struct Member {
    Client* client;
    uint32_t id;
    int room;             // 0 or 1
    int reader;           // 0: reads a lot, 1: a little now and then, 2: not at all until the end
    bool full_time;       // a member from before the first message to the end
    bool left = false;    // closed or vanished on its own mid-run
    uint32_t sent = 0;    // messages queued (seqs 0..sent-1)
    std::vector<std::string> pings;
};

struct Outcome {
    std::string failure;  // empty: the seed passed
};

size_t pick_size(std::mt19937_64& rng) {
    const unsigned r = rng() % 100;
    if (r < 65) return 12 + rng() % 200;    // batched
    if (r < 88) return 200 + rng() % 1000;  // around the batch limit
    return 1100 + rng() % 24000;            // direct, several TLS records
}

std::string run_seed(uint64_t seed) {
    std::mt19937_64 rng(seed);
    const auto pressure = static_cast<Pressure>(seed % 3);
    const bool churn = (seed / 3) % 2 == 1;  // members join, leave and vanish mid-run
    config::Config cfg = config::default_config();
    cfg.message_rate = 0;
    cfg.max_message_bytes = 64 * 1024;
    cfg.send_queue_bytes = pressure == Pressure::None ? (1u << 30) : 2048 + rng() % (48 * 1024);
    cfg.slow_consumer = pressure == Pressure::Drop ? config::LimitAction::Drop : config::LimitAction::Close;
    cfg.deflate = rng() % 2;  // then some members take compressed messages (never batched)
    cfg.deflate_min_bytes = 64 + rng() % 512;
    Rig rig(cfg);

    std::vector<Member> members;
    std::ostringstream where;
    auto add_member = [&](bool full_time) {
        const bool tls = rng() % 100 < 30;
        const int sndbuf = rng() % 2 ? 0 : 2048 + static_cast<int>(rng() % 32768);
        const int rcvbuf = rng() % 2 ? 0 : 2048 + static_cast<int>(rng() % 32768);
        const int room = static_cast<int>(rng() % 2);
        Client& c = rig.connect(tls, sndbuf, rcvbuf, room ? "/b" : "/a", cfg.deflate && rng() % 2);
        const int reader = pressure == Pressure::None ? static_cast<int>(rng() % 2) : static_cast<int>(rng() % 3);
        members.push_back({&c, static_cast<uint32_t>(members.size()), room, reader, full_time, false, 0, {}});
    };
    const int initial = 2 + static_cast<int>(rng() % 4);
    for (int i = 0; i < initial; ++i) add_member(true);
    if (!rig.run_until([&] {
            for (const Member& m : members)
                if (!m.client->open()) return false;
            return true;
        }))
        return "members did not all open";

    const int steps = 400 + static_cast<int>(rng() % 1200);
    for (int step = 0; step < steps; ++step) {
        Member& m = members[rng() % members.size()];
        Client& c = *m.client;
        const unsigned r = rng() % 100;
        if (r < 30) {
            if (c.can_send()) {
                const std::string msg = message(m.id, m.sent, pick_size(rng));
                c.out += test::client_frame(m.sent & 1 ? kBinary : kText, msg, static_cast<uint32_t>(rng()));
                ++m.sent;
            }
        } else if (r < 34) {
            if (c.can_send()) {
                m.pings.push_back("ping " + std::to_string(m.id) + "/" + std::to_string(m.pings.size()));
                c.out += test::client_frame(kPing, m.pings.back(), static_cast<uint32_t>(rng()));
            }
        } else if (r < 58) {
            c.write_some(1 + rng() % 70000, rig.staging());
        } else if (r < 78) {
            if (m.reader == 0) c.read_some(1 + rng() % 70000);
            else if (m.reader == 1 && rng() % 5 == 0) c.read_some(1 + rng() % 3000);
        } else if (r < 97) {
            rig.turn();
        } else if (churn) {
            const unsigned what = rng() % 3;
            if (what == 0 && members.size() < 9) {
                add_member(false);
            } else if (what == 1 && c.can_send()) {
                m.left = true;
                c.send_close(1000);
            } else if (what == 2 && !c.reset) {
                m.left = true;
                c.vanish();
            }
        }
    }
    // Catch up: everyone writes all it has and reads everything; then the members still open close.
    rig.settle();
    for (Member& m : members)
        if (m.client->can_send()) m.client->send_close(1000);
    rig.settle();

    // --- checks ---
    std::ostringstream fail;
    const relay::Stats& stats = rig.server().stats();
    std::map<uint32_t, const Member*> by_id;
    for (const Member& m : members) by_id[m.id] = &m;
    uint64_t skipped_lower = 0, skipped_upper = 0;
    for (const Member& m : members) {
        const Client& c = *m.client;
        const std::string who = "member " + std::to_string(m.id) + (c.tls ? " (tls)" : " (plain)");
        if (!c.error.empty()) {
            fail << who << ": " << c.error;
            return fail.str();
        }
        if (c.reset) {
            // Vanished: what it got before is checked below like anyone's; no completeness.
        } else if (!c.close_received) {
            fail << who << ": no close frame at the end";
            return fail.str();
        }
        const bool closed_by_server = c.close_received && c.close_code == 1008;
        if (closed_by_server && pressure != Pressure::Close) {
            fail << who << ": closed with 1008 under slow_consumer = " << name(pressure);
            return fail.str();
        }
        std::map<uint32_t, std::vector<uint32_t>> got;  // sender -> seqs, in arrival order
        size_t pongs = 0;
        for (const test::Received& f : c.frames) {
            if (f.opcode == kPong) {
                if (pongs >= m.pings.size() || f.payload != m.pings[pongs]) {
                    fail << who << ": pong " << pongs << " \"" << f.payload << "\" answers no ping in order";
                    return fail.str();
                }
                ++pongs;
                continue;
            }
            if (f.opcode != kText && f.opcode != kBinary) continue;
            uint32_t sender = 0, seq = 0;
            if (std::sscanf(f.payload.c_str(), "%u:%u:", &sender, &seq) != 2 || !by_id.count(sender)) {
                fail << who << ": a message that no one sent (" << f.payload.size()
                     << (f.compressed ? " bytes inflated)" : " bytes)");
                return fail.str();
            }
            if (f.payload != message(sender, seq, f.payload.size()) || f.opcode != (seq & 1 ? kBinary : kText)) {
                fail << who << ": message " << sender << ":" << seq << " corrupted";
                return fail.str();
            }
            if (by_id[sender]->room != m.room) {
                fail << who << ": message " << sender << ":" << seq << " from another room";
                return fail.str();
            }
            std::vector<uint32_t>& seqs = got[sender];
            if (!seqs.empty() && seq <= seqs.back()) {
                fail << who << ": from " << sender << ", seq " << seq << " after " << seqs.back();
                return fail.str();
            }
            if (!seqs.empty() && seq != seqs.back() + 1 && pressure != Pressure::Drop) {
                fail << who << ": from " << sender << ", seq " << seq << " after " << seqs.back()
                     << " (a gap under slow_consumer = " << name(pressure) << ")";
                return fail.str();
            }
            seqs.push_back(seq);
        }
        for (const Member& s : members) {
            if (s.room != m.room) continue;
            const std::vector<uint32_t>& seqs = got[s.id];
            const uint32_t received = static_cast<uint32_t>(seqs.size());
            skipped_upper += s.sent - received;
            // Both there from start to end, on their own accord: m must have had everything.
            const bool both_full = m.full_time && !m.left && s.full_time && !s.left;
            if (!both_full) continue;
            const bool s_closed = s.client->close_received && s.client->close_code == 1008;
            if (pressure == Pressure::Drop) {
                skipped_lower += s.sent - received;
            } else if (!closed_by_server && !s_closed && received != s.sent) {
                fail << who << ": got " << received << " of the " << s.sent << " messages of member " << s.id;
                return fail.str();
            } else if (!seqs.empty() && seqs.front() != 0) {
                fail << who << ": the messages of member " << s.id << " start at seq " << seqs.front();
                return fail.str();
            }
        }
    }
    const uint64_t dropped = stats.messages_dropped_slow_consumer;
    if (pressure != Pressure::Drop && dropped != 0) {
        fail << dropped << " messages counted as dropped under slow_consumer = " << name(pressure);
        return fail.str();
    }
    if (pressure == Pressure::Drop && !churn && dropped != skipped_lower) {
        fail << "members skipped " << skipped_lower << " messages, the metric counts " << dropped;
        return fail.str();
    }
    if (pressure == Pressure::Drop && (dropped < skipped_lower || dropped > skipped_upper)) {
        fail << "the metric counts " << dropped << " dropped, members skipped between " << skipped_lower << " and "
             << skipped_upper;
        return fail.str();
    }
    // The metric, as Prometheus reads it.
    const std::string metrics = relay::render_metrics(stats, 0, 0, 0);
    const std::string line = "wsrelay_messages_dropped_total{reason=\"slow_consumer\"} " + std::to_string(dropped) + "\n";
    if (metrics.find(line) == std::string::npos) return "/metrics does not say: " + line;
    if (rig.server().hub().member_count() != 0) return "members left in rooms after everyone closed";
    return {};
}

uint64_t env_or(const char* name, uint64_t fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

}  // namespace

TEST_CASE("output model: random seeds over the whole output path") {
    const uint64_t only = env_or("WSRELAY_MODEL_SEED", UINT64_MAX);
    const uint64_t count = only != UINT64_MAX ? 1 : env_or("WSRELAY_MODEL_SEEDS", 3000);
    const uint64_t first = env_or("WSRELAY_MODEL_FIRST_SEED", 0);
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t ran = 0;
    for (uint64_t i = 0; i < count; ++i) {
        const uint64_t seed = only != UINT64_MAX ? only : first + i;
        const std::string failure = run_seed(seed);
        if (!failure.empty())
            FAIL("seed " << seed << " (slow_consumer " << name(static_cast<Pressure>(seed % 3))
                         << ((seed / 3) % 2 ? ", churn" : "") << "): " << failure
                         << "\n  again: WSRELAY_MODEL_SEED=" << seed << " wsrelay_unit_tests 'output model*'");
        ++ran;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    WARN(ran << " seeds in " << s << " s");
    CHECK(ran == count);
}
