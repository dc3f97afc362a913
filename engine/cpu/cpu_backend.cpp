// The CPU reference backend: the whole DeepSeek-V2 forward pass in plain fp32 loops, reading the
// bf16/f16 weights straight from the mapped checkpoint and widening them a few rows at a time.
// It is the numeric oracle for the CUDA kernels and the fallback when there is no GPU.

#include <algorithm>
#include <cmath>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "core/backend.h"
#include "cpu/cpu_ops.h"
#include "cpu/mla_attention.h"
#include "cpu/rope.h"
#include "cpu/router.h"
#include "cpu/thread_pool.h"

namespace dsv2 {
namespace {

using cpu::ThreadPool;

// q_a_layernorm and kv_a_layernorm are built without passing rms_norm_eps in both DeepSeek's and
// HF's modeling code, so they keep RMSNorm's default epsilon whatever config.json says.
constexpr float kLatentNormEps = 1e-6f;

struct LayerNorms {
    std::vector<float> input;     // (hidden)
    std::vector<float> post;      // (hidden)
    std::vector<float> qA;        // (q_lora), empty without q_lora
    std::vector<float> kvA;       // (kv_lora)
};

Status checkShape(const TensorView& t, std::vector<int64_t> expected, const std::string& what) {
    if (!t.valid()) return {StatusCode::NotFound, what + " is missing"};
    if (!dtypeComputable(t.dtype))
        return {StatusCode::Unsupported, what + " (" + t.name + ") has dtype " + dtypeName(t.dtype) +
                                             "; the CPU backend reads BF16, F16 and F32"};
    if (t.shape != expected) {
        TensorView e;
        e.shape = std::move(expected);
        return {StatusCode::InvalidData,
                what + " (" + t.name + ") has shape " + t.shapeString() + ", expected " + e.shapeString()};
    }
    return Status::ok();
}

Status checkMlp(const MlpWeights& m, int64_t hidden, int64_t inter, const std::string& what) {
    DSV2_RETURN_IF_ERROR(checkShape(m.gateProj, {inter, hidden}, what + " gate_proj"));
    DSV2_RETURN_IF_ERROR(checkShape(m.upProj, {inter, hidden}, what + " up_proj"));
    DSV2_RETURN_IF_ERROR(checkShape(m.downProj, {hidden, inter}, what + " down_proj"));
    return Status::ok();
}

// Checks every tensor the forward pass touches against the config, so that a mismatched
// checkpoint fails at load with a message rather than reading out of bounds later.
Status validateWeights(const ModelConfig& c, const ModelWeights& w) {
    const int64_t hidden = c.hiddenSize;
    const int64_t H = c.numAttentionHeads;
    DSV2_RETURN_IF_ERROR(checkShape(w.embedTokens, {c.vocabSize, hidden}, "model.embed_tokens"));
    DSV2_RETURN_IF_ERROR(checkShape(w.norm, {hidden}, "model.norm"));
    DSV2_RETURN_IF_ERROR(checkShape(w.lmHead, {c.vocabSize, hidden}, "lm_head"));
    if (static_cast<int64_t>(w.layers.size()) != c.numHiddenLayers)
        return {StatusCode::InvalidData, "the weights have " + std::to_string(w.layers.size()) +
                                             " layers, config.json says " + std::to_string(c.numHiddenLayers)};
    if (c.nGroup > 1 && c.nRoutedExperts % c.nGroup != 0)
        return {StatusCode::InvalidData, "n_routed_experts is not a multiple of n_group"};
    for (int64_t l = 0; l < c.numHiddenLayers; ++l) {
        const LayerWeights& L = w.layers[static_cast<size_t>(l)];
        const std::string p = "layer " + std::to_string(l);
        DSV2_RETURN_IF_ERROR(checkShape(L.inputLayernorm, {hidden}, p + " input_layernorm"));
        DSV2_RETURN_IF_ERROR(checkShape(L.postAttentionLayernorm, {hidden}, p + " post_attention_layernorm"));
        const AttentionWeights& a = L.attn;
        if (c.qLoraRank) {
            DSV2_RETURN_IF_ERROR(checkShape(a.qAProj, {*c.qLoraRank, hidden}, p + " q_a_proj"));
            DSV2_RETURN_IF_ERROR(checkShape(a.qALayernorm, {*c.qLoraRank}, p + " q_a_layernorm"));
            DSV2_RETURN_IF_ERROR(checkShape(a.qBProj, {H * c.qHeadDim(), *c.qLoraRank}, p + " q_b_proj"));
        } else {
            DSV2_RETURN_IF_ERROR(checkShape(a.qProj, {H * c.qHeadDim(), hidden}, p + " q_proj"));
        }
        DSV2_RETURN_IF_ERROR(checkShape(a.kvAProjWithMqa, {c.latentCacheDim(), hidden}, p + " kv_a_proj_with_mqa"));
        DSV2_RETURN_IF_ERROR(checkShape(a.kvALayernorm, {c.kvLoraRank}, p + " kv_a_layernorm"));
        DSV2_RETURN_IF_ERROR(checkShape(a.kvBProj, {H * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank}, p + " kv_b_proj"));
        DSV2_RETURN_IF_ERROR(checkShape(a.oProj, {hidden, H * c.vHeadDim}, p + " o_proj"));
        if (L.moe) {
            DSV2_RETURN_IF_ERROR(checkShape(L.moe->gate, {c.nRoutedExperts, hidden}, p + " mlp.gate"));
            if (static_cast<int64_t>(L.moe->experts.size()) != c.nRoutedExperts)
                return {StatusCode::InvalidData, p + " has " + std::to_string(L.moe->experts.size()) +
                                                     " experts, config.json says " + std::to_string(c.nRoutedExperts)};
            for (size_t e = 0; e < L.moe->experts.size(); ++e)
                DSV2_RETURN_IF_ERROR(checkMlp(L.moe->experts[e], hidden, c.moeIntermediateSize,
                                              p + " expert " + std::to_string(e)));
            if (c.nSharedExperts > 0)
                DSV2_RETURN_IF_ERROR(checkMlp(L.moe->sharedExperts, hidden, c.nSharedExperts * c.moeIntermediateSize,
                                              p + " shared_experts"));
        } else if (L.denseMlp) {
            DSV2_RETURN_IF_ERROR(checkMlp(*L.denseMlp, hidden, c.intermediateSize, p + " mlp"));
        } else {
            return {StatusCode::InvalidData, p + " has neither a dense MLP nor MoE weights"};
        }
    }
    if (c.numExpertsPerTok > c.nRoutedExperts)
        return {StatusCode::InvalidData, "num_experts_per_tok exceeds n_routed_experts"};
    return Status::ok();
}

class CpuBackend;

class CpuSession final : public BackendSession {
public:
    CpuSession(CpuBackend& backend, int64_t capacity);
    Result<ForwardResult> forward(std::span<const int32_t> tokens, bool wantAllLogits) override;
    Status truncate(int64_t length) override;
    int64_t length() const override { return m_length; }
    int64_t capacity() const override { return m_capacity; }
    CacheStats cacheStats() const override;

private:
    CpuBackend& m_backend;
    int64_t m_capacity;
    int64_t m_length = 0;
    int64_t m_reservedTokens = 0;
    std::vector<std::vector<float>> m_cache;  // per layer (reserved, kvLora + rope): [c_kv | k_pe]
};

class CpuBackend final : public Backend {
public:
    CpuBackend(const ModelConfig& config, const ModelWeights& weights, const BackendOptions& options)
        : m_config(config), m_weights(weights), m_options(options), m_pool(options.threads) {
        m_invFreq = cpu::ropeInvFreq(config);
        m_ropeAmplitude = static_cast<float>(config.ropeAmplitude());
        m_router = cpu::RouterParams::fromConfig(config);
        m_dims.nHeads = config.numAttentionHeads;
        m_dims.qkNope = config.qkNopeHeadDim;
        m_dims.qkRope = config.qkRopeHeadDim;
        m_dims.vHead = config.vHeadDim;
        m_dims.kvLora = config.kvLoraRank;
        m_dims.softmaxScale = static_cast<float>(config.softmaxScale());
        for (int64_t l = 0; l < config.numHiddenLayers; ++l) {
            const LayerWeights& L = weights.layers[static_cast<size_t>(l)];
            LayerNorms n;
            n.input = toFloatVector(L.inputLayernorm);
            n.post = toFloatVector(L.postAttentionLayernorm);
            if (L.attn.hasQLora()) n.qA = toFloatVector(L.attn.qALayernorm);
            n.kvA = toFloatVector(L.attn.kvALayernorm);
            m_norms.push_back(std::move(n));
            if (L.moe) m_moeLayers.push_back(static_cast<int32_t>(l));
        }
        m_finalNorm = toFloatVector(weights.norm);
    }

