// SPDX-License-Identifier: Apache-2.0
// Receive-path microbenchmarks: FrameDecoder::next() over masked client frames, i.e. header
// parsing + unmasking + UTF-8 validation, the way a connection drains its inbox:
//
//     for (;;) { s = dec.next(buf); buf = buf.subspan(s.consumed); if (s.kind == NeedMore) break; ... }
//
// Each iteration decodes one inbox of ~256 KiB holding many frames back to back (four different
// inboxes take turns). next() unmasks in place, so before each iteration the inbox is copied in
// from a pristine copy: a 256 KiB memcpy, which also leaves it hot in cache, as recv() would.
// That copy is not measured: the decode loop is timed by hand (UseManualTime), which at 10-400 us
// per iteration costs nothing measurable, unlike PauseTiming().
//
// Counters: bytes_per_second counts payload bytes; wire_bytes_per_second adds the frame headers
// (6 bytes per frame of <= 125 bytes, 8 up to 64 KiB, 14 above); cpu_bytes_per_second is the
// payload rate over the thread's CPU time in the loop, which time spent preempted by other
// processes does not inflate (compare the two on a busy machine).
//
// BM_apply_mask and BM_utf8_feed_* time the two payload passes alone on 64 KiB: what is left of
// BM_decode_*/65536 after them is the decoder's own bookkeeping.
//
// Run pinned, in a Release build, e.g. (one line):
//   taskset -c 1 build-rel/tests/bench/wsrelay_bench_decode --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/frame.h"
#include "proto/mask.h"
#include "proto/utf8.h"

