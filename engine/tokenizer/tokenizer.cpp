#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe_model.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace dsv2 {
namespace {

bool isWordChar(char32_t c) {
    // Approximates Rust's char::is_alphanumeric / '_' that HF's single_word check uses; exact for
    // ASCII, and any non-ASCII, non-space character counts as part of a word.
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return !utf8::isWhiteSpace(c);
}

// Start of the character that ends just before `pos`.
size_t previousCharStart(std::string_view text, size_t pos) {
    size_t start = pos - 1;
    while (start > 0 && pos - start < 4 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    return start;
}

char32_t codePointBefore(std::string_view text, size_t pos) {
    char32_t cp = 0;
    utf8::decode(text, previousCharStart(text, pos), cp);
    return cp;
}

bool insideAllowed(std::span<const TextRange> allowed, size_t begin, size_t end) {
    // First range whose end is past `begin`; the match must lie inside that one.
    const auto it = std::lower_bound(allowed.begin(), allowed.end(), begin + 1,
                                     [](const TextRange& r, size_t value) { return r.end < value; });
    return it != allowed.end() && it->begin <= begin && end <= it->end;
}

}  // namespace

struct Tokenizer::Scratch {
    PreTokenizer::Scratch pre;
    std::vector<Segment> segments;
    std::vector<Segment> gaps;
};

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::fromFile(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        return Status(StatusCode::NotFound, path.string() + ": no such file");
    }
    if (std::filesystem::is_directory(path, ec)) {
        return Status(StatusCode::InvalidArgument, path.string() + " is a folder; expected a tokenizer.json file");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status(StatusCode::IoError, path.string() + ": cannot open for reading");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) return Status(StatusCode::IoError, path.string() + ": read error");
    return fromJson(buffer.str(), path.string());
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::fromJson(const std::string& jsonText, const std::string& source) {
    std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
    tokenizer->m_source = source;
    Status status = tokenizer->load(jsonText);
    if (!status) return status.withContext(source);
    return tokenizer;
}

Status Tokenizer::load(const std::string& jsonText) {
    nlohmann::json root;
    try {
        root = nlohmann::json::parse(jsonText);
    } catch (const nlohmann::json::exception& e) {
        return Status(StatusCode::InvalidData, std::string("not valid JSON: ") + e.what());
    }
    if (!root.is_object()) return Status(StatusCode::InvalidData, "the top level is not a JSON object");
    try {
        // No normalizer, or an empty Sequence, is all the DeepSeek family uses.
        const auto normalizer = root.find("normalizer");
        if (normalizer != root.end() && !normalizer->is_null()) {
            const std::string type = normalizer->value("type", std::string("?"));
            const bool emptySequence = type == "Sequence" && normalizer->contains("normalizers") &&
                                       (*normalizer)["normalizers"].is_array() &&
                                       (*normalizer)["normalizers"].empty();
            if (!emptySequence) return Status(StatusCode::Unsupported, "normalizer '" + type + "' is not supported");
        }

        const auto preSpec = root.find("pre_tokenizer");
        DSV2_ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::fromJson(preSpec == root.end() ? nlohmann::json() : *preSpec));
        if (!pre.byteLevel()) {
            return Status(StatusCode::Unsupported, "only byte-level BPE is supported: the pre-tokenizer has no ByteLevel step");
        }
        m_preTokenizer = std::make_unique<PreTokenizer>(std::move(pre));

        const auto model = root.find("model");
        if (model == root.end()) return Status(StatusCode::InvalidData, "no \"model\" object");
        DSV2_ASSIGN_OR_RETURN(m_model, BpeModel::fromJson(*model));
        m_size = m_model->vocabEnd();

        const auto added = root.find("added_tokens");
        if (added != root.end() && !added->is_null()) {
            if (!added->is_array()) return Status(StatusCode::InvalidData, "\"added_tokens\" is not an array");
            for (const auto& entry : *added) {
                if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() ||
                    !entry.contains("content") || !entry["content"].is_string()) {
                    return Status(StatusCode::InvalidData, "an added token lacks an integer \"id\" or a \"content\" string");
                }
                AddedToken token;
                const int64_t id = entry["id"].get<int64_t>();
                if (id < 0 || id > 10'000'000) {
                    return Status(StatusCode::InvalidData, "added token id " + std::to_string(id) + " is out of range");
                }
                token.id = static_cast<int32_t>(id);
                token.content = entry["content"].get<std::string>();
                if (token.content.empty()) return Status(StatusCode::InvalidData, "an added token has empty content");
                if (!utf8::isValid(token.content)) {
                    return Status(StatusCode::InvalidData, "added token " + std::to_string(id) + " is not valid UTF-8");
                }
                token.special = entry.value("special", false);
                token.normalized = entry.value("normalized", !token.special);
                token.lstrip = entry.value("lstrip", false);
                token.rstrip = entry.value("rstrip", false);
                token.singleWord = entry.value("single_word", false);
                m_size = std::max(m_size, token.id + 1);
                m_added.push_back(std::move(token));
            }
        }
    } catch (const nlohmann::json::exception& e) {
        return Status(StatusCode::InvalidData, std::string("unexpected JSON shape: ") + e.what());
    }

    m_addedIndexById.assign(static_cast<size_t>(m_size), -1);
    for (size_t i = 0; i < m_added.size(); ++i) {
        m_addedIndexById[static_cast<size_t>(m_added[i].id)] = static_cast<int32_t>(i);
    }
    for (const AddedToken& token : m_added) {
        (token.normalized ? m_normalizedPass : m_rawPass).push_back(&token);
    }
    // Longest first, so that the first candidate that matches at a position is the longest.
    auto longestFirst = [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); };
    std::stable_sort(m_rawPass.begin(), m_rawPass.end(), longestFirst);
    std::stable_sort(m_normalizedPass.begin(), m_normalizedPass.end(), longestFirst);
    return Status::ok();
}

