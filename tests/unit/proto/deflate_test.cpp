// SPDX-License-Identifier: Apache-2.0
// permessage-deflate (RFC 7692): negotiation, and the per-message compressor/decompressor.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "proto/deflate.h"

using namespace wsrelay::proto;

namespace {

DeflateSettings enabled(int server_bits = 15, int client_bits = 15) {
    DeflateSettings s;
    s.enabled = true;
    s.server_max_window_bits = server_bits;
    s.client_max_window_bits = client_bits;
    return s;
}

std::vector<std::byte> bytes(const std::string& s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
}

std::string text(const std::vector<std::byte>& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// Compress with the server's Deflater, inflate with an Inflater: the RFC 7692 §7.2 round trip.
std::string round_trip(const std::string& message, int bits, size_t piece = 0) {
    Deflater d(bits, 6);
    std::vector<std::byte> compressed, out;
    REQUIRE(d.compress(bytes(message), compressed));
    Inflater in(bits);
    if (piece == 0) {
        REQUIRE(in.feed(compressed, true, out, 1u << 30) == Inflater::Status::Ok);
    } else {
        for (size_t off = 0; off < compressed.size(); off += piece) {
            const size_t n = std::min(piece, compressed.size() - off);
            const bool last = off + n == compressed.size();
            REQUIRE(in.feed(std::span(compressed).subspan(off, n), last, out, 1u << 30) == Inflater::Status::Ok);
        }
    }
    return text(out);
}

}  // namespace

TEST_CASE("deflate: negotiation follows RFC 7692 §7.1") {
    SECTION("off unless enabled") { CHECK_FALSE(negotiate_deflate({"permessage-deflate"}, DeflateSettings{})); }
    SECTION("a plain offer gets both no-context-takeover parameters") {
        const auto a = negotiate_deflate({"permessage-deflate"}, enabled());
        REQUIRE(a);
        CHECK(a->response == "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        CHECK(a->server_window_bits == 15);
        CHECK(a->client_window_bits == 15);
    }
    SECTION("client_max_window_bits without a value lets us choose; with one, we stay at or below it") {
        auto a = negotiate_deflate({"permessage-deflate; client_max_window_bits"}, enabled(15, 12));
        REQUIRE(a);
        CHECK(a->response == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=12");
        CHECK(a->client_window_bits == 12);
        a = negotiate_deflate({"permessage-deflate; client_max_window_bits=10"}, enabled(15, 12));
        REQUIRE(a);
        CHECK(a->client_window_bits == 10);
        CHECK(a->response.find("client_max_window_bits=10") != std::string::npos);
    }
    SECTION("client_max_window_bits is never sent unless offered (§7.1.2.2)") {
        const auto a = negotiate_deflate({"permessage-deflate"}, enabled(15, 10));
        REQUIRE(a);
        CHECK(a->response.find("client_max_window_bits") == std::string::npos);
        CHECK(a->client_window_bits == 15);
    }
    SECTION("server_max_window_bits: at most what the client offered and what we allow") {
        auto a = negotiate_deflate({"permessage-deflate; server_max_window_bits=10"}, enabled(12));
        REQUIRE(a);
        CHECK(a->server_window_bits == 10);
        CHECK(a->response.find("server_max_window_bits=10") != std::string::npos);
        a = negotiate_deflate({"permessage-deflate"}, enabled(11));
        REQUIRE(a);
        CHECK(a->server_window_bits == 11);
        CHECK(a->response.find("server_max_window_bits=11") != std::string::npos);
        a = negotiate_deflate({"permessage-deflate; server_max_window_bits=\"12\""}, enabled());
        REQUIRE(a);
        CHECK(a->server_window_bits == 12);
    }
    SECTION("invalid offers are declined, and the next acceptable one is taken") {
        for (const char* bad : {"permessage-deflate; foo", "permessage-deflate; server_no_context_takeover=1",
                                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                                "permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=16",
                                "permessage-deflate; server_max_window_bits=7", "permessage-deflate; server_max_window_bits=abc",
                                "permessage-deflate; client_max_window_bits=8; client_max_window_bits=9",
                                "permessage-deflate; client_max_window_bits=20",
                                // zlib cannot compress with a 256-byte window: declined, not lied about.
                                "permessage-deflate; server_max_window_bits=8", "x-webkit-deflate-frame"}) {
            INFO(bad);
            CHECK_FALSE(negotiate_deflate({bad}, enabled()));
            const auto a = negotiate_deflate({bad, "permessage-deflate; client_max_window_bits"}, enabled());
            REQUIRE(a);
            CHECK(a->response.find("client_max_window_bits=15") != std::string::npos);
        }
    }
    SECTION("names and parameters are case-insensitive, whitespace is optional") {
        const auto a = negotiate_deflate({"Permessage-Deflate ;Client_No_Context_Takeover ; server_max_window_bits = 9"}, enabled());
        REQUIRE(a);
        CHECK(a->server_window_bits == 9);
    }
}

TEST_CASE("deflate: messages round-trip for every window size and any split") {
    std::string big;
    for (int i = 0; i < 5000; ++i) big += "message " + std::to_string(i * 7919 % 1000) + " 你好 ";
    for (int bits = 9; bits <= 15; ++bits) {
        INFO("window bits " << bits);
        CHECK(round_trip("", bits).empty());
        CHECK(round_trip("a", bits) == "a");
        CHECK(round_trip("Hello", bits) == "Hello");
        CHECK(round_trip(big, bits) == big);
        for (size_t piece : {1u, 3u, 64u, 1000u}) CHECK(round_trip(big, bits, piece) == big);
    }
}

TEST_CASE("deflate: the RFC 7692 §7.2.3.1 example decodes") {
    // "Hello" compressed in one block, as printed in the RFC.
    const std::vector<std::byte> hello{std::byte{0xf2}, std::byte{0x48}, std::byte{0xcd}, std::byte{0xc9}, std::byte{0xc9},
                                       std::byte{0x07}, std::byte{0x00}};
    Inflater in(15);
    std::vector<std::byte> out;
    REQUIRE(in.feed(hello, true, out, 100) == Inflater::Status::Ok);
    CHECK(text(out) == "Hello");
    // And the server's own output for "Hello" is exactly these bytes (sync flush, tail removed).
    Deflater d(15, 6);
    std::vector<std::byte> compressed;
    REQUIRE(d.compress(bytes("Hello"), compressed));
    CHECK(compressed == hello);
}

TEST_CASE("deflate: a decompression bomb stops at the limit, before memory grows") {
    const std::string zeros(50u << 20, '\0');
    Deflater d(15, 9);
    std::vector<std::byte> bomb, out;
    REQUIRE(d.compress(bytes(zeros), bomb));
    CHECK(bomb.size() < 100'000);
    Inflater in(15);
    CHECK(in.feed(bomb, true, out, 1u << 20) == Inflater::Status::TooBig);
    CHECK(out.size() <= (1u << 20) + 1);
}

TEST_CASE("deflate: corrupt data is reported, not crashed on") {
    Inflater in(15);
    std::vector<std::byte> out;
    const std::vector<std::byte> junk(64, std::byte{0xff});
    CHECK(in.feed(junk, true, out, 1u << 20) == Inflater::Status::Corrupt);
}
