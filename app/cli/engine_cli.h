#pragma once
// Shared by the CLI commands that run the engine (logits, generate, chat): the backend/threads/
// context options, loading with a person-readable error, token lists, and routing as JSON.

#include <CLI/CLI.hpp>

#include <charconv>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dsv2/engine.h"

namespace dsv2::cli {

struct EngineCliOptions {
    std::string model;
    std::string backend = "auto";
    int threads = 0;
    int64_t context = 0;
    std::string mla = "auto";
    std::vector<int> devices;

    void addTo(CLI::App& cmd) {
        cmd.add_option("-m,--model", model, "Model folder (hub layout: config.json, *.safetensors, tokenizer.json)")
            ->required()
            ->check(CLI::ExistingDirectory);
        cmd.add_option("--backend", backend, "auto, cpu or cuda")
            ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
            ->capture_default_str();
        cmd.add_option("--threads", threads, "CPU threads (0 = all cores)")->capture_default_str();
        cmd.add_option("--context", context, "Context limit in tokens (0 = the model's maximum)");
        cmd.add_option("--mla", mla, "MLA attention form: auto, expanded or absorbed (for checks)")
            ->check(CLI::IsMember({"auto", "expanded", "absorbed"}));
        cmd.add_option("--devices", devices,
                       "CUDA devices to spread the model over, e.g. 0,1,2,3 (tensor + expert parallel; "
                       "default: device 0 alone)")
            ->delimiter(',');
    }

    Result<std::unique_ptr<Engine>> load() const {
        EngineOptions o;
        o.backend = backend == "cpu"    ? BackendChoice::Cpu
                    : backend == "cuda" ? BackendChoice::Cuda
                                        : BackendChoice::Auto;
        o.threads = threads;
        o.maxContext = context;
        o.devices = devices;
        o.attentionForm = mla == "expanded"   ? AttentionForm::Expanded
                          : mla == "absorbed" ? AttentionForm::Absorbed
                                              : AttentionForm::Auto;
        auto engine = Engine::load(model, o);
        if (!engine.isOk()) return engine.status().withContext("cannot load " + model);
        return engine;
    }
};

// "1,2, 3" -> {1, 2, 3}; an error names the bad piece.
inline Result<std::vector<int32_t>> parseTokenList(const std::string& text) {
    std::vector<int32_t> ids;
    size_t at = 0;
    while (at <= text.size()) {
        size_t end = text.find(',', at);
        if (end == std::string::npos) end = text.size();
        std::string piece = text.substr(at, end - at);
        piece.erase(0, piece.find_first_not_of(" \t"));
        piece.erase(piece.find_last_not_of(" \t") + 1);
        int32_t id = 0;
        const auto [ptr, ec] = std::from_chars(piece.data(), piece.data() + piece.size(), id);
        if (piece.empty() || ec != std::errc() || ptr != piece.data() + piece.size())
            return Status(StatusCode::InvalidArgument, "'" + piece + "' in --tokens is not a token id");
        ids.push_back(id);
        at = end + 1;
    }
    return ids;
}

// {"layers": [...], "topk_ids": [token][layer][k], "topk_weights": [token][layer][k]}
inline nlohmann::json routingJson(const ModelInfo& info, const std::vector<TokenRouting>& routing) {
    nlohmann::json ids = nlohmann::json::array();
    nlohmann::json weights = nlohmann::json::array();
    const auto k = static_cast<size_t>(info.expertsPerToken);
    for (const TokenRouting& r : routing) {
        nlohmann::json ti = nlohmann::json::array();
        nlohmann::json tw = nlohmann::json::array();
        for (size_t l = 0; l < info.moeLayers.size(); ++l) {
            nlohmann::json li = nlohmann::json::array();
            nlohmann::json lw = nlohmann::json::array();
            for (size_t j = 0; j < k; ++j) {
                li.push_back(r.expertIds[l * k + j]);
                lw.push_back(r.weights[l * k + j]);
            }
            ti.push_back(std::move(li));
            tw.push_back(std::move(lw));
        }
        ids.push_back(std::move(ti));
        weights.push_back(std::move(tw));
    }
    return {{"layers", info.moeLayers}, {"topk_ids", std::move(ids)}, {"topk_weights", std::move(weights)}};
}

inline nlohmann::json statsJson(const GenerationStats& s) {
    return {{"prompt_tokens", s.promptTokens},
            {"reused_prompt_tokens", s.reusedPromptTokens},
            {"generated_tokens", s.generatedTokens},
            {"ttft_s", s.timeToFirstTokenSeconds},
            {"prefill_s", s.prefillSeconds},
            {"prefill_tok_s", s.prefillTokensPerSecond},
            {"decode_s", s.decodeSeconds},
            {"decode_tok_s", s.decodeTokensPerSecond},
            {"total_s", s.totalSeconds}};
}

}  // namespace dsv2::cli
