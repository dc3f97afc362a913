#pragma once
// The engine's public face: load a model folder onto a backend, open sessions (one per
// conversation, each owning its latent KV cache) and generate with streaming events.
//
//   DSV2_ASSIGN_OR_RETURN(auto engine, dsv2::Engine::load("/models/DeepSeek-V2-Lite-Chat"));
//   DSV2_ASSIGN_OR_RETURN(auto session, engine->createSession());
//   dsv2::GenerateRequest request;
//   request.messages = {{"user", "Hello"}};
//   request.params = engine->defaultParams();
//   auto result = session->generate(request, [](const dsv2::GenerateEvent& e) { ... });
//
// Threading: an Engine and its Sessions may be used from any one thread at a time; a Session must
// not outlive its Engine. Nothing here throws or exits: failures come back as Status.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dsv2/events.h"
#include "dsv2/generate.h"
#include "dsv2/progress.h"
#include "dsv2/status.h"

namespace dsv2 {

enum class BackendChoice {
    Auto,  // CUDA when this build has it and a GPU is usable, else CPU
    Cpu,
    Cuda,
};

// Which MLA form the backend computes attention in (both give the same numbers; for tests and
// benchmarks). Auto lets the backend choose per call.
enum class AttentionForm { Auto, Expanded, Absorbed };

struct EngineOptions {
    BackendChoice backend = BackendChoice::Auto;
    int threads = 0;  // CPU threads; 0 = all cores
    int device = 0;   // CUDA device (when `devices` is empty)
    // CUDA devices to spread the model over (tensor-parallel attention, expert-parallel MoE, NCCL;
    // docs/multi-gpu.md). Empty: `device` alone; one entry: that device alone. Each index at most
    // once; needs NCCL (libnccl.so.2) at run time for two or more.
    std::vector<int> devices;
    int64_t maxContext = 0;  // default session capacity in tokens; 0 = the model's maximum
    AttentionForm attentionForm = AttentionForm::Auto;
    // Called from the loading thread as the weights are read (CPU: paged in from the files; CUDA:
    // uploaded to the GPU), bytes done of the total. Return false to cancel the load.
    ProgressCallback loadProgress;
};

struct ModelInfo {
    std::string name;  // the folder's name
    std::filesystem::path path;
    std::string backend;       // "cpu fp32, 2 threads"
    std::vector<int> devices;  // CUDA devices the model runs on (empty on the CPU backend)
    int64_t vocabSize = 0;
    int64_t hiddenSize = 0;
    int64_t numLayers = 0;
    int64_t numHeads = 0;
    int64_t nRoutedExperts = 0;
    int64_t nSharedExperts = 0;
    int64_t expertsPerToken = 0;
    std::vector<int32_t> moeLayers;  // model layer index of each MoE layer (routing order)
    int64_t maxPositionEmbeddings = 0;
    int64_t defaultContext = 0;      // capacity of a session created with maxContext 0
    int64_t cacheBytesPerToken = 0;  // latent cache, all layers, as the backend stores it
    uint64_t weightFileBytes = 0;
    int32_t bosTokenId = -1;
    int32_t eosTokenId = -1;
    bool hasChatTemplate = false;
};

// Logits and routing of tokens appended to a session without sampling (dsv2 logits, tests).
struct EvaluateResult {
    int64_t nTokens = 0;
    int64_t nRows = 0;  // nTokens with allLogits, else 1
    int64_t vocab = 0;
    std::vector<float> logits;          // (nRows, vocab)
    std::vector<TokenRouting> routing;  // (nTokens)
};

class Engine;

class Session {
public:
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Runs one generation. The prompt is the whole context: the cached prefix it shares with
    // tokens() is reused, the rest is recomputed (regenerate/edit just send the shorter or changed
    // context). Errors: bad token ids, a prompt that does not fit the context, no chat template
    // for messages. Cancelling is not an error (StopReason::Cancelled).
    Result<GenerateResult> generate(const GenerateRequest& request, const EventCallback& onEvent = {});

    // Appends `tokens` to the session and returns their logits (all rows or the last) and routing.
    Result<EvaluateResult> evaluate(std::span<const int32_t> tokens, bool allLogits);

    const std::vector<int32_t>& tokens() const;        // what the cache holds, in order
    const std::vector<TokenRouting>& routing() const;  // (tokens().size())
    Status truncate(int64_t length);                   // forget everything from `length` on
    void reset();                                      // truncate(0)
    int64_t capacity() const;
    CacheUsage cacheUsage() const;

    struct Impl;

private:
    friend class Engine;
    explicit Session(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> d;
};

class Engine {
public:
    // Opens the model folder (config, weights, tokenizer, chat template, generation defaults) and
    // creates the backend. BackendChoice::Cuda on a machine or build without CUDA fails with
    // Unavailable saying why.
    static Result<std::unique_ptr<Engine>> load(const std::filesystem::path& modelDir,
                                                const EngineOptions& options = {});
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    const ModelInfo& info() const;
    // Sampling defaults from generation_config.json (temperature, top_p, top_k, repetition
    // penalty, max_new_tokens; do_sample false → greedy), else greedy with 256 new tokens.
    GenerateParams defaultParams() const;

    // maxContext 0 = EngineOptions::maxContext, else the model's maximum.
    Result<std::unique_ptr<Session>> createSession(int64_t maxContext = 0);

    // Tokenizer access. encode: plain text, special-token spellings stay text; addBos prepends bos.
    std::vector<int32_t> encode(std::string_view text, bool addBos) const;
    std::string decode(std::span<const int32_t> ids, bool skipSpecial = true) const;
    std::string tokenText(int32_t id) const;
    // The chat template applied to messages (+ the generation prompt), as tokens / as text.
    Result<std::vector<int32_t>> renderChat(std::span<const ChatTurn> messages, bool addGenerationPrompt) const;
    Result<std::string> renderChatText(std::span<const ChatTurn> messages, bool addGenerationPrompt) const;

    struct Impl;  // defined in engine/core/engine_internal.h

private:
    explicit Engine(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> d;
};

}  // namespace dsv2
