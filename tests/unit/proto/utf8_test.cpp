// SPDX-License-Identifier: Apache-2.0
// Utf8Validator and is_valid_utf8 (proto/utf8.h): RFC 3629 UTF-8 as RFC 6455 §8.1 requires it for
// text messages, checked incrementally and failing at the first byte that makes the input invalid.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/utf8.h"
#include "test_support.h"

using namespace wsrelay::proto;
using namespace wsrelay::test;

namespace {

struct Bad {
    std::string_view bytes;
    size_t first_bad;  // index of the byte at which the input can no longer be valid UTF-8
};

bool feed(Utf8Validator& v, std::string_view s) { return v.feed(as_bytes(s)); }

// Index of the first feed() that returns false when `s` is fed one byte per call.
std::optional<size_t> first_false_bytewise(std::string_view s) {
    Utf8Validator v;
    for (size_t i = 0; i < s.size(); ++i)
        if (!feed(v, s.substr(i, 1))) return i;
    return std::nullopt;
}

// Empty when the validator agrees with reference_utf8() on `s`: fed whole, through is_valid_utf8(),
// and byte by byte (where exactly the byte at first_bad must be the one refused).
std::string disagreement(std::span<const std::byte> s) {
    const Utf8Reference ref = reference_utf8(s);
    Utf8Validator whole;
    const bool ok = whole.feed(s);
    if (ok != !ref.first_bad) return std::string("feed() returned ") + (ok ? "true" : "false");
    if (whole.rejected() != ref.first_bad.has_value()) return "rejected() disagrees";
    if (whole.complete() != ref.valid()) return std::string("complete() returned ") + (whole.complete() ? "true" : "false");
    if (is_valid_utf8(s) != ref.valid()) return "is_valid_utf8() disagrees";
    Utf8Validator bytewise;
    for (size_t i = 0; i < s.size(); ++i) {
        const bool r = bytewise.feed(s.subspan(i, 1));
        const bool expected = !ref.first_bad || i < *ref.first_bad;
        if (r != expected) return "byte-wise feed() of byte " + std::to_string(i) + " returned " + (r ? "true" : "false");
        if (!r) break;
    }
    return {};
}

// Collects the first few disagreements of a large loop, so one failure does not print millions.
struct Disagreements {
    size_t count = 0;
    std::vector<std::string> first;
    void check(std::span<const std::byte> s) {
        std::string d = disagreement(s);
        if (d.empty()) return;
        if (++count <= 8) first.push_back(printable(s) + ": " + d);
    }
};

}  // namespace

TEST_CASE("utf8: well-formed sequences of 1 to 4 bytes are accepted", "[utf8]") {
    // RFC 3629 §3: 1 byte 0xxxxxxx, 2 bytes 110xxxxx 10xxxxxx, 3 and 4 bytes likewise.
    const std::vector<std::string_view> valid = {
        "",
        "hello",
        "h\xC3\xA9llo",                               // é: 2 bytes
        "\xE2\x82\xAC",                               // €: 3 bytes
        "\xF0\x9D\x84\x9E",                           // U+1D11E: 4 bytes
        "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",  // κόσμε
        "0123456789abcdef0123456789abcdef\xE2\x82\xAC",   // long ASCII run (fast path), then 3 bytes
        "\xE2\x82\xAC" "0123456789abcdef0123456789abcdef", // 3 bytes, then an ASCII run
        "\xEF\xBF\xBE\xEF\xBF\xBF",                   // noncharacters U+FFFE, U+FFFF are well-formed
    };
    for (const std::string_view s : valid) {
        INFO(printable(s));
        Utf8Validator v;
        CHECK(feed(v, s));
        CHECK(v.complete());
        CHECK_FALSE(v.rejected());
        CHECK(is_valid_utf8(as_bytes(s)));
    }
}

