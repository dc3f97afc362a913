#include "cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "cpu/rope.h"
#include "cuda/cublas_gemm.h"
#include "cuda/device_buffer.h"
#include "cuda/device_weights.h"
#include "cuda/embedding.h"
#include "cuda/latent_cache_ops.h"
#include "cuda/mla_attention.h"
#include "cuda/moe_layer.h"
#include "cuda/paged_latent_cache.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope.h"
#include "dsv2/log.h"

namespace dsv2 {
namespace cuda {
namespace {

using bf16 = __nv_bfloat16;

// q_a_layernorm and kv_a_layernorm are built without rms_norm_eps in DeepSeek's and HF's modeling
// code, so they use RMSNorm's default epsilon whatever config.json says (as the CPU backend).
constexpr float kLatentNormEps = 1e-6f;

// Limits of the kernels, checked once against the config.
Status checkSupported(const ModelConfig& c) {
    std::string why;
    if (c.kvLoraRank > 512 || c.kvLoraRank % 2) why = "kv_lora_rank must be even and at most 512";
    else if (c.qkRopeHeadDim % 2 || c.qkNopeHeadDim % 2 || c.vHeadDim % 2) why = "head dims must be even";
    else if (c.qHeadDim() > 256) why = "qk_nope_head_dim + qk_rope_head_dim must be at most 256";
    else if (c.vHeadDim > 128) why = "v_head_dim must be at most 128";
    else if (c.nRoutedExperts > 256) why = "at most 256 routed experts";
    else if (c.numExpertsPerTok > 32) why = "at most 32 experts per token";
    else if (c.topkMethod == TopkMethod::GroupLimitedGreedy && (c.nGroup > 32 || c.nGroup < 1 || c.nRoutedExperts % c.nGroup))
        why = "group_limited_greedy needs n_group <= 32 dividing n_routed_experts";
    else if (c.scoringFunc != "softmax") why = "scoring_func " + c.scoringFunc + " (only softmax)";
    else if (c.hiddenAct != "silu") why = "hidden_act " + c.hiddenAct + " (only silu)";
    if (why.empty()) return Status::ok();
    return Status(StatusCode::Unsupported, "the CUDA backend cannot run this model: " + why);
}

class CudaBackend;

class CudaSession final : public BackendSession {
public:
    CudaSession(CudaBackend& backend, LatentSequence seq, int64_t capacity)
        : m_backend(backend), m_seq(std::move(seq)), m_capacity(capacity) {}
    ~CudaSession() override;
    Result<ForwardResult> forward(std::span<const int32_t> tokens, bool wantAllLogits) override;
    Status truncate(int64_t length) override;
    int64_t length() const override { return m_seq.length; }
    int64_t capacity() const override { return m_capacity; }
    CacheStats cacheStats() const override;

private:
    CudaBackend& m_backend;
    LatentSequence m_seq;
    int64_t m_capacity;
};

class CudaBackend final : public Backend {
public:
    CudaBackend(const ModelConfig& config, const BackendOptions& options) : m_config(config), m_options(options) {}
    ~CudaBackend() override {
        if (m_stream) cudaStreamDestroy(m_stream);
    }

    Status init(const ModelWeights& weights, const CudaBackendExtras& extras);

    BackendKind kind() const override { return BackendKind::Cuda; }
    std::string description() const override { return "cuda bf16, " + m_deviceName; }
    Result<std::unique_ptr<BackendSession>> createSession(int64_t maxContext) override;

    Status forwardChunk(LatentSequence& seq, const int32_t* tokens, int T, int64_t firstLogitRow, float* logits,
                        ForwardRouting& routing, int64_t routingToken0);
    cudaStream_t stream() const { return m_stream; }
    std::mutex& mutex() { return m_mutex; }
    PagedLatentCache& cache() { return m_cache; }
    const ModelConfig& config() const { return m_config; }
    int64_t chunkTokens() const { return m_plan.shape.chunkTokens; }
    const std::vector<int32_t>& moeLayers() const { return m_moeLayers; }
    Status selectDevice() {
        DSV2_CUDA_CHECK(cudaSetDevice(m_options.device));
        return Status::ok();
    }

private:
    Status attention(int layer, int T, int64_t pos0, LatentSequence& seq);
    bool useExpanded(int T, int64_t ctx) const;
    Status tap(int stage, int T, int64_t pos0);

