// SPDX-License-Identifier: Apache-2.0
// Corpus replay driver: a plain main() for the fuzz targets, so a normal GCC build (no libFuzzer)
// still runs every checked-in input through the same LLVMFuzzerTestOneInput and its invariants.
// Arguments are files or directories (searched recursively). A violated invariant traps, which
// fails the test; an empty corpus fails too, so a mistyped path cannot pass silently.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::filesystem::path> files;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path arg(argv[i]);
        std::error_code ec;
        if (std::filesystem::is_directory(arg, ec)) {
            for (const auto& e : std::filesystem::recursive_directory_iterator(arg))
                if (e.is_regular_file()) files.push_back(e.path());
        } else if (std::filesystem::is_regular_file(arg, ec)) {
            files.push_back(arg);
        } else {
            std::fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
            return 2;
        }
    }
    if (files.empty()) {
        std::fprintf(stderr, "replay: no inputs (usage: %s FILE_OR_DIR...)\n", argv[0]);
        return 2;
    }
    std::sort(files.begin(), files.end());  // a stable order makes a failing input easy to find
    for (const auto& f : files) {
        const std::vector<uint8_t> data = read_file(f);
        // Print before running: if the input traps, the last line names it.
        std::fprintf(stderr, "replay: %s (%zu bytes)\n", f.c_str(), data.size());
        // Run from a heap copy of exactly the input's size, as libFuzzer does, so ASan builds
        // catch a read one past the end.
        auto copy = std::make_unique<uint8_t[]>(data.size());
        std::copy(data.begin(), data.end(), copy.get());
        LLVMFuzzerTestOneInput(copy.get(), data.size());
    }
    std::printf("replayed %zu inputs\n", files.size());
    return 0;
}