namespace {

using namespace wsrelay::proto;

constexpr size_t kInboxBytes = 256 * 1024;

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

enum class Content { Ascii, Cjk, Binary };

// Chat-like text of exactly `n` bytes. Ascii: English only. Cjk: English with Chinese phrases mixed
// in so that ~30% of the bytes belong to multi-byte (3-byte) code points, spread throughout the
// text as in a bilingual chat, not in one block. Never ends inside a code point.
std::string make_text(size_t n, Content content, uint32_t seed) {
    static constexpr std::string_view kWords[] = {
        "the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog, ", "hello ", "world. ",
        "meeting ", "at ", "noon ", "see ", "you ", "there! ", "ok ", "thanks ", "room ", "42 ",
    };
    static constexpr std::string_view kChinese[] = {
        "你好", "世界", "聊天室", "谢谢", "明天见", "没问题", "中文", "消息",
    };
    std::mt19937 rng(seed);
    std::string s;
    size_t multibyte = 0;
    while (s.size() < n) {
        // Keep the multi-byte share near 30%: add Chinese whenever it has fallen below.
        const bool cjk = content == Content::Cjk && multibyte * 10 < (s.size() + 4) * 3 && rng() % 2 == 0;
        const std::string_view w = cjk ? kChinese[rng() % std::size(kChinese)] : kWords[rng() % std::size(kWords)];
        if (s.size() + w.size() > n) break;
        s += w;
        if (cjk) multibyte += w.size();
    }
    s.resize(n, '.');  // pad with ASCII to the exact size
    return s;
}

std::vector<std::byte> make_payload(size_t n, Content content, uint32_t seed) {
    std::vector<std::byte> p(n);
    if (content == Content::Binary) {
        std::mt19937 rng(seed);
        for (auto& b : p) b = std::byte(rng());
    } else {
        const std::string t = make_text(n, content, seed);
        std::memcpy(p.data(), t.data(), n);
    }
    return p;
}

// An inbox of masked frames, each with its own random key as browsers send them, filled up to
// kInboxBytes (at least one frame).
struct Inbox {
    std::vector<std::byte> pristine;
    size_t frames = 0;
    size_t payload_bytes = 0;
};

// Distinct payloads per inbox and inboxes per benchmark. Text validation branches on every byte,
// and a predictor that sees the same few kilobytes over and over learns them (decoding one 64 KiB
// text repeatedly runs ~1.5x faster than decoding varied text): so every 64 KiB frame an iteration
// sees is a different text, and small messages cycle through 64 texts.
constexpr uint32_t kPayloadsPerInbox = 64;
constexpr uint32_t kInboxes = 4;

Inbox make_inbox(size_t message_bytes, Content content, uint32_t variant) {
    Inbox inbox;
    std::mt19937 rng(6455 + variant);
    const Opcode op = content == Content::Binary ? Opcode::Binary : Opcode::Text;
    std::vector<std::vector<std::byte>> payloads;
    while (inbox.frames == 0 || inbox.pristine.size() + frame_header_size(message_bytes, true) + message_bytes <= kInboxBytes) {
        const size_t i = inbox.frames % kPayloadsPerInbox;
        if (i == payloads.size()) payloads.push_back(make_payload(message_bytes, content, variant * kPayloadsPerInbox + static_cast<uint32_t>(i) + 1));
        FrameHeader h;
        h.opcode = op;
        h.masked = true;
        h.mask_key = rng();
        const auto frame = encode_frame(h, payloads[i]);
        inbox.pristine.insert(inbox.pristine.end(), frame.begin(), frame.end());
        inbox.payload_bytes += message_bytes;
        ++inbox.frames;
    }
    return inbox;
}

void BM_decode(benchmark::State& state, Content content) {
    const auto message_bytes = static_cast<size_t>(state.range(0));
    std::vector<Inbox> inboxes;
    for (uint32_t v = 0; v < kInboxes; ++v) inboxes.push_back(make_inbox(message_bytes, content, v));
    std::vector<std::byte> buf(inboxes.front().pristine.size());  // every inbox has the same layout
    DecoderOptions options;
    options.max_message_bytes = 16u << 20;
    FrameDecoder dec(options);

    size_t round = 0;
    double cpu_seconds = 0;
    for (auto _ : state) {
        const Inbox& inbox = inboxes[round++ % kInboxes];
        std::memcpy(buf.data(), inbox.pristine.data(), buf.size());  // untimed: see the header comment
        const double cpu_start = thread_cpu_seconds();
        const auto start = std::chrono::steady_clock::now();
        std::span<std::byte> in(buf);
        size_t payload = 0, messages = 0;
        for (;;) {
            const DecodeStep s = dec.next(in);
            in = in.subspan(s.consumed);
            if (s.kind != StepKind::Data) break;  // NeedMore at the end (Error would be a bug here)
            payload += s.payload.size();
            messages += s.message_ends;
            benchmark::DoNotOptimize(s.payload.data());
        }
        const auto stop = std::chrono::steady_clock::now();
        cpu_seconds += thread_cpu_seconds() - cpu_start;
        state.SetIterationTime(std::chrono::duration<double>(stop - start).count());
        if (payload != inbox.payload_bytes || messages != inbox.frames || !in.empty()) {
            state.SkipWithError("decoder did not return every message of the inbox");
            break;
        }
    }
    const Inbox& inbox = inboxes.front();
    const auto iterations = static_cast<int64_t>(state.iterations());
    state.SetBytesProcessed(iterations * static_cast<int64_t>(inbox.payload_bytes));
    state.counters["wire_bytes_per_second"] =
        benchmark::Counter(static_cast<double>(iterations) * static_cast<double>(inbox.pristine.size()),
                           benchmark::Counter::kIsRate, benchmark::Counter::OneK::kIs1024);
    state.counters["msgs_per_second"] =
        benchmark::Counter(static_cast<double>(iterations) * static_cast<double>(inbox.frames), benchmark::Counter::kIsRate);
    // The same payload rate over the thread's CPU time in the decode loop (plus a clock read): on
    // a shared machine, time spent preempted inflates the wall-clock figure but not this one.
    // Units as bytes_per_second's (binary prefixes: "G/s" is GiB/s).
    if (cpu_seconds > 0)
        state.counters["cpu_bytes_per_second"] =
            benchmark::Counter(static_cast<double>(iterations) * static_cast<double>(inbox.payload_bytes) / cpu_seconds,
                               benchmark::Counter::kDefaults, benchmark::Counter::OneK::kIs1024);
}

void BM_decode_text(benchmark::State& state) { BM_decode(state, Content::Ascii); }
void BM_decode_text_cjk30(benchmark::State& state) { BM_decode(state, Content::Cjk); }
void BM_decode_binary(benchmark::State& state) { BM_decode(state, Content::Binary); }

// The unmasking pass alone, in place on 64 KiB. Masking twice restores the data, so no copy is
// needed; the odd phase keeps it honest about unaligned keys.
void BM_apply_mask(benchmark::State& state) {
    auto data = make_payload(static_cast<size_t>(state.range(0)), Content::Ascii, 1);
    for (auto _ : state) {
        apply_mask(data, 0x5A3C9E71u, 1);
        benchmark::DoNotOptimize(data.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

// The UTF-8 pass alone on 64 KiB, as one fragment; a different text each time (see kInboxes).
void BM_utf8_feed(benchmark::State& state, Content content) {
    std::vector<std::vector<std::byte>> texts;
    for (uint32_t i = 0; i < 8; ++i) texts.push_back(make_payload(static_cast<size_t>(state.range(0)), content, i + 1));
    size_t round = 0;
    for (auto _ : state) {
        Utf8Validator v;
        const bool ok = v.feed(texts[round++ % texts.size()]) && v.complete();
        benchmark::DoNotOptimize(ok);
        if (!ok) {
            state.SkipWithError("benchmark text is not valid UTF-8");
            break;
        }
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_utf8_feed_text(benchmark::State& state) { BM_utf8_feed(state, Content::Ascii); }
void BM_utf8_feed_text_cjk30(benchmark::State& state) { BM_utf8_feed(state, Content::Cjk); }

}  // namespace

BENCHMARK(BM_decode_text)->Arg(16)->Arg(1024)->Arg(65536)->UseManualTime();
BENCHMARK(BM_decode_text_cjk30)->Arg(16)->Arg(1024)->Arg(65536)->UseManualTime();
BENCHMARK(BM_decode_binary)->Arg(65536)->UseManualTime();
BENCHMARK(BM_apply_mask)->Arg(65536);
BENCHMARK(BM_utf8_feed_text)->Arg(65536);
BENCHMARK(BM_utf8_feed_text_cjk30)->Arg(65536);

BENCHMARK_MAIN();