    const ModelConfig& m_config;
    BackendOptions m_options;
    std::string m_deviceName;
    int m_sms = 0;
    MemoryPlan m_plan;
    cudaStream_t m_stream = nullptr;
    CublasHandle m_blas;
    DeviceModelWeights m_weights;
    PagedLatentCache m_cache;
    std::mutex m_mutex;  // one forward at a time (shared scratch, stream, allocator)
    std::vector<int32_t> m_moeLayers;
    std::function<void(const ResidualTap&)> m_residualTap;  // tests only
    std::vector<float> m_tapHost;

    MlaGeometry m_mla;
    MoeGeometry m_moe;
    DeviceBuffer<float> m_invFreq;     // [rope/2]
    DeviceBuffer<int32_t> m_tokens;    // [chunk]
    DeviceBuffer<int32_t> m_positions; // [chunk]
    PinnedBuffer<int32_t> m_hostIds;   // [2·chunk]: tokens then positions
    DeviceBuffer<float> m_residual;    // [chunk, hidden]
    DeviceBuffer<float> m_delta;       // [chunk, hidden]: o_proj / FFN output, added by the next norm
    DeviceBuffer<bf16> m_x;            // [chunk, hidden] normed
    DeviceBuffer<bf16> m_qA;           // [chunk, q_lora]
    DeviceBuffer<bf16> m_q;            // [chunk, H, dqk]
    DeviceBuffer<bf16> m_kvA;          // [chunk, kv_lora + rope]
    DeviceBuffer<bf16> m_attn;         // [chunk, H, v]
    DeviceBuffer<float> m_logits;      // [logitRows, vocab]
    PinnedBuffer<int32_t> m_hostRouteIds;   // [n_moe, chunk, top_k]
    PinnedBuffer<float> m_hostRouteWeights; // [n_moe, chunk, top_k]
    MlaScratch m_mlaScratch;
    FfnScratch m_ffnScratch;
};

int64_t blocksOf(int64_t tokens) { return (tokens + kCacheBlockTokens - 1) / kCacheBlockTokens; }

Status CudaBackend::init(const ModelWeights& weights, const CudaBackendExtras& extras) {
    const ModelConfig& c = m_config;
    DSV2_RETURN_IF_ERROR(checkSupported(c));
    int count = 0;
    const cudaError_t countErr = cudaGetDeviceCount(&count);
    if (countErr != cudaSuccess || count == 0)
        return Status(StatusCode::Unavailable, std::string("no usable NVIDIA GPU for the CUDA backend: ") +
                                                   (countErr != cudaSuccess ? cudaGetErrorString(countErr)
                                                                            : "the runtime lists no device"));
    if (m_options.device < 0 || m_options.device >= count)
        return Status(StatusCode::InvalidArgument, "CUDA device " + std::to_string(m_options.device) +
                                                       " does not exist (" + std::to_string(count) + " found)");
    DSV2_RETURN_IF_ERROR(selectDevice());
    cudaDeviceProp prop{};
    DSV2_CUDA_CHECK(cudaGetDeviceProperties(&prop, m_options.device));
    m_deviceName = prop.name;
    m_sms = prop.multiProcessorCount;
    if (prop.major < 8)
        return Status(StatusCode::Unsupported, m_deviceName + " (compute capability " + std::to_string(prop.major) + "." +
                                                   std::to_string(prop.minor) + ") has no bf16 tensor cores; sm_80+ needed");
    size_t freeBytes = 0, totalBytes = 0;
    DSV2_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));

    MemoryPlan plan;
    auto planned = planMemory(c, extras.shape, m_options.maxContext, static_cast<int64_t>(freeBytes),
                              static_cast<int64_t>(totalBytes), m_deviceName);
    if (!planned.isOk()) return planned.status();
    m_plan = *planned;
    if (extras.planOut) *extras.planOut = m_plan;
    m_residualTap = extras.residualTap;
    logInfo("cuda backend: " + m_deviceName + ", memory plan: " + m_plan.describe() + " of " +
            formatGiB(static_cast<int64_t>(freeBytes)) + " free");

