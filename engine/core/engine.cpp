#include "dsv2/engine.h"

#include <algorithm>

#include "core/engine_internal.h"
#include "dsv2/log.h"
#include "model/safetensors_checkpoint.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dsv2 {

TokenRouting tokenRouting(const ForwardRouting& routing, int64_t token) {
    const auto per = static_cast<std::ptrdiff_t>(routing.moeLayers.size()) * routing.topK;
    const auto begin = static_cast<std::ptrdiff_t>(token) * per;
    TokenRouting r;
    r.expertIds.assign(routing.expertIds.begin() + begin, routing.expertIds.begin() + begin + per);
    r.weights.assign(routing.weights.begin() + begin, routing.weights.begin() + begin + per);
    return r;
}

CacheUsage cacheUsage(const CacheStats& s) {
    CacheUsage u;
    u.tokens = s.tokens;
    u.capacityTokens = s.capacityTokens;
    u.bytesPerToken = s.bytesPerToken;
    u.bytesUsed = s.bytesUsed;
    u.bytesReserved = s.bytesReserved;
    u.bytesCapacity = s.bytesCapacity;
    u.blocksUsed = s.blocksUsed;
    u.blocksCapacity = s.blocksCapacity;
    return u;
}

// ---------------------------------------------------------------------------------------------
// Session

Result<ForwardResult> Session::Impl::forward(std::span<const int32_t> ids, bool allLogits) {
    DSV2_ASSIGN_OR_RETURN(ForwardResult result, cache->forward(ids, allLogits));
    tokens.insert(tokens.end(), ids.begin(), ids.end());
    for (int64_t t = 0; t < result.nTokens; ++t) routing.push_back(tokenRouting(result.routing, t));
    return result;
}

Status Session::Impl::truncate(int64_t length) {
    DSV2_RETURN_IF_ERROR(cache->truncate(length));
    tokens.resize(static_cast<size_t>(length));
    routing.resize(static_cast<size_t>(length));
    return Status::ok();
}

Session::Session(std::unique_ptr<Impl> impl) : d(std::move(impl)) {}
Session::~Session() = default;

Result<EvaluateResult> Session::evaluate(std::span<const int32_t> tokens, bool allLogits) {
    DSV2_ASSIGN_OR_RETURN(ForwardResult f, d->forward(tokens, allLogits));
    EvaluateResult r;
    r.nTokens = f.nTokens;
    r.nRows = f.nRows;
    r.vocab = f.vocab;
    r.logits = std::move(f.logits);
    for (int64_t t = 0; t < f.nTokens; ++t) r.routing.push_back(tokenRouting(f.routing, t));
    return r;
}

const std::vector<int32_t>& Session::tokens() const { return d->tokens; }
const std::vector<TokenRouting>& Session::routing() const { return d->routing; }
Status Session::truncate(int64_t length) { return d->truncate(length); }
void Session::reset() { (void)d->truncate(0); }
int64_t Session::capacity() const { return d->cache->capacity(); }
CacheUsage Session::cacheUsage() const { return dsv2::cacheUsage(d->cache->cacheStats()); }

// ---------------------------------------------------------------------------------------------
// Engine

