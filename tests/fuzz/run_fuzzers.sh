#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets with clang-14 (ASan + UBSan) in BUILD_DIR and runs each for SECONDS
# on a temporary copy of the checked-in seed corpus (the checked-in files are never written).
# Exits non-zero if any fuzzer crashes, leaks, times out or trips a sanitizer; the reproducer is
# kept under BUILD_DIR/fuzz-artifacts/ and its path printed.
#
#   tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS [TARGET...]     (targets: handshake frame utf8 config connection deflate envelope token)
#   replay one input:  BUILD_DIR/tests/fuzz/wsrelay_fuzz_frame path/to/crash-...
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 BUILD_DIR SECONDS [handshake|frame|utf8|config|connection|deflate|envelope|token]..." >&2
    exit 2
fi
build_dir=$(realpath -m "$1")
seconds=$2
shift 2
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(handshake frame utf8 config connection deflate envelope token)

fuzz_src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "$fuzz_src/../.." && pwd)

# --- Configure: a build directory of its own, so no other build's cache or compiler leaks in ---
cache=$build_dir/CMakeCache.txt
if [[ -f $cache ]]; then
    if ! grep -q '^WSRELAY_FUZZ:BOOL=ON$' "$cache" || ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++-14$' "$cache"; then
        echo "run_fuzzers: $build_dir is not a clang-14 WSRELAY_FUZZ build; use another directory" >&2
        exit 2
    fi
else
    echo "run_fuzzers: configuring $build_dir"
    mkdir -p "$build_dir"
    # CXXFLAGS/LDFLAGS from the environment would be mixed into the sanitizer flags: drop them.
    env -u CXXFLAGS -u LDFLAGS -u CXX cmake -S "$source_dir" -B "$build_dir" -G Ninja \
        -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DWSRELAY_FUZZ=ON -DWSRELAY_TESTS=ON -DWSRELAY_BENCH=OFF >"$build_dir/configure.log" 2>&1 || {
        cat "$build_dir/configure.log" >&2
        exit 2
    }
fi
ninja -C "$build_dir" "${targets[@]/#/wsrelay_fuzz_}"

# --- Run each fuzzer on a scratch copy of its corpus ---
work=$(mktemp -d "${TMPDIR:-/tmp}/wsrelay-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=$build_dir/fuzz-artifacts
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

failed=()
for t in "${targets[@]}"; do
    bin=$build_dir/tests/fuzz/wsrelay_fuzz_$t
    mkdir -p "$work/$t" "$artifacts/$t"
    cp -r "$fuzz_src/corpus/$t/." "$work/$t/"
    dict=()
    [[ -f $fuzz_src/$t.dict ]] && dict=(-dict="$fuzz_src/$t.dict")
    log=$artifacts/$t.log
    echo "run_fuzzers: $t for ${seconds}s (log: $log)"
    status=0
    "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$t/" "${dict[@]}" "$work/$t" >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    echo "run_fuzzers: $t: exit $status, ${execs:-?} executions, corpus $(ls "$work/$t" | wc -l) files"
    # A sanitizer report with a zero exit status would be a harness bug; count it as a failure too.
    if [[ $status -ne 0 ]] || grep -qE '^==[0-9]+==ERROR|runtime error:|^SUMMARY: ' "$log"; then
        failed+=("$t")
        tail -n 60 "$log" >&2
        repro=$(sed -n 's/^.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
        echo "run_fuzzers: $t FAILED; reproducer: ${repro:-none written (see $log)}" >&2
        [[ -n $repro ]] && echo "run_fuzzers: replay with: $bin $repro" >&2
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run_fuzzers: failed: ${failed[*]}" >&2
    exit 1
fi
echo "run_fuzzers: all passed"