    DSV2_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
    DSV2_ASSIGN_OR_RETURN(m_blas, CublasHandle::create());

    DSV2_ASSIGN_OR_RETURN(m_weights, DeviceModelWeights::upload(c, weights, extras.loadProgress, m_stream));

    LatentCacheLayout layout;
    layout.nLayers = static_cast<int32_t>(c.numHiddenLayers);
    layout.entryDim = static_cast<int32_t>(c.latentCacheDim());
    layout.blockSize = static_cast<int32_t>(kCacheBlockTokens);
    layout.nBlocks = static_cast<int32_t>(blocksOf(m_plan.shape.cacheTokens));
    DSV2_ASSIGN_OR_RETURN(m_cache, PagedLatentCache::create(layout));

    m_mla = {static_cast<int>(c.numAttentionHeads), static_cast<int>(c.qkNopeHeadDim), static_cast<int>(c.qkRopeHeadDim),
             static_cast<int>(c.vHeadDim),          static_cast<int>(c.kvLoraRank),     static_cast<float>(c.softmaxScale())};
    m_moe.hidden = static_cast<int>(c.hiddenSize);
    m_moe.n_experts = static_cast<int>(c.nRoutedExperts);
    m_moe.top_k = static_cast<int>(c.numExpertsPerTok);
    m_moe.expert_inter = static_cast<int>(c.moeIntermediateSize);
    m_moe.group_limited = c.topkMethod == TopkMethod::GroupLimitedGreedy;
    m_moe.n_group = static_cast<int>(std::max<int64_t>(1, c.nGroup));
    m_moe.topk_group = static_cast<int>(std::max<int64_t>(1, c.topkGroup));
    m_moe.norm_topk_prob = c.normTopkProb;
    m_moe.routed_scaling_factor = static_cast<float>(c.routedScalingFactor);
    for (int64_t l = 0; l < c.numHiddenLayers; ++l)
        if (weights.layers[static_cast<size_t>(l)].moe) m_moeLayers.push_back(static_cast<int32_t>(l));

