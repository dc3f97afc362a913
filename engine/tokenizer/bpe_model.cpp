#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include "tokenizer/utf8.h"

namespace dsv2 {
namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
// are shifted to U+0100 and up, in byte order.
std::array<char32_t, 256> makeStandIns() {
    std::array<char32_t, 256> table{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        table[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    return table;
}

const std::array<char32_t, 256>& standIns() {
    static const std::array<char32_t, 256> table = makeStandIns();
    return table;
}

// Inverse of the stand-in table: code point → byte, or -1. Stand-ins are all below U+0144.
int standInToByte(char32_t cp) {
    static const std::array<int16_t, 0x144> inverse = [] {
        std::array<int16_t, 0x144> m{};
        m.fill(-1);
        for (int b = 0; b < 256; ++b) m[standIns()[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
        return m;
    }();
    return cp < inverse.size() ? inverse[cp] : -1;
}

// "Ġthe" → " the". Characters that are no stand-in keep their UTF-8 bytes (such entries can
// never be produced from byte-level input, but they still decode to something readable).
std::string spellingToBytes(std::string_view spelling) {
    std::string out;
    out.reserve(spelling.size());
    size_t i = 0;
    while (i < spelling.size() && static_cast<unsigned char>(spelling[i]) < 0x80) {
        // Printable ASCII stands for itself: the common case needs no decoding.
        const auto c = static_cast<unsigned char>(spelling[i]);
        if (c <= 0x20 || c == 0x7F) break;
        out.push_back(static_cast<char>(c));
        ++i;
    }
    while (i < spelling.size()) {
        char32_t cp = 0;
        const size_t n = utf8::decode(spelling, i, cp);
        const int b = standInToByte(cp);
        if (b >= 0) {
            out.push_back(static_cast<char>(b));
        } else {
            out.append(spelling.substr(i, n));
        }
        i += n;
    }
    return out;
}

constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 200000;

}  // namespace

std::string BpeModel::byteToStandIn(unsigned char b) {
    std::string out;
    utf8::append(out, standIns()[b]);
    return out;
}

Result<std::unique_ptr<BpeModel>> BpeModel::fromJson(const nlohmann::json& model) {
    if (!model.is_object()) return Status(StatusCode::InvalidData, "\"model\" is not an object");
    const std::string type = model.value("type", std::string("BPE"));
    if (type != "BPE") return Status(StatusCode::Unsupported, "tokenizer model type '" + type + "' is not supported (only BPE)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const auto it = model.find(key);
        if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty())) {
            return Status(StatusCode::Unsupported, std::string("BPE option '") + key + "' is not supported");
        }
    }
    if (model.contains("byte_fallback") && model["byte_fallback"].is_boolean() && model["byte_fallback"].get<bool>()) {
        return Status(StatusCode::Unsupported, "BPE byte_fallback is not supported (byte-level BPE needs none)");
    }
    if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() > 0.0) {
        return Status(StatusCode::Unsupported, "BPE dropout is a training option and is not supported");
    }

    auto bpe = std::make_unique<BpeModel>();
    const auto vocab = model.find("vocab");
    if (vocab == model.end() || !vocab->is_object()) {
        return Status(StatusCode::InvalidData, "BPE model without a \"vocab\" object");
    }
    int64_t maxId = -1;
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
        if (!it.value().is_number_integer()) {
            return Status(StatusCode::InvalidData, "vocab entry '" + it.key() + "' has no integer id");
        }
        const int64_t id = it.value().get<int64_t>();
        if (id < 0 || id > 10'000'000) {
            return Status(StatusCode::InvalidData, "vocab entry '" + it.key() + "' has id " + std::to_string(id) +
                                                       " outside 0..10000000");
        }
        maxId = std::max(maxId, id);
    }
    bpe->m_idToBytes.assign(static_cast<size_t>(maxId + 1), std::string());
    bpe->m_spellings.assign(static_cast<size_t>(maxId + 1), std::string());
    bpe->m_present.assign(static_cast<size_t>(maxId + 1), 0);
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
        const auto id = static_cast<size_t>(it.value().get<int64_t>());
        if (bpe->m_present[id]) {
            return Status(StatusCode::InvalidData, "vocab entries '" + bpe->m_spellings[id] + "' and '" + it.key() +
                                                       "' share id " + std::to_string(id));
        }
        bpe->m_present[id] = 1;
        bpe->m_idToBytes[id] = spellingToBytes(it.key());
        bpe->m_spellings[id] = it.key();
    }
    bpe->m_bytesToId.reserve(vocab->size());
    bpe->m_spellingToId.reserve(vocab->size());
    for (size_t id = 0; id < bpe->m_present.size(); ++id) {
        if (!bpe->m_present[id]) continue;
        bpe->m_bytesToId.insert(static_cast<int32_t>(id));
        bpe->m_spellingToId.insert(static_cast<int32_t>(id));
    }
    for (int b = 0; b < 256; ++b) {
        const char c = static_cast<char>(b);
        bpe->m_byteToId[b] = bpe->m_bytesToId.find(std::string_view(&c, 1));
    }

    const auto merges = model.find("merges");
    if (merges == model.end() || !merges->is_array()) {
        return Status(StatusCode::InvalidData, "BPE model without a \"merges\" array");
    }
    size_t capacity = 16;
    while (capacity < merges->size() * 2) capacity <<= 1;
    bpe->m_merges.assign(capacity, MergeEntry{});
    bpe->m_mergeMask = capacity - 1;
    int32_t rank = 0;
    std::string joined;  // reused: no allocation per merge
    for (const auto& merge : *merges) {
        std::string_view left;
        std::string_view right;
        if (merge.is_string()) {
            // "a b": split at the single space (byte-level spellings never contain one).
            const std::string& line = merge.get_ref<const std::string&>();
            const size_t space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
                return Status(StatusCode::InvalidData, "merge #" + std::to_string(rank) + " \"" + line +
                                                           "\" is not two tokens separated by one space");
            }
            left = std::string_view(line).substr(0, space);
            right = std::string_view(line).substr(space + 1);
        } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
            left = merge[0].get_ref<const std::string&>();
            right = merge[1].get_ref<const std::string&>();
        } else {
            return Status(StatusCode::InvalidData, "merge #" + std::to_string(rank) + " is neither \"a b\" nor [a, b]");
        }
        joined.assign(left);
        joined.append(right);
        const int32_t l = bpe->m_spellingToId.find(left);
        const int32_t r = bpe->m_spellingToId.find(right);
        const int32_t m = bpe->m_spellingToId.find(joined);
        if (l < 0 || r < 0 || m < 0) {
            const std::string missing(l < 0 ? left : r < 0 ? right : std::string_view(joined));
            return Status(StatusCode::InvalidData, "merge #" + std::to_string(rank) + " uses '" + missing +
                                                       "', which is not in the vocabulary");
        }
        int32_t existingRank = 0;
        int32_t existingMerged = 0;
        // A repeated merge keeps its first (best) rank, as HF does.
        if (!bpe->findMerge(l, r, existingRank, existingMerged)) bpe->insertMerge(l, r, rank, m);
        ++rank;
    }

    bpe->m_ignoreMerges = model.value("ignore_merges", false);
    const auto unk = model.find("unk_token");
    if (unk != model.end() && unk->is_string()) {
        const int32_t id = bpe->m_spellingToId.find(unk->get_ref<const std::string&>());
        if (id < 0) {
            return Status(StatusCode::InvalidData, "unk_token '" + unk->get<std::string>() + "' is not in the vocabulary");
        }
        bpe->m_unkId = id;
    }
    return bpe;
}

