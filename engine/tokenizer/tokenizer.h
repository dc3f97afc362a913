#pragma once
// The tokenizer of a model folder's tokenizer.json (HF tokenizers format): added tokens, the
// pre-tokenizer pipeline, byte-level BPE; decoding and streaming decoding.
//
// Differences from HF, on purpose:
// - SpecialTokens::AsText: special added tokens are matched only when the caller allows it, so
//   a user who types "<｜end▁of▁sentence｜>" gets plain text (HF always matches them).
// - Added tokens decode to their content. HF pushes them through the ByteLevel decoder too,
//   which turns the added token "ü" into the lone byte 0xFC ("Führer" decodes as "F�hrer").
// - Input that is not valid UTF-8 is repaired (U+FFFD) before encoding (HF only takes str).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dsv2/status.h"

namespace dsv2 {

enum class SpecialTokens { AsText, Allow };  // AsText: "<｜end▁of▁sentence｜>" typed by a user is plain text

// A byte range [begin, end) of a text.
struct TextRange {
    size_t begin = 0;
    size_t end = 0;
};

class BpeModel;
class PreTokenizer;

class Tokenizer {
public:
    static Result<std::unique_ptr<Tokenizer>> fromFile(const std::filesystem::path& tokenizerJson);
    static Result<std::unique_ptr<Tokenizer>> fromJson(const std::string& jsonText, const std::string& source);
    ~Tokenizer();
    Tokenizer(const Tokenizer&) = delete;
    Tokenizer& operator=(const Tokenizer&) = delete;

    // Thread-safe. Adds no bos/eos.
    std::vector<int32_t> encode(std::string_view text, SpecialTokens special = SpecialTokens::AsText) const;
    // Special tokens are recognised only where they lie entirely inside one of `specialAllowed`
    // (sorted, non-overlapping byte ranges of text); elsewhere they are plain text. Used by the
    // chat template: template text may form control tokens, message contents never do.
    std::vector<int32_t> encodeWithSpecialRanges(std::string_view text, std::span<const TextRange> specialAllowed) const;

    // Concatenated token bytes, invalid UTF-8 replaced by U+FFFD. Unknown ids are skipped.
    std::string decode(std::span<const int32_t> ids, bool skipSpecial = false) const;
    std::string tokenBytes(int32_t id) const;  // the raw bytes one token stands for (may be partial UTF-8)
    // The token as tokenizer.json spells it ("Ġthe", "<｜end▁of▁sentence｜>"); "" for unknown ids.
    std::string tokenSpelling(int32_t id) const;
    // An added token by content, else a vocab entry by its tokenizer.json spelling ("Ġthe"),
    // else a vocab entry by its raw bytes (" the").
    std::optional<int32_t> findToken(std::string_view content) const;
    bool isSpecial(int32_t id) const;
    int32_t size() const;  // highest id + 1

private:
    struct AddedToken {
        int32_t id = 0;
        std::string content;
        bool special = false;
        bool normalized = false;
        bool lstrip = false;
        bool rstrip = false;
        bool singleWord = false;
    };
    // A piece of input: either an added token (id >= 0) or plain text to pre-tokenize.
    struct Segment {
        size_t begin = 0;
        size_t end = 0;
        int32_t addedId = -1;
    };
    struct Scratch;

    Tokenizer();
    Status load(const std::string& jsonText);
    std::vector<int32_t> encodeImpl(std::string_view text, std::span<const TextRange> specialAllowed,
                                    bool allowAllSpecial) const;
    void splitAddedTokens(std::string_view text, std::span<const TextRange> specialAllowed, bool allowAllSpecial,
                          std::vector<Segment>& segments) const;
    void matchPass(std::string_view text, size_t base, const std::vector<const AddedToken*>& candidates,
                   std::span<const TextRange> specialAllowed, bool allowAllSpecial, std::vector<Segment>& segments) const;
    const AddedToken* addedById(int32_t id) const;

    std::unique_ptr<BpeModel> m_model;
    std::unique_ptr<PreTokenizer> m_preTokenizer;
    std::vector<AddedToken> m_added;
    // Added tokens grouped by matching pass (HF: non-normalized ones first), longest first.
    std::vector<const AddedToken*> m_rawPass;
    std::vector<const AddedToken*> m_normalizedPass;
    std::vector<int32_t> m_addedIndexById;  // id → index into m_added, or -1
    int32_t m_size = 0;
    std::string m_source;
};

class StreamingDecoder {  // never emits half a UTF-8 character
public:
    explicit StreamingDecoder(const Tokenizer& tokenizer, bool skipSpecial = true);
    std::string push(int32_t id);  // text that became complete with this token (maybe "")
    std::string flush();           // whatever is left (invalid bytes as U+FFFD)

private:
    const Tokenizer* m_tokenizer;
    bool m_skipSpecial;
    std::string m_pending;
};

}  // namespace dsv2