    const auto T = static_cast<size_t>(m_plan.shape.chunkTokens);
    const auto hidden = static_cast<size_t>(c.hiddenSize);
    const auto H = static_cast<size_t>(c.numAttentionHeads);
    DSV2_ASSIGN_OR_RETURN(m_invFreq, DeviceBuffer<float>::allocate(static_cast<size_t>(c.qkRopeHeadDim / 2)));
    const std::vector<float> invFreq = cpu::ropeInvFreq(c);  // the same float32 table as the CPU engine
    DSV2_RETURN_IF_ERROR(m_invFreq.copyFromHost(invFreq.data(), invFreq.size()));
    DSV2_ASSIGN_OR_RETURN(m_tokens, DeviceBuffer<int32_t>::allocate(T));
    DSV2_ASSIGN_OR_RETURN(m_positions, DeviceBuffer<int32_t>::allocate(T));
    DSV2_ASSIGN_OR_RETURN(m_hostIds, PinnedBuffer<int32_t>::allocate(2 * T));
    DSV2_ASSIGN_OR_RETURN(m_residual, DeviceBuffer<float>::allocate(T * hidden));
    DSV2_ASSIGN_OR_RETURN(m_delta, DeviceBuffer<float>::allocate(T * hidden));
    DSV2_ASSIGN_OR_RETURN(m_x, DeviceBuffer<bf16>::allocate(T * hidden));
    DSV2_ASSIGN_OR_RETURN(m_qA, DeviceBuffer<bf16>::allocate(T * static_cast<size_t>(c.qLoraRank.value_or(0))));
    DSV2_ASSIGN_OR_RETURN(m_q, DeviceBuffer<bf16>::allocate(T * H * static_cast<size_t>(c.qHeadDim())));
    DSV2_ASSIGN_OR_RETURN(m_kvA, DeviceBuffer<bf16>::allocate(T * static_cast<size_t>(c.latentCacheDim())));
    DSV2_ASSIGN_OR_RETURN(m_attn, DeviceBuffer<bf16>::allocate(T * H * static_cast<size_t>(c.vHeadDim)));
    DSV2_ASSIGN_OR_RETURN(m_logits, DeviceBuffer<float>::allocate(static_cast<size_t>(m_plan.shape.logitRows * c.vocabSize)));
    const size_t routeSlots = std::max<size_t>(1, m_moeLayers.size() * T * static_cast<size_t>(c.numExpertsPerTok));
    DSV2_ASSIGN_OR_RETURN(m_hostRouteIds, PinnedBuffer<int32_t>::allocate(routeSlots));
    DSV2_ASSIGN_OR_RETURN(m_hostRouteWeights, PinnedBuffer<float>::allocate(routeSlots));
    DSV2_ASSIGN_OR_RETURN(m_mlaScratch,
                          MlaScratch::allocate(m_mla, m_plan.shape.chunkTokens, m_plan.shape.maxSplits,
                                               std::min(m_plan.shape.expandedCtx, m_plan.shape.cacheTokens)));
    const int maxInter = static_cast<int>(std::max(c.intermediateSize, c.nSharedExperts * c.moeIntermediateSize));
    DSV2_ASSIGN_OR_RETURN(m_ffnScratch, FfnScratch::allocate(m_moe, m_plan.shape.chunkTokens, maxInter));
    DSV2_CUDA_CHECK(cudaDeviceSynchronize());
    return Status::ok();
}

Result<std::unique_ptr<BackendSession>> CudaBackend::createSession(int64_t maxContext) {
    int64_t capacity = maxContext > 0 ? maxContext : m_options.maxContext;
    if (capacity <= 0) capacity = std::min(m_config.maxPositionEmbeddings, m_plan.shape.cacheTokens);
    if (capacity > m_config.maxPositionEmbeddings)
        return Status(StatusCode::InvalidArgument, "a context of " + std::to_string(capacity) +
                                                       " tokens exceeds the model's " +
                                                       std::to_string(m_config.maxPositionEmbeddings) +
                                                       " (max_position_embeddings)");
    if (capacity > m_plan.shape.cacheTokens)
        return Status(StatusCode::OutOfRange, "a context of " + std::to_string(capacity) +
                                                  " tokens exceeds the GPU KV cache of " +
                                                  std::to_string(m_plan.shape.cacheTokens) + " tokens");
    std::lock_guard<std::mutex> lock(m_mutex);
    DSV2_RETURN_IF_ERROR(selectDevice());
    DSV2_ASSIGN_OR_RETURN(LatentSequence seq, m_cache.newSequence(capacity));
    return std::unique_ptr<BackendSession>(std::make_unique<CudaSession>(*this, std::move(seq), capacity));
}

bool CudaBackend::useExpanded(int T, int64_t ctx) const {
    const bool fits = ctx <= m_mlaScratch.maxExpandedCtx();
    switch (m_options.mlaForm) {
    case MlaForm::Expanded: return fits;  // checked by the caller
    case MlaForm::Absorbed: return false;
    case MlaForm::Auto: break;
    }
    // Prefill: the flash kernel over expanded keys; a handful of new tokens: absorbed.
    return fits && T >= 16;
}

Status CudaBackend::attention(int layer, int T, int64_t pos0, LatentSequence& seq) {
    const ModelConfig& c = m_config;
    const DeviceAttentionWeights& a = m_weights.layers[static_cast<size_t>(layer)].attn;
    cublasHandle_t blas = m_blas.get();
    const int64_t hidden = c.hiddenSize, H = c.numAttentionHeads, dqk = c.qHeadDim(), entry = c.latentCacheDim();
    const float eps = kLatentNormEps;

    // q [T, H, dqk]
    if (c.qLoraRank) {
        const int64_t r = *c.qLoraRank;
        DSV2_RETURN_IF_ERROR(linear(blas, m_x.data(), hidden, a.qAProj, m_qA.data(), GemmType::BF16, r, T, r, hidden, m_stream));
        RmsNormParams n;
        n.n_rows = T;
        n.n_cols = static_cast<int>(r);
        n.x = m_qA.data();
        n.x_stride = r;
        n.weight = a.qANorm;
        n.out = m_qA.data();
        n.out_stride = r;
        n.eps = eps;
        DSV2_RETURN_IF_ERROR(launchRmsNorm(n, m_stream));
        DSV2_RETURN_IF_ERROR(linear(blas, m_qA.data(), r, a.qBProj, m_q.data(), GemmType::BF16, H * dqk, T, H * dqk, r, m_stream));
    } else {
        DSV2_RETURN_IF_ERROR(linear(blas, m_x.data(), hidden, a.qProj, m_q.data(), GemmType::BF16, H * dqk, T, H * dqk, hidden, m_stream));
    }
    // [c_kv | k_pe] [T, entry]; kv_a_layernorm on c_kv, RoPE on k_pe and q_pe.
    DSV2_RETURN_IF_ERROR(linear(blas, m_x.data(), hidden, a.kvAProj, m_kvA.data(), GemmType::BF16, entry, T, entry, hidden, m_stream));
    RmsNormParams n;
    n.n_rows = T;
    n.n_cols = static_cast<int>(c.kvLoraRank);
    n.x = m_kvA.data();
    n.x_stride = entry;
    n.weight = a.kvANorm;
    n.out = m_kvA.data();
    n.out_stride = entry;
    n.eps = eps;
    DSV2_RETURN_IF_ERROR(launchRmsNorm(n, m_stream));
    RopeParams rk;
    rk.n_tokens = T;
    rk.n_heads = 1;
    rk.rope_dim = static_cast<int>(c.qkRopeHeadDim);
    rk.x = m_kvA.data() + c.kvLoraRank;
    rk.token_stride = entry;
    rk.head_stride = entry;
    rk.positions = m_positions.data();
    rk.inv_freq = m_invFreq.data();
    rk.amplitude = static_cast<float>(c.ropeAmplitude());
    DSV2_RETURN_IF_ERROR(launchRope(rk, m_stream));
    RopeParams rq = rk;
    rq.n_heads = static_cast<int>(H);
    rq.x = m_q.data() + c.qkNopeHeadDim;
    rq.token_stride = H * dqk;
    rq.head_stride = dqk;
    DSV2_RETURN_IF_ERROR(launchRope(rq, m_stream));

    const PagedCacheRef ref{m_cache.layerBase(layer), seq.deviceTable.data(), static_cast<int>(kCacheBlockTokens),
                            static_cast<int>(entry)};
    LatentCacheWriteParams w;
    w.cache = ref;
    w.n_tokens = T;
    w.pos0 = pos0;
    w.src = m_kvA.data();
    w.src_stride = entry;
    DSV2_RETURN_IF_ERROR(launchLatentCacheWrite(w, m_stream));

    MlaCall call;
    call.q = m_q.data();
    call.n_q = T;
    call.q_pos0 = pos0;
    call.cache = ref;
    call.kv_b = a.kvBProj;
    call.out = m_attn.data();
    const int64_t ctx = pos0 + T;
    if (m_options.mlaForm == MlaForm::Expanded && ctx > m_mlaScratch.maxExpandedCtx())
        return Status(StatusCode::Unsupported, "the expanded MLA form was forced, but a context of " +
                                                   std::to_string(ctx) + " tokens exceeds its workspace (" +
                                                   std::to_string(m_mlaScratch.maxExpandedCtx()) + ")");
    if (useExpanded(T, ctx))
        DSV2_RETURN_IF_ERROR(mlaAttentionExpanded(blas, m_mla, call, m_mlaScratch, m_stream));
    else
        DSV2_RETURN_IF_ERROR(mlaAttentionAbsorbed(blas, m_mla, call, m_mlaScratch, m_sms, m_stream));
    // o_proj: delta [T, hidden] fp32
    return linear(blas, m_attn.data(), H * c.vHeadDim, a.oProj, m_delta.data(), GemmType::F32, hidden, T, hidden,
                  H * c.vHeadDim, m_stream);
}

Status CudaBackend::tap(int stage, int T, int64_t pos0) {
    if (!m_residualTap) return Status::ok();
    const auto n = static_cast<size_t>(T) * static_cast<size_t>(m_config.hiddenSize);
    try {
        m_tapHost.resize(n);
    } catch (const std::bad_alloc&) {
        return Status(StatusCode::ResourceExhausted, "out of host memory for the residual tap");
    }
    DSV2_CUDA_CHECK(cudaMemcpyAsync(m_tapHost.data(), m_residual.data(), sizeof(float) * n, cudaMemcpyDeviceToHost, m_stream));
    DSV2_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    ResidualTap t;
    t.pos0 = pos0;
    t.nTokens = T;
    t.stage = stage;
    t.expandedAttention = useExpanded(T, pos0 + T);
    t.residual = m_tapHost.data();
    m_residualTap(t);
    return Status::ok();
}

// One chunk of T tokens at positions seq.length .. +T (blocks reserved, table synced). Writes the
// logits of rows [firstLogitRow, T) into `logits` (host; none when firstLogitRow == T), the routing
// into `routing` at token offset routingToken0.
Status CudaBackend::forwardChunk(LatentSequence& seq, const int32_t* tokens, int T, int64_t firstLogitRow,
                                 float* logits, ForwardRouting& routing, int64_t routingToken0) {
    const ModelConfig& c = m_config;
    const int64_t hidden = c.hiddenSize;
    const int64_t pos0 = seq.length;
    const auto eps = static_cast<float>(c.rmsNormEps);
    cublasHandle_t blas = m_blas.get();

    for (int t = 0; t < T; ++t) {
        m_hostIds[static_cast<size_t>(t)] = tokens[t];
        m_hostIds[static_cast<size_t>(T + t)] = static_cast<int32_t>(pos0 + t);
    }
    DSV2_CUDA_CHECK(cudaMemcpyAsync(m_tokens.data(), m_hostIds.data(), sizeof(int32_t) * T, cudaMemcpyHostToDevice, m_stream));
    DSV2_CUDA_CHECK(cudaMemcpyAsync(m_positions.data(), m_hostIds.data() + T, sizeof(int32_t) * T, cudaMemcpyHostToDevice,
                                    m_stream));
    EmbeddingParams e;
    e.n_tokens = T;
    e.n_embd = static_cast<int>(hidden);
    e.n_vocab = c.vocabSize;
    e.tokens = m_tokens.data();
    e.table = m_weights.embed;
    e.out = m_residual.data();
    e.out_stride = hidden;
    DSV2_RETURN_IF_ERROR(launchEmbedding(e, m_stream));

    RmsNormParams norm;
    norm.n_rows = T;
    norm.n_cols = static_cast<int>(hidden);
    norm.residual = m_residual.data();
    norm.residual_stride = hidden;
    norm.delta_stride = hidden;
    norm.out = m_x.data();
    norm.out_stride = hidden;
    norm.eps = eps;
    const size_t K = static_cast<size_t>(c.numExpertsPerTok);
    size_t moeIndex = 0;
    for (int l = 0; l < static_cast<int>(c.numHiddenLayers); ++l) {
        const DeviceLayerWeights& L = m_weights.layers[static_cast<size_t>(l)];
        norm.delta = l == 0 ? nullptr : m_delta.data();  // the previous layer's FFN output
        norm.weight = L.inputNorm;
        DSV2_RETURN_IF_ERROR(launchRmsNorm(norm, m_stream));
        DSV2_RETURN_IF_ERROR(tap(2 * l, T, pos0));  // the residual add of the previous FFN is done
        DSV2_RETURN_IF_ERROR(attention(l, T, pos0, seq));
        norm.delta = m_delta.data();
        norm.weight = L.postNorm;
        DSV2_RETURN_IF_ERROR(launchRmsNorm(norm, m_stream));
        DSV2_RETURN_IF_ERROR(tap(2 * l + 1, T, pos0));
        if (L.moe.gate) {
            DSV2_RETURN_IF_ERROR(moeForward(blas, m_moe, L.moe, m_x.data(), T, m_delta.data(), m_ffnScratch, m_stream));
            // Routing records: [T, K] ids and weights to the host, asynchronously.
            const size_t slot = moeIndex * static_cast<size_t>(m_plan.shape.chunkTokens) * K;
            DSV2_CUDA_CHECK(cudaMemcpyAsync(m_hostRouteIds.data() + slot, m_ffnScratch.topkIds.data(),
                                            sizeof(int32_t) * T * K, cudaMemcpyDeviceToHost, m_stream));
            DSV2_CUDA_CHECK(cudaMemcpyAsync(m_hostRouteWeights.data() + slot, m_ffnScratch.topkWeights.data(),
                                            sizeof(float) * T * K, cudaMemcpyDeviceToHost, m_stream));
            ++moeIndex;
        } else {
            DSV2_RETURN_IF_ERROR(mlpForward(blas, L.dense, static_cast<int>(hidden), m_x.data(), hidden, T,
                                            m_delta.data(), hidden, 0.0f, m_ffnScratch, m_stream));
        }
    }
    norm.delta = m_delta.data();
    norm.weight = m_weights.finalNorm;
    DSV2_RETURN_IF_ERROR(launchRmsNorm(norm, m_stream));
    DSV2_RETURN_IF_ERROR(tap(2 * static_cast<int>(c.numHiddenLayers), T, pos0));

    // lm_head over the requested rows, logitRows at a time, fp32 logits straight to the host.
    const int64_t first = firstLogitRow;
    const int64_t vocab = c.vocabSize;
    for (int64_t r0 = first; r0 < T; r0 += m_plan.shape.logitRows) {
        const int64_t rows = std::min<int64_t>(m_plan.shape.logitRows, T - r0);
        DSV2_RETURN_IF_ERROR(linear(blas, m_x.data() + r0 * hidden, hidden, m_weights.lmHead, m_logits.data(),
                                    GemmType::F32, vocab, rows, vocab, hidden, m_stream));
        DSV2_CUDA_CHECK(cudaMemcpyAsync(logits + (r0 - first) * vocab, m_logits.data(), sizeof(float) * rows * vocab,
                                        cudaMemcpyDeviceToHost, m_stream));
        DSV2_CUDA_CHECK(cudaStreamSynchronize(m_stream));  // m_logits is reused by the next rows
    }
    DSV2_CUDA_CHECK(cudaStreamSynchronize(m_stream));

    for (size_t m = 0; m < m_moeLayers.size(); ++m) {
        const size_t slot = m * static_cast<size_t>(m_plan.shape.chunkTokens) * K;
        for (int t = 0; t < T; ++t)
            for (size_t k = 0; k < K; ++k) {
                const int64_t dst = routing.index(routingToken0 + t, static_cast<int64_t>(m), static_cast<int64_t>(k));
                routing.expertIds[static_cast<size_t>(dst)] = m_hostRouteIds[slot + static_cast<size_t>(t) * K + k];
                routing.weights[static_cast<size_t>(dst)] = m_hostRouteWeights[slot + static_cast<size_t>(t) * K + k];
            }
    }
    return Status::ok();
}

CudaSession::~CudaSession() {
    std::lock_guard<std::mutex> lock(m_backend.mutex());
    m_backend.cache().release(m_seq);
}

Result<ForwardResult> CudaSession::forward(std::span<const int32_t> tokens, bool wantAllLogits) {
    const ModelConfig& c = m_backend.config();
    DSV2_RETURN_IF_ERROR(validateForwardInput(tokens, c.vocabSize, m_seq.length, m_capacity));
    std::lock_guard<std::mutex> lock(m_backend.mutex());
    DSV2_RETURN_IF_ERROR(m_backend.selectDevice());
    const int64_t start = m_seq.length;
    const auto T = static_cast<int64_t>(tokens.size());
    DSV2_RETURN_IF_ERROR(m_backend.cache().reserve(m_seq, start + T));

    ForwardResult result;
    result.nTokens = T;
    result.nRows = wantAllLogits ? T : 1;
    result.vocab = c.vocabSize;
    result.routing.moeLayers = m_backend.moeLayers();
    result.routing.topK = static_cast<int32_t>(c.numExpertsPerTok);
    result.routing.nTokens = T;
    const size_t routingSize = static_cast<size_t>(T) * result.routing.moeLayers.size() * static_cast<size_t>(c.numExpertsPerTok);
    result.routing.expertIds.assign(routingSize, 0);
    result.routing.weights.assign(routingSize, 0.0f);
    try {
        result.logits.resize(static_cast<size_t>(result.nRows * c.vocabSize));
    } catch (const std::bad_alloc&) {
        m_backend.cache().truncate(m_seq, start);
        return Status(StatusCode::ResourceExhausted, "out of host memory for the logits");
    }

    // The block table goes up on the compute stream, so the kernels below see it.
    Status st = m_backend.cache().syncTable(m_seq, m_backend.stream());
    const int64_t chunk = m_backend.chunkTokens();
    for (int64_t c0 = 0; st.isOk() && c0 < T; c0 += chunk) {
        const int n = static_cast<int>(std::min(chunk, T - c0));
        const bool last = c0 + n == T;
        // Rows this chunk contributes: all of them, or only the very last row of the call.
        const int64_t firstRow = wantAllLogits ? 0 : (last ? n - 1 : n);
        float* out = wantAllLogits ? result.logits.data() + c0 * c.vocabSize : result.logits.data();
        st = m_backend.forwardChunk(m_seq, tokens.data() + c0, n, firstRow, out, result.routing, c0);
        if (st.isOk()) st = m_backend.cache().commit(m_seq, m_seq.length + n);
    }
    if (!st.isOk()) {
        m_backend.cache().truncate(m_seq, start);  // the cache is unchanged on error
        (void)cudaGetLastError();
        return st.withContext("cuda forward");
    }
    return result;
}

Status CudaSession::truncate(int64_t length) {
    if (length < 0 || length > m_seq.length)
        return {StatusCode::InvalidArgument, "cannot truncate a session of " + std::to_string(m_seq.length) +
                                                 " tokens to " + std::to_string(length)};
    std::lock_guard<std::mutex> lock(m_backend.mutex());
    m_backend.cache().truncate(m_seq, length);
    return Status::ok();
}

CacheStats CudaSession::cacheStats() const {
    return makeCacheStats(m_backend.config(), "bf16", 2, m_seq.length,
                          static_cast<int64_t>(m_seq.blocks.size()) * kCacheBlockTokens, m_capacity);
}

}  // namespace