TEST_CASE("utf8: boundaries of each sequence length", "[utf8]") {
    struct Case {
        uint32_t code_point;
        std::string_view bytes;
    };
    // RFC 3629 §4 (syntax) and §3 (the table of ranges per length).
    const std::vector<Case> cases = {
        {0x0000, std::string_view("\x00", 1)},
        {0x007F, "\x7F"},
        {0x0080, "\xC2\x80"},
        {0x07FF, "\xDF\xBF"},
        {0x0800, "\xE0\xA0\x80"},
        {0xD7FF, "\xED\x9F\xBF"},  // last before the surrogates
        {0xE000, "\xEE\x80\x80"},  // first after them
        {0xFFFD, "\xEF\xBF\xBD"},
        {0xFFFF, "\xEF\xBF\xBF"},
        {0x10000, "\xF0\x90\x80\x80"},
        {0x10FFFF, "\xF4\x8F\xBF\xBF"},
    };
    for (const Case& c : cases) {
        INFO("U+" << std::hex << c.code_point);
        REQUIRE(utf8_encode(c.code_point) == c.bytes);  // the table itself is right
        Utf8Validator v;
        CHECK(feed(v, c.bytes));
        CHECK(v.complete());
        CHECK(is_valid_utf8(as_bytes(c.bytes)));
    }
}

TEST_CASE("utf8: ill-formed input is rejected at its first bad byte", "[utf8]") {
    // Each table lists inputs and the index of the byte at which they stop being a prefix of valid
    // UTF-8 (Unicode Table 3-7 restricts the byte after E0, ED, F0 and F4, so that is often byte 1).
    auto check_table = [](const std::vector<Bad>& table) {
        for (const Bad& b : table) {
            INFO(printable(b.bytes));
            Utf8Validator v;
            CHECK_FALSE(feed(v, b.bytes));
            CHECK(v.rejected());
            CHECK_FALSE(v.complete());
            CHECK_FALSE(is_valid_utf8(as_bytes(b.bytes)));
            CHECK(first_false_bytewise(b.bytes) == b.first_bad);
            CHECK(reference_utf8(as_bytes(b.bytes)).first_bad == b.first_bad);  // the reference agrees
        }
    };
    SECTION("RFC 3629 §3: overlong forms (not the shortest encoding)") {
        check_table({
            {"\xC0\x80", 0},  // NUL in 2 bytes: C0 and C1 can only start overlong forms
            {"\xC0\xAF", 0},
            {"\xC1\xBF", 0},
            {"\xE0\x80\x80", 1},  // NUL in 3 bytes
            {"\xE0\x80\xAF", 1},
            {"\xE0\x9F\xBF", 1},  // U+07FF in 3 bytes
            {"\xF0\x80\x80\x80", 1},  // NUL in 4 bytes
            {"\xF0\x80\x80\xAF", 1},
            {"\xF0\x8F\xBF\xBF", 1},  // U+FFFF in 4 bytes
            {"\xF8\x88\x80\x80\x80", 0},  // 5- and 6-byte forms do not exist
            {"\xFC\x84\x80\x80\x80\x80", 0},
        });
    }
    SECTION("RFC 3629 §3: surrogates U+D800..U+DFFF may not be encoded") {
        check_table({
            {"\xED\xA0\x80", 1},  // U+D800
            {"\xED\xAD\xBF", 1},  // U+DB7F
            {"\xED\xAE\x80", 1},
            {"\xED\xAF\xBF", 1},  // U+DBFF
            {"\xED\xB0\x80", 1},  // U+DC00
            {"\xED\xBE\x80", 1},
            {"\xED\xBF\xBF", 1},  // U+DFFF
            {"\xED\xA0\x80\xED\xB0\x80", 1},  // a "paired" surrogate is still two surrogates
            {"abc\xED\xBF\xBF", 4},
        });
        // Every one of them, generated.
        size_t accepted = 0;
        for (uint32_t cp = 0xD800; cp <= 0xDFFF; ++cp) {
            const std::string s = utf8_encode(cp);
            if (is_valid_utf8(as_bytes(s)) || first_false_bytewise(s) != 1u) ++accepted;
        }
        CHECK(accepted == 0);
    }
    SECTION("RFC 3629 §3: nothing above U+10FFFF") {
        check_table({
            {"\xF4\x90\x80\x80", 1},  // U+110000
            {"\xF4\xBF\xBF\xBF", 1},
            {"\xF5\x80\x80\x80", 0},  // F5..F7 would start U+140000 and up
            {"\xF7\xBF\xBF\xBF", 0},
        });
        for (unsigned lead = 0xF5; lead <= 0xFF; ++lead) {
            const std::string s(1, static_cast<char>(lead));
            INFO("lead byte " << lead);
            CHECK(first_false_bytewise(s) == 0u);
            CHECK(first_false_bytewise("ok" + s + "\x80\x80\x80") == 2u);
        }
    }
    SECTION("RFC 3629 §3: a continuation byte cannot start a code point") {
        check_table({
            {"\x80", 0},
            {"\xBF", 0},
            {"a\x80", 1},
            {"\xC2\x80\x80", 2},              // one continuation too many
            {"\xE2\x82\xAC\xAC", 3},
            {"\xF0\x9D\x84\x9E\x9E", 4},
            {"0123456789abcdef0123\x80", 20},  // after an ASCII run long enough for the fast path
        });
        for (unsigned c = 0x80; c <= 0xBF; ++c) {
            INFO("byte " << c);
            CHECK(first_false_bytewise(std::string(1, static_cast<char>(c))) == 0u);
        }
    }
    SECTION("RFC 3629 §3: a lead byte must be followed by its continuation bytes") {
        check_table({
            {"\xC2" "A", 1},
            {"\xC2\xC2\x80", 1},
            {"\xE2\x82" "A", 2},
            {"\xE2 ", 1},
            {"\xF0\x9D\x84" "A", 3},
            {"\xF0\x9D\x84\xF0\x9D\x84\x9E", 3},
        });
    }
}

