#pragma once
// Byte-level BPE: the vocabulary as raw byte strings, merges by rank, and a word cache.
// Works on bytes rather than on GPT-2's printable stand-in characters: byte b and its stand-in
// are the same symbol, so the result is identical and no per-character mapping is needed.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dsv2/status.h"
#include "tokenizer/string_id_map.h"

namespace dsv2 {

class BpeModel {
public:
    // `model` is the "model" object of tokenizer.json (type BPE).
    static Result<std::unique_ptr<BpeModel>> fromJson(const nlohmann::json& model);

    // Appends the ids of one pre-tokenized piece (raw bytes).
    void encodeWord(std::string_view word, std::vector<int32_t>& out) const;

    // Vocabulary (model part only; added tokens live in the Tokenizer).
    int32_t vocabEnd() const { return static_cast<int32_t>(m_idToBytes.size()); }
    bool hasId(int32_t id) const { return id >= 0 && id < vocabEnd() && m_present[static_cast<size_t>(id)]; }
    const std::string& bytes(int32_t id) const { return m_idToBytes[static_cast<size_t>(id)]; }
    const std::string& spelling(int32_t id) const { return m_spellings[static_cast<size_t>(id)]; }
    // The vocab entry as tokenizer.json spells it ("Ġthe"), or as raw bytes (" the").
    std::optional<int32_t> findBySpelling(std::string_view spelling) const;
    std::optional<int32_t> findByBytes(std::string_view bytes) const;

    // GPT-2's printable stand-in for each byte (exposed for tests and the CLI's piece view).
    static std::string byteToStandIn(unsigned char b);

    BpeModel() = default;
    BpeModel(const BpeModel&) = delete;  // the maps point into the string tables
    BpeModel& operator=(const BpeModel&) = delete;

private:
    static constexpr uint64_t kEmptyKey = ~uint64_t{0};
    struct MergeEntry {
        uint64_t key = kEmptyKey;  // (left id << 32) | right id
        int32_t rank = 0;
        int32_t merged = 0;
    };
    // Open addressing: merges are looked up once per adjacent pair and per merge step.
    bool findMerge(int32_t left, int32_t right, int32_t& rank, int32_t& merged) const;
    void insertMerge(int32_t left, int32_t right, int32_t rank, int32_t merged);
    void bpe(std::string_view word, std::vector<int32_t>& out) const;

    std::vector<std::string> m_idToBytes;
    std::vector<std::string> m_spellings;  // by id, as tokenizer.json spells them
    std::vector<char> m_present;
    StringIdMap m_bytesToId{&m_idToBytes};
    StringIdMap m_spellingToId{&m_spellings};
    int32_t m_byteToId[256];
    std::vector<MergeEntry> m_merges;
    uint64_t m_mergeMask = 0;
    bool m_ignoreMerges = false;
    std::optional<int32_t> m_unkId;
    // A cache entry of (word) → ids. Pieces repeat a lot in real text ("the", " of", "\n").
    mutable std::mutex m_cacheMutex;
    mutable std::unordered_map<std::string, std::vector<int32_t>> m_cache;
};

}  // namespace dsv2