Result<std::unique_ptr<Backend>> createCudaBackendWithExtras(const ModelConfig& config, const ModelWeights& weights,
                                                             const BackendOptions& options,
                                                             const CudaBackendExtras& extras) {
    auto backend = std::make_unique<CudaBackend>(config, options);
    DSV2_RETURN_IF_ERROR(backend->init(weights, extras).withContext("cuda backend"));
    return std::unique_ptr<Backend>(std::move(backend));
}

int64_t deviceMemoryInUse() {
    size_t freeBytes = 0, totalBytes = 0;
    if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) return -1;
    return static_cast<int64_t>(totalBytes - freeBytes);
}

}  // namespace cuda

Result<std::unique_ptr<Backend>> createCudaBackend(const ModelConfig& config, const ModelWeights& weights,
                                                   const BackendOptions& options) {
    cuda::CudaBackendExtras extras;
    uint64_t lastTenth = 0;
    extras.loadProgress = [&lastTenth, &options](uint64_t done, uint64_t total) {
        const uint64_t tenth = total ? done * 10 / total : 10;
        if (tenth != lastTenth) {
            lastTenth = tenth;
            logInfo("cuda backend: uploaded " + std::to_string(tenth * 10) + "% of the weights");
        }
        return options.loadProgress ? options.loadProgress(done, total) : true;
    };
    return cuda::createCudaBackendWithExtras(config, weights, options, extras);
}

}  // namespace dsv2