    BackendKind kind() const override { return BackendKind::Cpu; }
    std::string description() const override {
        return "cpu fp32, " + std::to_string(m_pool.threadCount()) + " thread" + (m_pool.threadCount() == 1 ? "" : "s");
    }
    Result<std::unique_ptr<BackendSession>> createSession(int64_t maxContext) override {
        int64_t capacity = maxContext > 0 ? maxContext : m_options.maxContext;
        if (capacity <= 0) capacity = m_config.maxPositionEmbeddings;
        if (capacity > m_config.maxPositionEmbeddings)
            return Status(StatusCode::InvalidArgument,
                          "a context of " + std::to_string(capacity) + " tokens exceeds the model's " +
                              std::to_string(m_config.maxPositionEmbeddings) + " (max_position_embeddings)");
        return std::unique_ptr<BackendSession>(std::make_unique<CpuSession>(*this, capacity));
    }

    // The forward pass over tokens at positions [start, start+T); the caller has validated the
    // input and reserved the cache rows. `cache` holds one (reserved, latentDim) array per layer.
    ForwardResult run(std::span<const int32_t> tokens, int64_t start, bool wantAllLogits,
                      std::vector<std::vector<float>>& cache);

private:
    void attention(int64_t layer, const float* h, int64_t T, int64_t start, std::vector<float>& cacheLayer, float* out);
    void moe(int64_t layer, int64_t moeIndex, const float* h, int64_t T, float* out, ForwardRouting& routing);