TEST_CASE("utf8: input that ends inside a code point is incomplete, not rejected", "[utf8]") {
    // A text message may not end here (RFC 6455 §8.1), but the next fragment may finish it.
    const std::vector<std::string_view> truncated = {
        "\xC2", "\xDF", "\xE0\xA0", "\xE2\x82", "\xED\x9F", "\xF0\x90\x80", "\xF4\x8F\xBF", "\xF1", "abc\xE2\x82",
    };
    for (const std::string_view s : truncated) {
        INFO(printable(s));
        Utf8Validator v;
        CHECK(feed(v, s));
        CHECK_FALSE(v.complete());
        CHECK_FALSE(v.rejected());
        CHECK_FALSE(is_valid_utf8(as_bytes(s)));
    }
}

TEST_CASE("utf8: fail fast: the valid prefix is accepted and the bad byte refused on its own", "[utf8]") {
    // RFC 6455 §8.1 / Autobahn 6.4: a text message is refused as soon as it cannot be valid, so a
    // feed() of the prefix succeeds and the feed() that brings the bad byte fails.
    const std::vector<Bad> table = {
        {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x90\x80\x80" "edited", 12},
        {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80" "edited", 12},
        {"hello\xC0\x80", 5},
        {"hello\xE0\x80\x80", 6},
        {"0123456789abcdef0123456789abcdef\xF5", 32},
        {"0123456789abcdef\xE2\x82\xAC" "0123456789abcdef\x80", 35},
    };
    for (const Bad& b : table) {
        INFO(printable(b.bytes));
        Utf8Validator v;
        CHECK(feed(v, b.bytes.substr(0, b.first_bad)));
        CHECK_FALSE(feed(v, b.bytes.substr(b.first_bad, 1)));
        CHECK(v.rejected());
    }
}

TEST_CASE("utf8: a code point split across two feeds, at every position", "[utf8]") {
    // The validator's state spans feed() calls, as text fragments span frames (RFC 6455 §5.4).
    const std::vector<std::string_view> valid = {
        "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9D\x84\x9E", "\xF4\x8F\xBF\xBF", "\xED\x9F\xBF",
        "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!",
        "0123456789abcdef0123456789\xF0\x9D\x84\x9E" "0123456789abcdef\xE2\x82\xAC",
    };
    for (const std::string_view s : valid) {
        for (size_t cut = 0; cut <= s.size(); ++cut) {
            INFO(printable(s) << " cut at " << cut);
            Utf8Validator v;
            CHECK(feed(v, s.substr(0, cut)));
            CHECK(v.complete() == reference_utf8(as_bytes(s.substr(0, cut))).valid());
            CHECK(feed(v, s.substr(cut)));
            CHECK(v.complete());
        }
    }
    const std::vector<Bad> invalid = {
        {"\xE0\x9F\xBF", 1}, {"\xED\xA0\x80", 1}, {"\xF4\x90\x80\x80", 1}, {"ab\xE2\x82" "c", 4}, {"\xF0\x9D\x84\x9E\x80", 4},
    };
    for (const Bad& b : invalid) {
        for (size_t cut = 0; cut <= b.bytes.size(); ++cut) {
            INFO(printable(b.bytes) << " cut at " << cut);
            Utf8Validator v;
            const bool first = feed(v, b.bytes.substr(0, cut));
            const bool second = feed(v, b.bytes.substr(cut));
            CHECK(first == (cut <= b.first_bad));  // the call that brings the bad byte is the one that fails
            CHECK_FALSE(second);
        }
    }
}

TEST_CASE("utf8: rejection is sticky until reset()", "[utf8]") {
    Utf8Validator v;
    CHECK_FALSE(feed(v, "\xFF"));
    CHECK_FALSE(feed(v, "abc"));  // valid bytes do not revive it
    CHECK_FALSE(v.feed({}));     // nor does an empty feed
    CHECK(v.rejected());
    CHECK_FALSE(v.complete());
    v.reset();
    CHECK_FALSE(v.rejected());
    CHECK(v.complete());
    CHECK(feed(v, "abc"));
    CHECK(v.complete());
}

TEST_CASE("utf8: reset() drops an unfinished code point", "[utf8]") {
    Utf8Validator v;
    CHECK(feed(v, "\xE2\x82"));
    CHECK_FALSE(v.complete());
    v.reset();
    CHECK(v.complete());
    CHECK_FALSE(feed(v, "\xAC"));  // the continuation now has nothing to continue
}

TEST_CASE("utf8: empty input is valid and changes nothing", "[utf8]") {
    Utf8Validator v;
    CHECK(v.feed({}));
    CHECK(v.complete());
    CHECK(is_valid_utf8({}));
    CHECK(feed(v, "\xF0\x9D"));
    CHECK(v.feed({}));
    CHECK_FALSE(v.complete());
    CHECK(feed(v, "\x84\x9E"));
    CHECK(v.complete());
}

TEST_CASE("utf8: every scalar value's encoding is accepted and every surrogate's refused", "[utf8]") {
    size_t wrong = 0;
    std::vector<uint32_t> first_wrong;
    for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        const std::string s = utf8_encode(cp);
        const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        const bool ok = is_valid_utf8(as_bytes(s)) && reference_utf8(as_bytes(s)).valid();
        const bool bad = !is_valid_utf8(as_bytes(s)) && reference_utf8(as_bytes(s)).first_bad.has_value();
        if (surrogate ? !bad : !ok) {
            if (++wrong <= 8) first_wrong.push_back(cp);
        }
    }
    CHECK(wrong == 0);
    CHECK(first_wrong == std::vector<uint32_t>{});
}

TEST_CASE("utf8: agrees with the reference decoder on every 1-, 2- and 3-byte string", "[utf8][exhaustive]") {
    Disagreements d;
    std::array<std::byte, 3> buf{};
    for (unsigned a = 0; a < 256; ++a) {
        buf[0] = std::byte{static_cast<uint8_t>(a)};
        d.check(std::span(buf).first(1));
        for (unsigned b = 0; b < 256; ++b) {
            buf[1] = std::byte{static_cast<uint8_t>(b)};
            d.check(std::span(buf).first(2));
            for (unsigned c = 0; c < 256; ++c) {
                buf[2] = std::byte{static_cast<uint8_t>(c)};
                d.check(std::span(buf));
            }
        }
    }
    INFO(d.count << " disagreements");
    CHECK(d.first == std::vector<std::string>{});
}

TEST_CASE("utf8: agrees with the reference decoder on 4- and 5-byte strings of boundary bytes", "[utf8][exhaustive]") {
    // Every byte at the edge of a class of Table 3-7, in every combination up to 5 bytes long.
    constexpr uint8_t kEdges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                  0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF8, 0xFF};
    constexpr size_t kN = std::size(kEdges);
    Disagreements d;
    std::array<std::byte, 5> buf{};
    for (size_t len = 4; len <= 5; ++len) {
        size_t combos = 1;
        for (size_t i = 0; i < len; ++i) combos *= kN;
        for (size_t n = 0; n < combos; ++n) {
            size_t rest = n;
            for (size_t i = 0; i < len; ++i, rest /= kN) buf[i] = std::byte{kEdges[rest % kN]};
            d.check(std::span(buf).first(len));
        }
    }
    INFO(d.count << " disagreements");
    CHECK(d.first == std::vector<std::string>{});
}

