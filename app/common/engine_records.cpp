#include "engine_records.h"

#include <algorithm>
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

std::size_t turnPromptStart(const Engine& engine, const std::vector<ChatTurn>& messages,
                            const std::vector<std::int32_t>& promptTokens) {
    if (messages.empty() || messages.back().role != "user") return 0;
    const bool answeredBefore =
        std::any_of(messages.begin(), messages.end(), [](const ChatTurn& t) { return t.role == "assistant"; });
    if (!answeredBefore) return 0;
    const std::vector<ChatTurn> history(messages.begin(), messages.end() - 1);
    auto before = engine.renderChat(history, false);
    if (!before.isOk() || before->size() > promptTokens.size() ||
        !std::equal(before->begin(), before->end(), promptTokens.begin()))
        return 0;
    return before->size();
}

storage::PromptRouting toPromptRouting(const Engine& engine, const std::vector<std::int32_t>& promptTokens,
                                       const std::vector<TokenRouting>& routing, std::size_t firstPosition) {
    const ModelInfo& info = engine.info();
    storage::PromptRouting out;
    out.promptTokens = static_cast<std::int64_t>(promptTokens.size());
    const std::size_t n = std::min(promptTokens.size(), routing.size());
    firstPosition = std::min(firstPosition, n);
    out.firstPosition = static_cast<std::int64_t>(firstPosition);
    out.records.reserve(n - firstPosition);
    for (std::size_t i = firstPosition; i < n; ++i) {
        storage::TokenRecord r;
        r.tokenId = promptTokens[i];
        const std::string text = engine.tokenText(promptTokens[i]);
        r.textOffset = static_cast<std::uint32_t>(out.text.size());
        r.textLength = static_cast<std::uint32_t>(text.size());
        out.text += text;
        if (!routing[i].expertIds.empty()) {
            r.moeLayers = static_cast<std::uint16_t>(info.moeLayers.size());
            r.topK = static_cast<std::uint8_t>(info.expertsPerToken);
            r.expertIds.assign(routing[i].expertIds.begin(), routing[i].expertIds.end());
            r.expertWeights = routing[i].weights;
        }
        out.records.push_back(std::move(r));
    }
    return out;
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