const Tokenizer::AddedToken* Tokenizer::addedById(int32_t id) const {
    if (id < 0 || id >= m_size) return nullptr;
    const int32_t index = m_addedIndexById[static_cast<size_t>(id)];
    return index < 0 ? nullptr : &m_added[static_cast<size_t>(index)];
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, SpecialTokens special) const {
    return encodeImpl(text, {}, special == SpecialTokens::Allow);
}

std::vector<int32_t> Tokenizer::encodeWithSpecialRanges(std::string_view text,
                                                         std::span<const TextRange> specialAllowed) const {
    return encodeImpl(text, specialAllowed, false);
}

std::vector<int32_t> Tokenizer::encodeImpl(std::string_view text, std::span<const TextRange> specialAllowed,
                                           bool allowAllSpecial) const {
    std::string repaired;
    if (!utf8::isValid(text)) {
        repaired = utf8::lossy(text);
        text = repaired;
        specialAllowed = {};  // byte offsets moved; the safe choice is plain text everywhere
    }
    static thread_local Scratch scratch;
    splitAddedTokens(text, specialAllowed, allowAllSpecial, scratch.segments);
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    for (const Segment& segment : scratch.segments) {
        if (segment.addedId >= 0) {
            ids.push_back(segment.addedId);
            continue;
        }
        m_preTokenizer->split(text.substr(segment.begin, segment.end - segment.begin), scratch.pre);
        for (const std::string_view piece : scratch.pre.pieces) m_model->encodeWord(piece, ids);
    }
    return ids;
}

void Tokenizer::splitAddedTokens(std::string_view text, std::span<const TextRange> specialAllowed,
                                 bool allowAllSpecial, std::vector<Segment>& segments) const {
    segments.clear();
    segments.push_back({0, text.size(), -1});
    if (m_added.empty() || text.empty()) return;
    // Two passes as in HF: tokens matched on the raw text first, then the "normalized" ones in
    // the gaps (the same text here: only tokenizers without a normalizer are accepted).
    std::vector<Segment> next;
    for (const auto* pass : {&m_rawPass, &m_normalizedPass}) {
        if (pass->empty()) continue;
        next.clear();
        for (const Segment& segment : segments) {
            if (segment.addedId >= 0) {
                next.push_back(segment);
                continue;
            }
            matchPass(text.substr(segment.begin, segment.end - segment.begin), segment.begin, *pass, specialAllowed,
                      allowAllSpecial, next);
        }
        segments.swap(next);
    }
}