Engine::Engine(std::unique_ptr<Impl> impl) : d(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::load(const std::filesystem::path& modelDir, const EngineOptions& options) {
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    DSV2_ASSIGN_OR_RETURN(impl->folder, ModelFolder::open(modelDir));
    const ModelConfig& config = impl->folder->config();

    BackendOptions bo;
    bo.threads = options.threads;
    bo.device = options.device;
    bo.devices = options.devices;
    bo.maxContext = options.maxContext;
    bo.loadProgress = options.loadProgress;
    switch (options.attentionForm) {
    case AttentionForm::Auto: bo.mlaForm = MlaForm::Auto; break;
    case AttentionForm::Expanded: bo.mlaForm = MlaForm::Expanded; break;
    case AttentionForm::Absorbed: bo.mlaForm = MlaForm::Absorbed; break;
    }
    if (options.maxContext > config.maxPositionEmbeddings)
        return Status(StatusCode::InvalidArgument, "a context of " + std::to_string(options.maxContext) +
                                                       " tokens exceeds the model's max_position_embeddings (" +
                                                       std::to_string(config.maxPositionEmbeddings) + ")");
    switch (options.backend) {
    case BackendChoice::Cpu: {
        DSV2_RETURN_IF_ERROR(impl->folder->checkpoint().prefetch(options.loadProgress));
        DSV2_ASSIGN_OR_RETURN(impl->backend, createBackend(BackendKind::Cpu, config, impl->folder->weights(), bo));
        break;
    }
    case BackendChoice::Cuda: {
        DSV2_ASSIGN_OR_RETURN(impl->backend, createBackend(BackendKind::Cuda, config, impl->folder->weights(), bo));
        break;
    }
    case BackendChoice::Auto: {
        auto cuda = createBackend(BackendKind::Cuda, config, impl->folder->weights(), bo);
        if (cuda.isOk()) {
            impl->backend = std::move(cuda).value();
        } else if (cuda.status().code() == StatusCode::Cancelled) {
            return cuda.status();  // the user stopped the load; falling back would ignore them
        } else {
            logInfo("using the CPU backend: " + cuda.status().message());
            DSV2_RETURN_IF_ERROR(impl->folder->checkpoint().prefetch(options.loadProgress));
            DSV2_ASSIGN_OR_RETURN(impl->backend, createBackend(BackendKind::Cpu, config, impl->folder->weights(), bo));
        }
        break;
    }
    }

    ModelInfo& info = impl->info;
    info.name = impl->folder->name();
    info.path = impl->folder->path();
    info.backend = impl->backend->description();
    info.devices = impl->backend->devices();
    info.vocabSize = config.vocabSize;
    info.hiddenSize = config.hiddenSize;
    info.numLayers = config.numHiddenLayers;
    info.numHeads = config.numAttentionHeads;
    info.nRoutedExperts = config.nRoutedExperts;
    info.nSharedExperts = config.nSharedExperts;
    info.expertsPerToken = config.numExpertsPerTok;
    for (int64_t l = 0; l < config.numHiddenLayers; ++l)
        if (impl->folder->weights().layers[static_cast<size_t>(l)].moe)
            info.moeLayers.push_back(static_cast<int32_t>(l));
    info.maxPositionEmbeddings = config.maxPositionEmbeddings;
    info.defaultContext = options.maxContext > 0 ? options.maxContext : config.maxPositionEmbeddings;
    info.weightFileBytes = impl->folder->weightFileBytes();
    info.bosTokenId = static_cast<int32_t>(config.bosTokenId);
    info.eosTokenId = static_cast<int32_t>(config.eosTokenId);
    info.hasChatTemplate = impl->folder->chatTemplate() != nullptr;
    // Bytes per token as the backend stores the cache (a probe session of one token's capacity).
    if (auto probe = impl->backend->createSession(1); probe.isOk())
        info.cacheBytesPerToken = (*probe)->cacheStats().bytesPerToken;
    return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const ModelInfo& Engine::info() const { return d->info; }

GenerateParams Engine::defaultParams() const {
    GenerateParams p;
    const GenerationDefaults& g = d->folder->generationDefaults();
    if (g.temperature) p.temperature = *g.temperature;
    if (g.topP) p.topP = *g.topP;
    if (g.topK) p.topK = *g.topK;
    if (g.repetitionPenalty) p.repetitionPenalty = *g.repetitionPenalty;
    if (g.maxNewTokens) p.maxNewTokens = *g.maxNewTokens;
    // HF samples only when do_sample is true; without it the other keys are ignored (greedy).
    if (!g.doSample.value_or(false)) p.temperature = 0.0;
    return p;
}

Result<std::unique_ptr<Session>> Engine::createSession(int64_t maxContext) {
    auto impl = std::make_unique<Session::Impl>();
    impl->engine = d.get();
    DSV2_ASSIGN_OR_RETURN(impl->cache, d->backend->createSession(maxContext));
    return std::unique_ptr<Session>(new Session(std::move(impl)));
}

std::vector<int32_t> Engine::encode(std::string_view text, bool addBos) const {
    std::vector<int32_t> ids;
    if (addBos && d->info.bosTokenId >= 0) ids.push_back(d->info.bosTokenId);
    const std::vector<int32_t> body = d->folder->tokenizer().encode(text, SpecialTokens::AsText);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
}

std::string Engine::decode(std::span<const int32_t> ids, bool skipSpecial) const {
    return d->folder->tokenizer().decode(ids, skipSpecial);
}

std::string Engine::tokenText(int32_t id) const { return d->folder->tokenizer().tokenBytes(id); }

namespace {
std::vector<ChatMessage> toChatMessages(std::span<const ChatTurn> turns) {
    std::vector<ChatMessage> messages;
    messages.reserve(turns.size());
    for (const auto& t : turns) messages.push_back(ChatMessage{t.role, t.content});
    return messages;
}
Status noTemplate(const ModelInfo& info) {
    return {StatusCode::NotFound, "the model " + info.name +
                                      " has no chat template (tokenizer_config.json has no chat_template); "
                                      "send prompt tokens instead of messages"};
}
}  // namespace

Result<std::vector<int32_t>> renderChatTokens(const Engine::Impl& engine, std::span<const ChatTurn> turns,
                                              bool addGenerationPrompt) {
    const ChatTemplate* tmpl = engine.folder->chatTemplate();
    if (!tmpl) return noTemplate(engine.info);
    const auto converted = toChatMessages(turns);
    Result<std::vector<int32_t>> ids = tmpl->renderTokens(converted, addGenerationPrompt, engine.folder->tokenizer());
    if (!ids.isOk()) return ids.status().withContext("chat template");
    return ids;
}

Result<std::vector<int32_t>> Engine::renderChat(std::span<const ChatTurn> messages, bool addGenerationPrompt) const {
    return renderChatTokens(*d, messages, addGenerationPrompt);
}

Result<std::string> Engine::renderChatText(std::span<const ChatTurn> messages, bool addGenerationPrompt) const {
    const ChatTemplate* tmpl = d->folder->chatTemplate();
    if (!tmpl) return noTemplate(d->info);
    const auto converted = toChatMessages(messages);
    return tmpl->render(converted, addGenerationPrompt);
}

}  // namespace dsv2
