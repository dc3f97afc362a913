#pragma once
// Helpers for the storage suites: a temporary folder per test, file bytes for "unchanged" checks,
// deterministic token records, and a one-line store opener.

#include "dsv2/storage/conversation_store.h"
#include "dsv2/storage/paths.h"
#include "dsv2/storage/streaming_writer.h"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <thread>

namespace dsv2::storage::test {

// Storage logs warnings that the tests provoke on purpose; keep the output for real failures.
inline const bool kQuietLogs = (spdlog::set_level(spdlog::level::err), true);

class TempDir {
public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base && *base ? base : "/tmp") + "/dsv2-storage-test-XXXXXX";
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        m_path = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        // Undo read-only modes set by tests before removing.
        for (auto it = std::filesystem::recursive_directory_iterator(m_path, ec);
             it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
            std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                         std::filesystem::perm_options::add, ec);
        }
        std::filesystem::remove_all(m_path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return m_path; }
    std::filesystem::path operator/(const std::string& name) const { return m_path / name; }

private:
    std::filesystem::path m_path;
};

inline std::string fileBytes(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return std::move(bytes).str();
}

inline void writeFile(const std::filesystem::path& file, const std::string& bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << bytes;
}

// Opens or fails the test with the store's message.
inline ConversationStore openStore(const std::filesystem::path& file, OpenOptions options = {}) {
    auto store = ConversationStore::open(file, options);
    REQUIRE_MESSAGE(store.hasValue(), (store ? std::string() : store.error().toString()));
    return std::move(store).value();
}

template <typename T>
T require(Expected<T> result) {
    REQUIRE_MESSAGE(result.hasValue(), (result ? std::string() : result.error().toString()));
    return std::move(result).value();
}

inline void require(Expected<void> result) {
    REQUIRE_MESSAGE(result.hasValue(), (result ? std::string() : result.error().toString()));
}

// A deterministic record for token i: DeepSeek-V2-Lite-like routing (layers x topK), weights that are
// exact in f16, a logprob and alternatives whose text includes a partial UTF-8 byte.
inline TokenRecord makeRecord(int i, std::uint16_t layers = 4, std::uint8_t topK = 6, std::uint16_t experts = 64) {
    TokenRecord t;
    t.tokenId = 1000 + i;
    t.logprob = -0.125f * static_cast<float>(i % 9);
    t.topLogprobs = {{1000 + i, *t.logprob, "tok" + std::to_string(i)},
                     {7, -2.5f, std::string("\xe4\xb8", 2)},  // the first two bytes of a CJK character
                     {8, -std::numeric_limits<float>::infinity(), ""}};
    t.moeLayers = layers;
    t.topK = topK;
    for (int layer = 0; layer < layers; ++layer) {
        for (int k = 0; k < topK; ++k) {
            t.expertIds.push_back(static_cast<std::uint16_t>((i * 7 + layer * 3 + k * 11) % experts));
            t.expertWeights.push_back(static_cast<float>((i + layer + k) % 16) / 16.0f);
        }
    }
    return t;
}

inline std::string tokenText(int i) { return (i % 5 == 0 ? "é" : "") + std::string("w") + std::to_string(i) + " "; }

// The routing of `count` prompt tokens from context position `first` (schema v4): records without
// logprobs (prompt tokens are given), their text concatenated, one token ending inside a character.
inline PromptRouting makePromptRouting(std::int64_t first, int count, std::uint16_t layers = 4, std::uint8_t topK = 6) {
    PromptRouting prompt;
    prompt.firstPosition = first;
    prompt.promptTokens = first + count;
    for (int i = 0; i < count; ++i) {
        TokenRecord r = makeRecord(500 + i, layers, topK);
        r.logprob.reset();
        r.topLogprobs.clear();
        const std::string text = i == 1 ? std::string("\xe4\xb8", 2) : tokenText(i);
        r.textOffset = static_cast<std::uint32_t>(prompt.text.size());
        r.textLength = static_cast<std::uint32_t>(text.size());
        prompt.text += text;
        prompt.records.push_back(std::move(r));
    }
    return prompt;
}

}  // namespace dsv2::storage::test