void Tokenizer::matchPass(std::string_view text, size_t base, const std::vector<const AddedToken*>& candidates,
                          std::span<const TextRange> specialAllowed, bool allowAllSpecial,
                          std::vector<Segment>& segments) const {
    // Leftmost-longest, like HF's Aho-Corasick: at each position the first (longest) candidate
    // that matches and is permitted wins. Context checks (single_word, lstrip) see only this
    // segment, as in HF.
    size_t gapStart = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        const AddedToken* hit = nullptr;
        for (const AddedToken* token : candidates) {
            const std::string& c = token->content;
            if (c[0] != text[pos] || text.compare(pos, c.size(), c) != 0) continue;
            if (token->special && !allowAllSpecial &&
                !insideAllowed(specialAllowed, base + pos, base + pos + c.size())) {
                continue;
            }
            if (token->singleWord) {
                const bool wordBefore = pos > 0 && isWordChar(codePointBefore(text, pos));
                char32_t after = 0;
                const bool wordAfter =
                    pos + c.size() < text.size() && (utf8::decode(text, pos + c.size(), after), isWordChar(after));
                if (wordBefore || wordAfter) continue;
            }
            hit = token;
            break;
        }
        if (!hit) {
            ++pos;
            continue;
        }
        size_t begin = pos;
        size_t end = pos + hit->content.size();
        if (hit->lstrip) {
            while (begin > gapStart && utf8::isWhiteSpace(codePointBefore(text, begin))) {
                begin = previousCharStart(text, begin);
            }
        }
        if (hit->rstrip) {
            while (end < text.size()) {
                char32_t cp = 0;
                const size_t n = utf8::decode(text, end, cp);
                if (!utf8::isWhiteSpace(cp)) break;
                end += n;
            }
        }
        if (begin > gapStart) segments.push_back({base + gapStart, base + begin, -1});
        segments.push_back({base + begin, base + end, hit->id});
        gapStart = end;
        pos = end;
    }
    if (gapStart < text.size()) segments.push_back({base + gapStart, base + text.size(), -1});
}

std::string Tokenizer::tokenBytes(int32_t id) const {
    if (const AddedToken* added = addedById(id)) return added->content;
    if (m_model->hasId(id)) return m_model->bytes(id);
    return {};
}

std::string Tokenizer::tokenSpelling(int32_t id) const {
    if (const AddedToken* added = addedById(id)) return added->content;
    if (!m_model->hasId(id)) return {};
    return m_model->spelling(id);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skipSpecial) const {
    std::string bytes;
    for (const int32_t id : ids) {
        if (const AddedToken* added = addedById(id)) {
            if (!(skipSpecial && added->special)) bytes += added->content;
        } else if (m_model->hasId(id)) {
            bytes += m_model->bytes(id);
        }
    }
    return utf8::lossy(bytes);
}

std::optional<int32_t> Tokenizer::findToken(std::string_view content) const {
    for (const AddedToken& token : m_added) {
        if (token.content == content) return token.id;
    }
    if (auto id = m_model->findBySpelling(content)) return id;
    return m_model->findByBytes(content);
}

bool Tokenizer::isSpecial(int32_t id) const {
    const AddedToken* added = addedById(id);
    return added && added->special;
}

int32_t Tokenizer::size() const { return m_size; }

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool skipSpecial)
    : m_tokenizer(&tokenizer), m_skipSpecial(skipSpecial) {}

std::string StreamingDecoder::push(int32_t id) {
    if (m_skipSpecial && m_tokenizer->isSpecial(id)) return {};
    m_pending += m_tokenizer->tokenBytes(id);
    const size_t ready = utf8::completePrefixLength(m_pending);
    if (ready == 0) return {};
    std::string out = utf8::lossy(std::string_view(m_pending).substr(0, ready));
    m_pending.erase(0, ready);
    return out;
}

std::string StreamingDecoder::flush() {
    std::string out = utf8::lossy(m_pending);
    m_pending.clear();
    return out;
}

}  // namespace dsv2
