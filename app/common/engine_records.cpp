#include "engine_records.h"

#include <cstdint>
#include <sstream>

namespace dsv2::app {

storage::TokenRecord toTokenRecord(const TokenEvent& token, const ModelInfo& info) {
    storage::TokenRecord r;
    r.tokenId = token.id;
    r.logprob = token.logprob;
    for (const TokenAlternative& a : token.alternatives) r.topLogprobs.push_back({a.id, a.logprob, a.text});
    if (!token.routing.expertIds.empty()) {
        r.moeLayers = static_cast<std::uint16_t>(info.moeLayers.size());
        r.topK = static_cast<std::uint8_t>(info.expertsPerToken);
        r.expertIds.assign(token.routing.expertIds.begin(), token.routing.expertIds.end());
        r.expertWeights = token.routing.weights;
    }
    return r;
}

storage::GenerationStats toStorageStats(const GenerationStats& s, StopReason reason, const std::string& backend) {
    storage::GenerationStats out;
    out.promptTokens = s.promptTokens;
    out.generatedTokens = s.generatedTokens;
    out.tokensPerSecond = s.decodeTokensPerSecond;
    out.timeToFirstTokenMs = s.timeToFirstTokenSeconds * 1000.0;
    out.totalMs = s.totalSeconds * 1000.0;
    out.stopReason = stopReasonName(reason);
    out.backend = backend;
    out.extra = {{"reusedPromptTokens", s.reusedPromptTokens},
                 {"prefillTokensPerSecond", s.prefillTokensPerSecond},
                 {"prefillSeconds", s.prefillSeconds}};
    return out;
}

nlohmann::json samplingToJson(const GenerateParams& p) {
    nlohmann::json j = nlohmann::json::object();
    j["temperature"] = p.temperature;
    j["topP"] = p.topP;
    if (p.topK > 0) j["topK"] = p.topK;
    j["maxTokens"] = p.maxNewTokens;
    j["repetitionPenalty"] = p.repetitionPenalty;
    if (p.seed) j["seed"] = *p.seed;
    return j;
}

std::string autoTitle(const std::string& prompt) {
    constexpr size_t kMax = 60;
    std::istringstream lines(prompt);
    std::string line;
    std::string title;
    while (std::getline(lines, line)) {
        // Collapse whitespace runs, as the GUI's QString::simplified() does.
        std::string simple;
        for (char c : line) {
            const bool space = c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
            if (space) {
                if (!simple.empty() && simple.back() != ' ') simple += ' ';
            } else {
                simple += c;
            }
        }
        while (!simple.empty() && simple.back() == ' ') simple.pop_back();
        // Markdown decoration at the start says nothing about the topic.
        const size_t start = simple.find_first_not_of("#>*`- ");
        title = start == std::string::npos ? std::string() : simple.substr(start);
        if (!title.empty()) break;
    }
    if (title.empty()) return "New chat";
    if (title.size() <= kMax) return title;
    size_t cut = title.rfind(' ', kMax);
    if (cut == std::string::npos || cut < kMax / 2) cut = kMax;
    // Never cut inside a UTF-8 sequence.
    while (cut > 0 && (static_cast<unsigned char>(title[cut]) & 0xC0) == 0x80) --cut;
    return title.substr(0, cut) + "…";
}

}  // namespace dsv2::app
