#include "tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include "tokenizer/utf8.h"

namespace dsv2 {
namespace {

// The GPT-2 pattern HF's ByteLevel pre-tokenizer uses when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Result<SplitBehavior> parseBehavior(const nlohmann::json& v) {
    const std::string name = v.is_string() ? v.get<std::string>() : std::string("<not a string>");
    if (name == "Removed") return SplitBehavior::Removed;
    if (name == "Isolated") return SplitBehavior::Isolated;
    if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
    if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
    if (name == "Contiguous") return SplitBehavior::Contiguous;
    return Status(StatusCode::Unsupported, "pre-tokenizer Split behavior '" + name + "' is not supported");
}

bool boolField(const nlohmann::json& spec, const char* key, bool fallback) {
    const auto it = spec.find(key);
    return it != spec.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace

Result<PreTokenizer> PreTokenizer::fromJson(const nlohmann::json& spec) {
    PreTokenizer pre;
    if (!spec.is_null()) DSV2_RETURN_IF_ERROR(pre.addStep(spec));
    return pre;
}

Status PreTokenizer::addStep(const nlohmann::json& spec) {
    if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
        return Status(StatusCode::InvalidData, "pre-tokenizer entry without a \"type\" string");
    }
    const std::string type = spec["type"].get<std::string>();
    if (type == "Sequence") {
        const auto it = spec.find("pretokenizers");
        if (it == spec.end() || !it->is_array()) {
            return Status(StatusCode::InvalidData, "pre-tokenizer Sequence without a \"pretokenizers\" array");
        }
        for (const auto& child : *it) DSV2_RETURN_IF_ERROR(addStep(child));
        return Status::ok();
    }
    if (type == "Split") {
        Step step;
        const auto pattern = spec.find("pattern");
        if (pattern == spec.end() || !pattern->is_object()) {
            return Status(StatusCode::InvalidData, "pre-tokenizer Split without a \"pattern\" object");
        }
        Result<Regex> regex = Status(StatusCode::InvalidData, "pre-tokenizer Split pattern is neither Regex nor String");
        if (pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
            regex = Regex::compile((*pattern)["Regex"].get<std::string>());
        } else if (pattern->contains("String") && (*pattern)["String"].is_string()) {
            regex = Regex::compile((*pattern)["String"].get<std::string>(), /*literal=*/true);
        }
        if (!regex) return regex.status().withContext("pre-tokenizer Split");
        step.regex = std::move(regex).value();
        DSV2_ASSIGN_OR_RETURN(step.behavior, parseBehavior(spec.value("behavior", nlohmann::json())));
        step.invert = boolField(spec, "invert", false);
        m_steps.push_back(std::move(step));
        return Status::ok();
    }
    if (type == "Digits") {
        // HF isolates every char with Rust's char::is_numeric (general categories Nd, Nl, No).
        Step step;
        DSV2_ASSIGN_OR_RETURN(step.regex, Regex::compile(R"(\p{N})"));
        step.behavior = boolField(spec, "individual_digits", false) ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
        m_steps.push_back(std::move(step));
        return Status::ok();
    }
    if (type == "ByteLevel") {
        m_byteLevel = true;
        if (boolField(spec, "add_prefix_space", true)) {
            Step step;
            step.kind = Step::Kind::PrefixSpace;
            m_steps.push_back(std::move(step));
        }
        if (boolField(spec, "use_regex", true)) {
            Step step;
            DSV2_ASSIGN_OR_RETURN(step.regex, Regex::compile(kGpt2Pattern));
            step.behavior = SplitBehavior::Isolated;
            m_steps.push_back(std::move(step));
        }
        return Status::ok();
    }
    return Status(StatusCode::Unsupported, "pre-tokenizer type '" + type + "' is not supported");
}

void PreTokenizer::split(std::string_view text, Scratch& scratch) const {
    scratch.pieces.clear();
    scratch.owned.clear();
    if (!text.empty()) scratch.pieces.push_back(text);
    for (const Step& step : m_steps) {
        if (step.kind == Step::Kind::PrefixSpace) {
            for (auto& piece : scratch.pieces) {
                if (!piece.empty() && piece.front() == ' ') continue;
                std::string spaced;
                spaced.reserve(piece.size() + 1);
                spaced.push_back(' ');
                spaced.append(piece);
                scratch.owned.push_back(std::move(spaced));
                piece = scratch.owned.back();
            }
            continue;
        }
        applySplit(step, scratch);
    }
}

void PreTokenizer::applySplit(const Step& step, Scratch& scratch) const {
    scratch.next.clear();
    for (const std::string_view piece : scratch.pieces) {
        // 1. (span, isMatch) marks covering the piece, as HF's Pattern::find_matches yields them.
        auto& marks = scratch.marks;
        marks.clear();
        size_t last = 0;
        size_t pos = 0;
        size_t mb = 0;
        size_t me = 0;
        while (pos <= piece.size() && step.regex.find(piece, pos, scratch.match, mb, me)) {
            if (mb != last) marks.emplace_back(piece.substr(last, mb - last), false);
            marks.emplace_back(piece.substr(mb, me - mb), true);
            last = me;
            if (me == mb) {
                // An empty match still splits; step one character past it to make progress.
                if (me >= piece.size()) break;
                char32_t cp = 0;
                pos = me + utf8::decode(piece, me, cp);
            } else {
                pos = me;
            }
        }
        if (last != piece.size()) marks.emplace_back(piece.substr(last), false);
        if (step.invert) {
            for (auto& m : marks) m.second = !m.second;
        }

        // 2. Combine by behaviour (HF's NormalizedString::split), dropping empty pieces.
        const size_t firstOut = scratch.next.size();
        auto extendLast = [&](std::string_view span) {
            std::string_view& back = scratch.next.back();
            back = std::string_view(back.data(), static_cast<size_t>(span.data() + span.size() - back.data()));
        };
        switch (step.behavior) {
        case SplitBehavior::Isolated:
            for (const auto& m : marks) scratch.next.push_back(m.first);
            break;
        case SplitBehavior::Removed:
            for (const auto& m : marks) {
                if (!m.second) scratch.next.push_back(m.first);
            }
            break;
        case SplitBehavior::MergedWithPrevious: {
            bool previousMatch = false;
            for (const auto& m : marks) {
                if (m.second && !previousMatch && scratch.next.size() > firstOut) {
                    extendLast(m.first);
                } else {
                    scratch.next.push_back(m.first);
                }
                previousMatch = m.second;
            }
            break;
        }
        case SplitBehavior::MergedWithNext: {
            // Walk backwards: a match joins the piece that follows it.
            std::vector<std::string_view> reversed;
            bool previousMatch = false;
            for (auto it = marks.rbegin(); it != marks.rend(); ++it) {
                if (it->second && !previousMatch && !reversed.empty()) {
                    std::string_view& back = reversed.back();
                    back = std::string_view(it->first.data(),
                                            static_cast<size_t>(back.data() + back.size() - it->first.data()));
                } else {
                    reversed.push_back(it->first);
                }
                previousMatch = it->second;
            }
            scratch.next.insert(scratch.next.end(), reversed.rbegin(), reversed.rend());
            break;
        }
        case SplitBehavior::Contiguous: {
            bool previousMatch = false;
            bool first = true;
            for (const auto& m : marks) {
                if (!first && m.second == previousMatch) {
                    extendLast(m.first);
                } else {
                    scratch.next.push_back(m.first);
                }
                previousMatch = m.second;
                first = false;
            }
            break;
        }
        }
        // Empty matches leave empty pieces behind; HF filters them out.
        size_t w = firstOut;
        for (size_t r = firstOut; r < scratch.next.size(); ++r) {
            if (!scratch.next[r].empty()) scratch.next[w++] = scratch.next[r];
        }
        scratch.next.resize(w);
    }
    scratch.pieces.swap(scratch.next);
}

}  // namespace dsv2