    const ModelConfig& m_config;
    const ModelWeights& m_weights;
    BackendOptions m_options;
    ThreadPool m_pool;
    std::mutex m_runMutex;  // the pool runs one job at a time: sessions take turns
    std::vector<float> m_invFreq;
    float m_ropeAmplitude = 1.0f;
    cpu::RouterParams m_router;
    cpu::MlaDims m_dims;
    std::vector<LayerNorms> m_norms;
    std::vector<float> m_finalNorm;
    std::vector<int32_t> m_moeLayers;

    friend class CpuSession;
};

void CpuBackend::attention(int64_t layer, const float* h, int64_t T, int64_t start, std::vector<float>& cacheLayer,
                           float* out) {
    const ModelConfig& c = m_config;
    const AttentionWeights& a = m_weights.layers[static_cast<size_t>(layer)].attn;
    const LayerNorms& norms = m_norms[static_cast<size_t>(layer)];
    const int64_t H = c.numAttentionHeads;
    const int64_t qDim = c.qHeadDim();
    const int64_t latentDim = c.latentCacheDim();

    // q (T, H, nope+rope)
    std::vector<float> q(static_cast<size_t>(T * H * qDim));
    if (a.hasQLora()) {
        const int64_t r = *c.qLoraRank;
        std::vector<float> qA(static_cast<size_t>(T * r));  // (T, q_lora)
        cpu::linear(a.qAProj, h, T, qA.data(), &m_pool);
        for (int64_t t = 0; t < T; ++t) cpu::rmsNorm(qA.data() + t * r, norms.qA.data(), r, kLatentNormEps, qA.data() + t * r);
        cpu::linear(a.qBProj, qA.data(), T, q.data(), &m_pool);
    } else {
        cpu::linear(a.qProj, h, T, q.data(), &m_pool);
    }

    // [c_kv | k_pe] (T, latentDim) straight into the cache rows of positions start..start+T-1.
    float* newRows = cacheLayer.data() + start * latentDim;
    cpu::linear(a.kvAProjWithMqa, h, T, newRows, &m_pool);
    for (int64_t t = 0; t < T; ++t) {
        float* row = newRows + t * latentDim;
        cpu::rmsNorm(row, norms.kvA.data(), c.kvLoraRank, kLatentNormEps, row);                                   // c_kv
        cpu::applyRope(row + c.kvLoraRank, c.qkRopeHeadDim, start + t, m_invFreq.data(), m_ropeAmplitude);  // k_pe
        for (int64_t hd = 0; hd < H; ++hd)
            cpu::applyRope(q.data() + (t * H + hd) * qDim + c.qkNopeHeadDim, c.qkRopeHeadDim, start + t,
                           m_invFreq.data(), m_ropeAmplitude);  // q_pe
    }

    // kv_b_proj widened once per call (H·(nope+v), kvLora): small next to the experts.
    const std::vector<float> kvB = toFloatVector(a.kvBProj);
    std::vector<float> attn(static_cast<size_t>(T * H * c.vHeadDim));  // (T, H, v)
    bool expanded = false;
    switch (m_options.mlaForm) {
    case MlaForm::Expanded: expanded = true; break;
    case MlaForm::Absorbed: expanded = false; break;
    case MlaForm::Auto: expanded = cpu::expandedIsCheaper(m_dims, T); break;
    }
    if (expanded)
        cpu::mlaAttentionExpanded(m_dims, q.data(), T, cacheLayer.data(), start + T, kvB.data(), attn.data(), &m_pool);
    else
        cpu::mlaAttentionAbsorbed(m_dims, q.data(), T, cacheLayer.data(), start + T, kvB.data(), attn.data(), &m_pool);
    cpu::linear(a.oProj, attn.data(), T, out, &m_pool);  // (T, hidden)
}

void CpuBackend::moe(int64_t layer, int64_t moeIndex, const float* h, int64_t T, float* out, ForwardRouting& routing) {
    const ModelConfig& c = m_config;
    const MoeWeights& m = *m_weights.layers[static_cast<size_t>(layer)].moe;
    const int64_t hidden = c.hiddenSize;
    const int64_t E = c.nRoutedExperts;
    const int64_t K = c.numExpertsPerTok;

    // Router logits in fp32 (T, E), then each token's top-k.
    std::vector<float> logits(static_cast<size_t>(T * E));
    cpu::linear(m.gate, h, T, logits.data(), &m_pool);
    std::vector<float> scratch(static_cast<size_t>(E));
    std::vector<std::vector<int64_t>> tokensOf(static_cast<size_t>(E));  // per expert: its tokens
    std::vector<std::vector<float>> weightsOf(static_cast<size_t>(E));
    for (int64_t t = 0; t < T; ++t) {
        int32_t* ids = routing.expertIds.data() + routing.index(t, moeIndex, 0);
        float* w = routing.weights.data() + routing.index(t, moeIndex, 0);
        cpu::routeToken(logits.data() + t * E, m_router, ids, w, scratch.data());
        for (int64_t k = 0; k < K; ++k) {
            tokensOf[static_cast<size_t>(ids[k])].push_back(t);
            weightsOf[static_cast<size_t>(ids[k])].push_back(w[k]);
        }
    }

    // Each expert runs once over the tokens routed to it (its weights are read once per call);
    // outputs are added in expert order.
    std::fill_n(out, T * hidden, 0.0f);
    std::vector<float> xs;
    std::vector<float> ys;
    for (int64_t e = 0; e < E; ++e) {
        const auto& toks = tokensOf[static_cast<size_t>(e)];
        if (toks.empty()) continue;
        const auto n = static_cast<int64_t>(toks.size());
        xs.resize(static_cast<size_t>(n * hidden));  // (n, hidden)
        ys.resize(static_cast<size_t>(n * hidden));  // (n, hidden)
        for (int64_t i = 0; i < n; ++i) std::copy_n(h + toks[i] * hidden, hidden, xs.data() + i * hidden);
        cpu::gatedMlp(m.experts[static_cast<size_t>(e)], xs.data(), n, ys.data(), &m_pool);
        for (int64_t i = 0; i < n; ++i) {
            const float w = weightsOf[static_cast<size_t>(e)][i];
            float* o = out + toks[i] * hidden;
            const float* y = ys.data() + i * hidden;
            for (int64_t j = 0; j < hidden; ++j) o[j] += y[j] * w;
        }
    }
    if (c.nSharedExperts > 0) {
        std::vector<float> shared(static_cast<size_t>(T * hidden));  // (T, hidden)
        cpu::gatedMlp(m.sharedExperts, h, T, shared.data(), &m_pool);
        for (size_t i = 0; i < shared.size(); ++i) out[i] += shared[i];
    }
}

ForwardResult CpuBackend::run(std::span<const int32_t> tokens, int64_t start, bool wantAllLogits,
                              std::vector<std::vector<float>>& cache) {
    const ModelConfig& c = m_config;
    const auto T = static_cast<int64_t>(tokens.size());
    const int64_t hidden = c.hiddenSize;
    const auto eps = static_cast<float>(c.rmsNormEps);

    ForwardResult result;
    result.nTokens = T;
    result.vocab = c.vocabSize;
    result.routing.moeLayers = m_moeLayers;
    result.routing.topK = static_cast<int32_t>(c.numExpertsPerTok);
    result.routing.nTokens = T;
    const size_t routingSize = static_cast<size_t>(T) * m_moeLayers.size() * static_cast<size_t>(c.numExpertsPerTok);
    result.routing.expertIds.assign(routingSize, 0);
    result.routing.weights.assign(routingSize, 0.0f);

    std::vector<float> x(static_cast<size_t>(T * hidden));  // (T, hidden) residual stream
    for (int64_t t = 0; t < T; ++t) readRow(m_weights.embedTokens, tokens[t] * hidden, hidden, x.data() + t * hidden);

    std::vector<float> h(x.size());    // (T, hidden) normed input of a sublayer
    std::vector<float> out(x.size());  // (T, hidden) sublayer output
    int64_t moeIndex = 0;
    for (int64_t l = 0; l < c.numHiddenLayers; ++l) {
        const LayerNorms& norms = m_norms[static_cast<size_t>(l)];
        for (int64_t t = 0; t < T; ++t) cpu::rmsNorm(x.data() + t * hidden, norms.input.data(), hidden, eps, h.data() + t * hidden);
        attention(l, h.data(), T, start, cache[static_cast<size_t>(l)], out.data());
        for (size_t i = 0; i < x.size(); ++i) x[i] += out[i];

        for (int64_t t = 0; t < T; ++t) cpu::rmsNorm(x.data() + t * hidden, norms.post.data(), hidden, eps, h.data() + t * hidden);
        const LayerWeights& L = m_weights.layers[static_cast<size_t>(l)];
        if (L.moe)
            moe(l, moeIndex++, h.data(), T, out.data(), result.routing);
        else
            cpu::gatedMlp(*L.denseMlp, h.data(), T, out.data(), &m_pool);
        for (size_t i = 0; i < x.size(); ++i) x[i] += out[i];
    }

    const int64_t firstRow = wantAllLogits ? 0 : T - 1;
    result.nRows = T - firstRow;
    std::vector<float> normed(static_cast<size_t>(result.nRows * hidden));  // (rows, hidden)
    for (int64_t r = 0; r < result.nRows; ++r)
        cpu::rmsNorm(x.data() + (firstRow + r) * hidden, m_finalNorm.data(), hidden, eps, normed.data() + r * hidden);
    result.logits.resize(static_cast<size_t>(result.nRows * c.vocabSize));  // (rows, vocab)
    cpu::linear(m_weights.lmHead, normed.data(), result.nRows, result.logits.data(), &m_pool);
    return result;
}

CpuSession::CpuSession(CpuBackend& backend, int64_t capacity)
    : m_backend(backend), m_capacity(capacity), m_cache(static_cast<size_t>(backend.m_config.numHiddenLayers)) {}

Result<ForwardResult> CpuSession::forward(std::span<const int32_t> tokens, bool wantAllLogits) {
    const ModelConfig& c = m_backend.m_config;
    DSV2_RETURN_IF_ERROR(validateForwardInput(tokens, c.vocabSize, m_length, m_capacity));
    const int64_t needed = m_length + static_cast<int64_t>(tokens.size());
    const int64_t reserved = std::min(m_capacity, (needed + kCacheBlockTokens - 1) / kCacheBlockTokens * kCacheBlockTokens);
    try {
        if (reserved > m_reservedTokens) {
            for (auto& layer : m_cache) layer.resize(static_cast<size_t>(reserved * c.latentCacheDim()));
            m_reservedTokens = reserved;
        }
    } catch (const std::bad_alloc&) {
        return Status(StatusCode::ResourceExhausted,
                      "out of memory growing the KV cache to " + std::to_string(reserved) + " tokens");
    }
    std::lock_guard<std::mutex> lock(m_backend.m_runMutex);
    ForwardResult result = m_backend.run(tokens, m_length, wantAllLogits, m_cache);
    m_length = needed;
    return result;
}

Status CpuSession::truncate(int64_t length) {
    if (length < 0 || length > m_length)
        return {StatusCode::InvalidArgument, "cannot truncate a session of " + std::to_string(m_length) +
                                                 " tokens to " + std::to_string(length)};
    m_length = length;  // rows past it are overwritten by the next forward
    return Status::ok();
}

CacheStats CpuSession::cacheStats() const {
    return makeCacheStats(m_backend.m_config, "f32", sizeof(float), m_length, m_reservedTokens, m_capacity);
}

}  // namespace

Result<std::unique_ptr<Backend>> createCpuBackend(const ModelConfig& config, const ModelWeights& weights,
                                                  const BackendOptions& options) {
    DSV2_RETURN_IF_ERROR(validateWeights(config, weights).withContext("cpu backend"));
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(config, weights, options));
}

}  // namespace dsv2