TEST_CASE("utf8: agrees with the reference decoder on random text, whole and in random pieces", "[utf8]") {
    // Mostly valid text (ASCII runs long enough for the 16-byte fast path at every alignment, and
    // code points of every length), with the occasional stray, truncated, overlong or surrogate
    // sequence, so failures land at every kind of position.
    Rng rng(0x5EED0001);
    Disagreements d;
    size_t split_wrong = 0;
    std::vector<std::string> first_split_wrong;
    for (int iter = 0; iter < 20000; ++iter) {
        std::string s;
        const size_t parts = rng.between(1, 12);
        for (size_t p = 0; p < parts; ++p) {
            const size_t pick = rng.below(100);
            if (pick < 40) {
                s += std::string(rng.between(0, 40), static_cast<char>('a' + rng.below(26)));
            } else if (pick < 85) {
                static constexpr uint32_t kTop[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
                uint32_t cp;
                do cp = static_cast<uint32_t>(rng.between(0, kTop[rng.below(4)]));
                while (cp >= 0xD800 && cp <= 0xDFFF);
                s += utf8_encode(cp);
            } else if (pick < 90) {
                s += static_cast<char>(rng.byte());  // any byte
            } else if (pick < 94) {
                const std::string cp = utf8_encode(static_cast<uint32_t>(rng.between(0x80, 0x10FFFF)));
                s += cp.substr(0, rng.between(1, cp.size() - 1));  // truncated (or a surrogate)
            } else if (pick < 97) {
                s += "\xE0\x80\x80";
            } else {
                s += utf8_encode(static_cast<uint32_t>(rng.between(0xD800, 0xDFFF)));
            }
        }
        d.check(as_bytes(s));

        // The same text in random pieces: the piece holding the first bad byte is the first refused.
        const Utf8Reference ref = reference_utf8(as_bytes(s));
        Utf8Validator v;
        bool refused = false, wrong = false;
        for (size_t at = 0; at < s.size() && !refused;) {
            const size_t n = std::min(rng.between(0, 20), s.size() - at);
            const bool ok = feed(v, std::string_view(s).substr(at, n));
            const bool expected = !ref.first_bad || *ref.first_bad >= at + n;
            wrong = wrong || ok != expected;
            refused = !ok;
            at += n;
        }
        wrong = wrong || (!refused && v.complete() != ref.valid());
        if (wrong && ++split_wrong <= 8) first_split_wrong.push_back(printable(s, 200));
    }
    INFO(d.count << " whole-input disagreements, " << split_wrong << " in pieces");
    CHECK(d.first == std::vector<std::string>{});
    CHECK(first_split_wrong == std::vector<std::string>{});
}

// --- The vector path (AVX2, used for 64 bytes and more at a time when the CPU has it) -----------

namespace {

// Whole-input verdicts only: the vector path runs on feeds of 64 bytes or more, so the byte-wise
// checks of disagreement() would never reach it. Also fed in two pieces cut at `cut`.
std::string vector_disagreement(std::span<const std::byte> s, size_t cut) {
    const Utf8Reference ref = reference_utf8(s);
    Utf8Validator whole;
    const bool ok = whole.feed(s);
    if (ok != !ref.first_bad) return std::string("feed() returned ") + (ok ? "true" : "false");
    if (ok && whole.complete() != ref.valid()) return "complete() disagrees";
    Utf8Validator two;
    const bool first_ok = two.feed(s.first(cut));
    if (first_ok != (!ref.first_bad || *ref.first_bad >= cut)) return "first piece of " + std::to_string(cut) + " disagrees";
    if (first_ok) {
        const bool second_ok = two.feed(s.subspan(cut));
        if (second_ok != !ref.first_bad) return "second piece after " + std::to_string(cut) + " disagrees";
        if (second_ok && two.complete() != ref.valid()) return "complete() after two pieces disagrees";
    }
    return {};
}

std::string random_text(Rng& rng, size_t size) {
    std::string s;
    while (s.size() < size) {
        static constexpr uint32_t kTop[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
        uint32_t cp;
        do cp = static_cast<uint32_t>(rng.between(0, kTop[rng.below(4)]));
        while (cp >= 0xD800 && cp <= 0xDFFF);
        s += utf8_encode(cp);
    }
    return s;
}

}  // namespace

TEST_CASE("utf8: long input agrees with the reference with any byte changed anywhere", "[utf8]") {
    // Valid mixed text of 64 bytes to 2 KiB, then one byte replaced (a boundary byte of Table 3-7
    // or a random one), at random positions: errors land at every offset in a 32-byte block and
    // across block edges, with every kind of context before them.
    constexpr uint8_t kEdges[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                  0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xF8, 0xFF};
    Rng rng(0x5EED0002);
    Disagreements d;
    size_t valid_seen = 0, invalid_seen = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s = random_text(rng, rng.between(64, 2048));
        for (int change = 0; change < 20; ++change) {
            std::string t = s;
            const size_t at = rng.below(t.size());
            t[at] = static_cast<char>(rng.below(2) ? kEdges[rng.below(std::size(kEdges))] : std::to_integer<uint8_t>(rng.byte()));
            const std::string why = vector_disagreement(as_bytes(t), rng.below(t.size() + 1));
            if (!why.empty() && ++d.count <= 8) d.first.push_back("len " + std::to_string(t.size()) + " at " + std::to_string(at) + ": " + why);
            (reference_utf8(as_bytes(t)).valid() ? valid_seen : invalid_seen)++;
        }
        const std::string why = vector_disagreement(as_bytes(s), rng.below(s.size() + 1));
        if (!why.empty() && ++d.count <= 8) d.first.push_back("unchanged: " + why);
    }
    INFO(d.count << " disagreements");
    CHECK(d.first == std::vector<std::string>{});
    CHECK(valid_seen > 1000);  // both kinds were exercised
    CHECK(invalid_seen > 10000);
}

TEST_CASE("utf8: every 3-byte pattern of boundary bytes at every offset of two vector blocks", "[utf8][exhaustive]") {
    // In ASCII and in CJK surroundings, with the pattern's first byte at each offset of the first
    // two 32-byte blocks and near the end (where an unfinished sequence is handed back).
    constexpr uint8_t kEdges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                  0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF8, 0xFF};
    const std::string cjk = [] {
        std::string s;
        while (s.size() < 160) s += "\xE4\xB8\xAD";  // 中
        return s.substr(0, 159);                       // 53 whole code points
    }();
    Disagreements d;
    for (const std::string& context : {std::string(159, 'a'), cjk}) {
        for (size_t at = 0; at + 3 <= context.size(); ++at) {
            if (context[0] != 'a' && at % 3 != 0) continue;  // in CJK, only at code point boundaries
            if (at > 70 && at < 150) continue;
            std::string t = context;
            for (uint8_t a : kEdges)
                for (uint8_t b : kEdges)
                    for (uint8_t c : kEdges) {
                        t[at] = static_cast<char>(a);
                        t[at + 1] = static_cast<char>(b);
                        t[at + 2] = static_cast<char>(c);
                        const std::string why = vector_disagreement(as_bytes(t), 64 + (a + b + c) % 32);
                        if (!why.empty() && ++d.count <= 8)
                            d.first.push_back("at " + std::to_string(at) + ": " + printable(t.substr(at, 3)) + ": " + why);
                    }
        }
    }
    INFO(d.count << " disagreements");
    CHECK(d.first == std::vector<std::string>{});
}

TEST_CASE("utf8: long text fed in pieces of 64 bytes or more, cut inside code points", "[utf8]") {
    Rng rng(0x5EED0003);
    for (int iter = 0; iter < 500; ++iter) {
        const std::string s = random_text(rng, rng.between(1000, 8000));
        Utf8Validator v;
        size_t at = 0;
        bool ok = true;
        while (at < s.size() && ok) {
            const size_t n = std::min(rng.between(64, 700), s.size() - at);
            ok = feed(v, std::string_view(s).substr(at, n));
            at += n;
        }
        INFO("iteration " << iter << ", stopped at " << at);
        REQUIRE(ok);
        REQUIRE(v.complete());
    }
}