std::optional<int32_t> BpeModel::findBySpelling(std::string_view spelling) const {
    const int32_t id = m_spellingToId.find(spelling);
    if (id < 0) return std::nullopt;
    return id;
}

std::optional<int32_t> BpeModel::findByBytes(std::string_view bytes) const {
    const int32_t id = m_bytesToId.find(bytes);
    if (id < 0) return std::nullopt;
    return id;
}

static inline uint64_t mergeKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

static inline uint64_t mergeHash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return key;
}

bool BpeModel::findMerge(int32_t left, int32_t right, int32_t& rank, int32_t& merged) const {
    const uint64_t key = mergeKey(left, right);
    for (uint64_t slot = mergeHash(key) & m_mergeMask;; slot = (slot + 1) & m_mergeMask) {
        const MergeEntry& e = m_merges[slot];
        if (e.key == key) {
            rank = e.rank;
            merged = e.merged;
            return true;
        }
        if (e.key == kEmptyKey) return false;
    }
}

void BpeModel::insertMerge(int32_t left, int32_t right, int32_t rank, int32_t merged) {
    const uint64_t key = mergeKey(left, right);
    uint64_t slot = mergeHash(key) & m_mergeMask;
    while (m_merges[slot].key != kEmptyKey) slot = (slot + 1) & m_mergeMask;
    m_merges[slot] = MergeEntry{key, rank, merged};
}

