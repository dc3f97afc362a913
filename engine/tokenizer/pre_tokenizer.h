#pragma once
// The pre-tokenizer of tokenizer.json: a sequence of steps, each splitting every current piece
// further, as HF tokenizers does. Supported: Split (regex or literal, all five behaviours,
// invert), Digits, ByteLevel (prefix space, GPT-2 regex), Whitespace/WhitespaceSplit-free
// families are not used by DeepSeek and are reported as Unsupported.

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dsv2/status.h"
#include "tokenizer/regex.h"

namespace dsv2 {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

class PreTokenizer {
public:
    // Scratch buffers reused across calls; one per thread.
    struct Scratch {
        Regex::MatchScratch match;
        std::vector<std::string_view> pieces;
        std::vector<std::string_view> next;
        std::vector<std::pair<std::string_view, bool>> marks;  // (span, is a match)
        std::deque<std::string> owned;  // pieces that are not substrings of the input
    };

    // `spec` is the "pre_tokenizer" value of tokenizer.json (null means: no pre-tokenizer).
    static Result<PreTokenizer> fromJson(const nlohmann::json& spec);

    // Splits `text` (valid UTF-8) into pieces, appended to scratch.pieces (cleared first). The
    // views point into `text` or into scratch.owned.
    void split(std::string_view text, Scratch& scratch) const;

    // True when a ByteLevel step is present: the model then works on bytes.
    bool byteLevel() const { return m_byteLevel; }

private:
    struct Step {
        enum class Kind { Split, PrefixSpace } kind = Kind::Split;
        Regex regex;
        SplitBehavior behavior = SplitBehavior::Isolated;
        bool invert = false;
    };
    Status addStep(const nlohmann::json& spec);
    void applySplit(const Step& step, Scratch& scratch) const;

    std::vector<Step> m_steps;
    bool m_byteLevel = false;
};

}  // namespace dsv2