void BpeModel::encodeWord(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (word.size() == 1) {  // single bytes need neither merges nor the cache
        const int32_t id = m_byteToId[static_cast<unsigned char>(word[0])];
        if (id >= 0) {
            out.push_back(id);
        } else if (m_unkId) {
            out.push_back(*m_unkId);
        }
        return;
    }
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(m_cacheMutex);
        const auto it = m_cache.find(std::string(word));
        if (it != m_cache.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t before = out.size();
    bpe(word, out);
    if (cacheable) {
        std::vector<int32_t> ids(out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
        std::lock_guard<std::mutex> lock(m_cacheMutex);
        if (m_cache.size() >= kMaxCacheEntries) m_cache.clear();  // crude bound; refills quickly
        m_cache.emplace(std::string(word), std::move(ids));
    }
}

void BpeModel::bpe(std::string_view word, std::vector<int32_t>& out) const {
    if (m_ignoreMerges) {
        if (const auto whole = findByBytes(word)) {
            out.push_back(*whole);
            return;
        }
    }
    // Symbols in a doubly linked list over an array; merged-away symbols get id -1.
    struct Symbol {
        int32_t id;
        int32_t prev;
        int32_t next;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    for (const char c : word) {
        int32_t id = m_byteToId[static_cast<unsigned char>(c)];
        if (id < 0) {
            // HF drops characters the vocabulary lacks when there is no unk token.
            if (!m_unkId) continue;
            id = *m_unkId;
        }
        const auto n = static_cast<int32_t>(symbols.size());
        symbols.push_back({id, n - 1, n + 1});
    }
    if (symbols.empty()) return;
    symbols.back().next = -1;

    // Candidate merges, lowest rank first, then leftmost: HF's order.
    struct Candidate {
        int32_t rank;
        int32_t pos;  // index of the left symbol
        int32_t merged;
        int32_t leftId;  // the pair as queued, to detect a stale candidate
        int32_t rightId;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::vector<Candidate> heap;
    heap.reserve(symbols.size());
    auto push = [&](int32_t pos) {
        const int32_t next = symbols[static_cast<size_t>(pos)].next;
        if (next < 0) return;
        int32_t rank = 0;
        int32_t merged = 0;
        if (findMerge(symbols[static_cast<size_t>(pos)].id, symbols[static_cast<size_t>(next)].id, rank, merged)) {
            heap.push_back({rank, pos, merged, symbols[static_cast<size_t>(pos)].id, symbols[static_cast<size_t>(next)].id});
            std::push_heap(heap.begin(), heap.end(), std::greater<>());
        }
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push(i);
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<>());
        const Candidate c = heap.back();
        heap.pop_back();
        Symbol& left = symbols[static_cast<size_t>(c.pos)];
        if (left.id < 0 || left.next < 0) continue;
        Symbol& right = symbols[static_cast<size_t>(left.next)];
        if (left.id != c.leftId || right.id != c.rightId) continue;  // stale: a side changed since queued
        left.id = c.merged;
        right.id = -1;
        left.next = right.next;
        if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = c.pos;
        if (left.prev >= 0) push(left.prev);
        push(c.pos);
    }
    for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) out.push_back(symbols[static_cast<size_t>(i)].id);
}

}  // namespace dsv2
