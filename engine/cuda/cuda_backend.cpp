#include "cuda/cuda_backend.h"

#include "cuda/cuda_backend_impl.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "cpu/rope.h"
#include "cuda/attention_prologue_fused.h"
#include "cuda/cublas_gemm.h"
#include "cuda/device_buffer.h"
#include "cuda/device_weights.h"
#include "cuda/embedding.h"
#include "cuda/gemv.h"
#include "cuda/latent_cache_ops.h"
#include "cuda/mla_attention.h"
#include "cuda/moe_decode.h"
#include "cuda/moe_layer.h"
#include "cuda/moe_router.h"
#include "cuda/moe_router_fused.h"
#include "cuda/multi_gpu_backend.h"
#include "cuda/nccl_comm.h"
#include "cuda/paged_latent_cache.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope.h"
#include "dsv2/log.h"

namespace dsv2 {
namespace cuda {
namespace {

// q_a_layernorm and kv_a_layernorm are built without rms_norm_eps in DeepSeek's and HF's modeling
// code, so they use RMSNorm's default epsilon whatever config.json says (as the CPU backend).
constexpr float kLatentNormEps = 1e-6f;

// Limits of the kernels, checked once against the config.
Status checkSupported(const ModelConfig& c) {
    std::string why;
    if (c.kvLoraRank > 512 || c.kvLoraRank % 2)
        why = "kv_lora_rank must be even and at most 512";
    else if (c.qkRopeHeadDim % 2 || c.qkNopeHeadDim % 2 || c.vHeadDim % 2)
        why = "head dims must be even";
    else if (c.qHeadDim() > 256)
        why = "qk_nope_head_dim + qk_rope_head_dim must be at most 256";
    else if (c.vHeadDim > 128)
        why = "v_head_dim must be at most 128";
    else if (c.nRoutedExperts > 256)
        why = "at most 256 routed experts";
    else if (c.numExpertsPerTok > 32)
        why = "at most 32 experts per token";
    else if (c.topkMethod == TopkMethod::GroupLimitedGreedy &&
             (c.nGroup > 32 || c.nGroup < 1 || c.nRoutedExperts % c.nGroup))
        why = "group_limited_greedy needs n_group <= 32 dividing n_routed_experts";
    else if (c.scoringFunc != "softmax")
        why = "scoring_func " + c.scoringFunc + " (only softmax)";
    else if (c.hiddenAct != "silu")
        why = "hidden_act " + c.hiddenAct + " (only silu)";
    if (why.empty()) return Status::ok();
    return Status(StatusCode::Unsupported, "the CUDA backend cannot run this model: " + why);
}

int64_t blocksOf(int64_t tokens) { return (tokens + kCacheBlockTokens - 1) / kCacheBlockTokens; }

}  // namespace

Status CudaBackend::init(const ModelWeights& weights, const CudaBackendExtras& extras) {
    const ModelConfig& c = m_config;
    DSV2_RETURN_IF_ERROR(checkSupported(c));
    int count = 0;
    const cudaError_t countErr = cudaGetDeviceCount(&count);
    if (countErr != cudaSuccess || count == 0)
        return Status(StatusCode::Unavailable,
                      std::string("no usable NVIDIA GPU for the CUDA backend: ") +
                          (countErr != cudaSuccess ? cudaGetErrorString(countErr) : "the runtime lists no device"));
    if (m_options.device < 0 || m_options.device >= count)
        return Status(StatusCode::InvalidArgument, "CUDA device " + std::to_string(m_options.device) +
                                                       " does not exist (" + std::to_string(count) + " found)");
    DSV2_RETURN_IF_ERROR(selectDevice());
    cudaDeviceProp prop{};
    DSV2_CUDA_CHECK(cudaGetDeviceProperties(&prop, m_options.device));
    m_deviceName = prop.name;
    m_sms = prop.multiProcessorCount;
    if (prop.major < 8)
        return Status(StatusCode::Unsupported, m_deviceName + " (compute capability " + std::to_string(prop.major) +
                                                   "." + std::to_string(prop.minor) +
                                                   ") has no bf16 tensor cores; sm_80+ needed");
    size_t freeBytes = 0, totalBytes = 0;
    DSV2_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));

    const ModelConfig& model = extras.model ? *extras.model : c;  // the whole model's config
    m_slice = extras.slice ? *extras.slice : parallel::wholeModel(c);
    m_nccl = extras.nccl;
    auto planned = planMemory(c, extras.shape, m_options.maxContext, static_cast<int64_t>(freeBytes),
                              static_cast<int64_t>(totalBytes), m_deviceName,
                              DeviceModelWeights::bytesFor(model, weights, m_slice));
    if (!planned.isOk()) return planned.status();
    m_plan = *planned;
    if (extras.planOut) *extras.planOut = m_plan;
    m_residualTap = extras.residualTap;
    logInfo("cuda backend: " + m_deviceName + ", memory plan: " + m_plan.describe() + " of " +
            formatGiB(static_cast<int64_t>(freeBytes)) + " free");

    DSV2_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
    DSV2_ASSIGN_OR_RETURN(m_blas, CublasHandle::create());

    DSV2_ASSIGN_OR_RETURN(m_weights,
                          DeviceModelWeights::upload(model, weights, m_slice, extras.loadProgress, m_stream));
    if (!m_slice.ownsExpert.empty()) {  // several GPUs: which routed experts are here
        DSV2_ASSIGN_OR_RETURN(m_expertHere, DeviceBuffer<uint8_t>::allocate(m_slice.ownsExpert.size()));
        DSV2_RETURN_IF_ERROR(m_expertHere.copyFromHost(m_slice.ownsExpert.data(), m_slice.ownsExpert.size()));
        for (DeviceLayerWeights& L : m_weights.layers)
            if (L.moe.gate) L.moe.expertHere = m_expertHere.data();
    }

    LatentCacheLayout layout;
    layout.nLayers = static_cast<int32_t>(c.numHiddenLayers);
    layout.entryDim = static_cast<int32_t>(c.latentCacheDim());
    layout.blockSize = static_cast<int32_t>(kCacheBlockTokens);
    layout.nBlocks = static_cast<int32_t>(blocksOf(m_plan.shape.cacheTokens));
    DSV2_ASSIGN_OR_RETURN(m_cache, PagedLatentCache::create(layout));

    m_mla = {static_cast<int>(c.numAttentionHeads), static_cast<int>(c.qkNopeHeadDim),
             static_cast<int>(c.qkRopeHeadDim),     static_cast<int>(c.vHeadDim),
             static_cast<int>(c.kvLoraRank),        static_cast<float>(c.softmaxScale())};
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
    DSV2_ASSIGN_OR_RETURN(m_residualAlt, DeviceBuffer<float>::allocate(hidden));  // one token (folded norms)
    m_residualNow = m_residual.data();
    DSV2_ASSIGN_OR_RETURN(m_delta, DeviceBuffer<float>::allocate(T * hidden));
    DSV2_ASSIGN_OR_RETURN(m_x, DeviceBuffer<bf16>::allocate(T * hidden));
    DSV2_ASSIGN_OR_RETURN(m_qA, DeviceBuffer<bf16>::allocate(T * static_cast<size_t>(c.qLoraRank.value_or(0))));
    DSV2_ASSIGN_OR_RETURN(m_q, DeviceBuffer<bf16>::allocate(T * H * static_cast<size_t>(c.qHeadDim())));
    DSV2_ASSIGN_OR_RETURN(m_kvA, DeviceBuffer<bf16>::allocate(T * static_cast<size_t>(c.latentCacheDim())));
    DSV2_ASSIGN_OR_RETURN(m_attn, DeviceBuffer<bf16>::allocate(T * H * static_cast<size_t>(c.vHeadDim)));
    DSV2_ASSIGN_OR_RETURN(m_logits,
                          DeviceBuffer<float>::allocate(static_cast<size_t>(m_plan.shape.logitRows * c.vocabSize)));
    const size_t routeSlots = std::max<size_t>(1, m_moeLayers.size() * T * static_cast<size_t>(c.numExpertsPerTok));
    DSV2_ASSIGN_OR_RETURN(m_hostRouteIds, PinnedBuffer<int32_t>::allocate(routeSlots));
    DSV2_ASSIGN_OR_RETURN(m_hostRouteWeights, PinnedBuffer<float>::allocate(routeSlots));
    DSV2_ASSIGN_OR_RETURN(m_mlaScratch,
                          MlaScratch::allocate(m_mla, m_plan.shape.chunkTokens, m_plan.shape.maxSplits,
                                               std::min(m_plan.shape.expandedCtx, m_plan.shape.cacheTokens),
                                               mlaPrefillMayUseGemmForm(m_mla)));
    const int maxInter = static_cast<int>(std::max(c.intermediateSize, c.nSharedExperts * c.moeIntermediateSize));
    DSV2_ASSIGN_OR_RETURN(m_ffnScratch, FfnScratch::allocate(m_moe, m_plan.shape.chunkTokens, maxInter));
    DSV2_ASSIGN_OR_RETURN(m_hostLogits, PinnedBuffer<float>::allocate(static_cast<size_t>(m_slice.vocabCount)));

    // Device tables of every expert's weights, so the one-token MoE path picks experts on the GPU.
    const auto nExperts = static_cast<size_t>(std::max<int64_t>(c.nRoutedExperts, 1));
    std::vector<const bf16*> tables(std::max<size_t>(1, m_moeLayers.size() * 2 * nExperts), nullptr);
    for (size_t m = 0; m < m_moeLayers.size(); ++m) {
        const MoeDeviceWeights& moe = m_weights.layers[static_cast<size_t>(m_moeLayers[m])].moe;
        for (size_t e = 0; e < moe.experts.size(); ++e) {
            tables[(2 * m) * nExperts + e] = moe.experts[e].gate_up;
            tables[(2 * m + 1) * nExperts + e] = moe.experts[e].down;
        }
    }
    const size_t decodeRouteSlots = std::max<size_t>(1, m_moeLayers.size() * static_cast<size_t>(c.numExpertsPerTok));
    DSV2_ASSIGN_OR_RETURN(m_decodeRouteIds, DeviceBuffer<int32_t>::allocate(decodeRouteSlots));
    DSV2_ASSIGN_OR_RETURN(m_decodeRouteWeights, DeviceBuffer<float>::allocate(decodeRouteSlots));
    {  // valid, distinct ids before any router ran (DSV2_DECODE_SKIP=router): experts 0 .. top_k - 1
        std::vector<int32_t> ids(decodeRouteSlots);
        for (size_t i = 0; i < ids.size(); ++i)
            ids[i] = static_cast<int32_t>(i % static_cast<size_t>(std::max<int64_t>(c.numExpertsPerTok, 1)));
        DSV2_RETURN_IF_ERROR(m_decodeRouteIds.copyFromHost(ids.data(), ids.size()));
        DSV2_RETURN_IF_ERROR(m_decodeRouteWeights.zero());
    }
    DSV2_ASSIGN_OR_RETURN(m_expertTables, DeviceBuffer<const bf16*>::allocate(tables.size()));
    DSV2_RETURN_IF_ERROR(m_expertTables.copyFromHost(tables.data(), tables.size()));

    // One-token steps split the context into a fixed number of ranges (the kernel sizes them from
    // the position on the device): enough blocks to cover the GPU twice.
    const int headGroups = static_cast<int>((c.numAttentionHeads + 7) / 8);
    m_decodeSplits =
        std::clamp(2 * m_sms / std::max(headGroups, 1), 1,
                   static_cast<int>(std::min<int64_t>(m_mlaScratch.maxSplits(), m_mlaScratch.partialRows())));
    if (const char* env = std::getenv("DSV2_CUDA_GRAPHS"); env && std::string(env) == "0") m_graphsEnabled = false;
    if (const char* env = std::getenv("DSV2_FOLD_NORMS")) m_foldNorms = std::string(env) == "1";
    if (const char* env = std::getenv("DSV2_MOE_EARLY_SHARED")) m_moeEarlyShared = std::string(env) != "0";
    if (const char* env = std::getenv("DSV2_MLA_EARLY_TILES")) m_mlaEarlyTiles = std::string(env) != "0";
    if (const char* env = std::getenv("DSV2_FUSE_PROLOGUE")) m_fusePrologue = std::string(env) != "0";
    if (const char* env = std::getenv("DSV2_MOE_EARLY_DOWN")) m_moeEarlyDown = std::string(env) != "0";
    if (const char* env = std::getenv("DSV2_MLA_MERGE_IN_V")) m_mergeInVMaxSplits = std::atoi(env);
    if (const char* env = std::getenv("DSV2_PDL_EARLY_TRIGGER")) DSV2_RETURN_IF_ERROR(parseEarlyTrigger(env));
    if (const char* env = std::getenv("DSV2_DECODE_SKIP")) DSV2_RETURN_IF_ERROR(parseDecodeSkip(env));
    DSV2_CUDA_CHECK(cudaDeviceSynchronize());
    return Status::ok();
}

Result<std::unique_ptr<BackendSession>> CudaBackend::createSession(int64_t maxContext) {
    int64_t capacity = maxContext > 0 ? maxContext : m_options.maxContext;
    if (capacity <= 0) capacity = std::min(m_config.maxPositionEmbeddings, m_plan.shape.cacheTokens);
    if (capacity > m_config.maxPositionEmbeddings)
        return Status(StatusCode::InvalidArgument,
                      "a context of " + std::to_string(capacity) + " tokens exceeds the model's " +
                          std::to_string(m_config.maxPositionEmbeddings) + " (max_position_embeddings)");
    if (capacity > m_plan.shape.cacheTokens)
        return Status(StatusCode::OutOfRange, "a context of " + std::to_string(capacity) +
                                                  " tokens exceeds the GPU KV cache of " +
                                                  std::to_string(m_plan.shape.cacheTokens) + " tokens");
    std::lock_guard<std::mutex> lock(m_mutex);
    DSV2_RETURN_IF_ERROR(selectDevice());
    DSV2_ASSIGN_OR_RETURN(LatentSequence seq, m_cache.newSequence(capacity));
    return std::unique_ptr<BackendSession>(std::make_unique<CudaSession>(*this, std::move(seq), capacity));
}

namespace {

struct NamedBit {
    const char* name;
    unsigned bit;
};

// A comma list of names as the OR of their bits; an unknown name is refused, naming the known ones.
template <size_t N>
Result<unsigned> parseNamedBits(const char* variable, const char* what, const std::string& list,
                                const NamedBit (&names)[N]) {
    unsigned bits = 0;
    size_t begin = 0;
    while (begin <= list.size()) {
        const size_t end = std::min(list.find(',', begin), list.size());
        const std::string name = list.substr(begin, end - begin);
        const auto* hit =
            std::find_if(std::begin(names), std::end(names), [&](const NamedBit& n) { return name == n.name; });
        if (!name.empty() && hit == std::end(names)) {
            std::string known;
            for (const NamedBit& n : names) known += std::string(known.empty() ? "" : ", ") + n.name;
            return Status(StatusCode::InvalidArgument,
                          std::string(variable) + ": unknown " + what + " '" + name + "' (" + known + ")");
        }
        if (!name.empty()) bits |= hit->bit;
        begin = end + 1;
    }
    return bits;
}

}  // namespace

// DSV2_DECODE_SKIP=norm,qkv,mla,oproj,router,moe,lmhead (any of them): a diagnostic for what each
// stage of a one-token step costs inside the CUDA graph, where PDL overlaps neighbouring kernels
// and a serialised per-kernel profile (ncu) overstates each one. The listed stages are not
// launched at all, so their outputs keep stale (finite) values and the tokens are wrong; the drop in
// step time against a full run is the stage's cost. The routing buffers start with experts
// 0 .. top_k − 1, so a skipped router leaves valid, distinct expert ids. Prefill and multi-token
// steps are untouched.
Status CudaBackend::parseDecodeSkip(const std::string& list) {
    static constexpr NamedBit kStages[] = {{"norm", kSkipNorm},    {"qkv", kSkipQkv},       {"mla", kSkipMla},
                                           {"oproj", kSkipOProj},  {"router", kSkipRouter}, {"moe", kSkipMoe},
                                           {"lmhead", kSkipLmHead}};
    DSV2_ASSIGN_OR_RETURN(m_decodeSkip, parseNamedBits("DSV2_DECODE_SKIP", "stage", list, kStages));
    if (m_decodeSkip)
        logWarn("DSV2_DECODE_SKIP=" + list + ": one-token steps leave stages out (timing only: wrong tokens)");
    return Status::ok();
}

// DSV2_PDL_EARLY_TRIGGER (cuda_backend_impl.h): "0" none, "1" the default, or a list of sites.
Status CudaBackend::parseEarlyTrigger(const std::string& list) {
    if (list == "0" || list == "1") {
        if (list == "0") m_earlyTrigger = 0;
        return Status::ok();
    }
    static constexpr NamedBit kSites[] = {{"norm", kEarlyNorm}, {"v", kEarlyV},         {"qkv", kEarlyQkv},
                                          {"mla", kEarlyMla},   {"oproj", kEarlyOProj}, {"down", kEarlyDown}};
    DSV2_ASSIGN_OR_RETURN(m_earlyTrigger, parseNamedBits("DSV2_PDL_EARLY_TRIGGER", "site", list, kSites));
    return Status::ok();
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

// The residual add + RMSNorm of a sublayer input on the current residual buffer: ready to be
// folded into a kernel (residual_out is the other buffer) or run by normNow().
ResidualNorm CudaBackend::residualNorm(const bf16* weight, const float* delta, float eps) {
    ResidualNorm r;
    r.residual = m_residualNow;
    r.delta = delta;
    r.residual_out = m_residualNow == m_residual.data() ? m_residualAlt.data() : m_residual.data();
    r.weight = weight;
    r.eps = eps;
    return r;
}

// `r` as an RMSNorm launch: residual += delta in place, m_x = the normalised rows.
Status CudaBackend::normNow(const ResidualNorm& r, int T) {
    RmsNormParams norm;
    norm.n_rows = T;
    norm.n_cols = static_cast<int>(m_config.hiddenSize);
    norm.residual = m_residualNow;
    norm.residual_stride = m_config.hiddenSize;
    norm.delta = r.delta;
    norm.delta_stride = m_config.hiddenSize;
    norm.weight = r.weight;
    norm.out = m_x.data();
    norm.out_stride = m_config.hiddenSize;
    norm.eps = r.eps;
    // One token: what follows a norm (the q/kv_a GEMV, the router, lm_head) reads only weights
    // before its PDL wait, so its weights may start loading during the kernel before the norm.
    norm.launch_next_early = triggersEarly(kEarlyNorm, T);
    return launchRmsNorm(norm, m_stream);
}

Status CudaBackend::attention(int layer, int T, int64_t pos0, LatentSequence& seq, const ResidualNorm& inputNorm) {
    const ModelConfig& c = m_config;
    const DeviceAttentionWeights& a = m_weights.layers[static_cast<size_t>(layer)].attn;
    cublasHandle_t blas = m_blas.get();
    const int64_t hidden = c.hiddenSize, H = c.numAttentionHeads, dqk = c.qHeadDim(), entry = c.latentCacheDim();
    const float eps = kLatentNormEps;

    // q [T, H, dqk] (or q_a [T, q_lora]) and [c_kv | k_pe] [T, entry] read the same x: one launch.
    const __nv_bfloat16* qIn = c.qLoraRank ? a.qAProj : a.qProj;
    bf16* qOut = c.qLoraRank ? m_qA.data() : m_q.data();
    const int64_t qRows = c.qLoraRank ? *c.qLoraRank : H * dqk;
    // With a folded input norm (one token), that launch also computes x from the residual stream.
    if (inputNorm.active() && gemvPairNormSupported(static_cast<int>(hidden), qIn, a.kvAProj)) {
        DSV2_RETURN_IF_ERROR(linearFewPair(blas, nullptr, hidden, T, hidden, qIn, qOut, qRows, a.kvAProj, m_kvA.data(),
                                           entry, m_stream, &inputNorm, triggersEarly(kEarlyQkv, T)));
        m_residualNow = inputNorm.residual_out;
    } else {
        if (inputNorm.active()) DSV2_RETURN_IF_ERROR(normNow(inputNorm, T));
        if (!skipped(kSkipQkv, T))
            DSV2_RETURN_IF_ERROR(linearFewPair(blas, m_x.data(), hidden, T, hidden, qIn, qOut, qRows, a.kvAProj,
                                               m_kvA.data(), entry, m_stream, nullptr, triggersEarly(kEarlyQkv, T)));
    }
    // The small steps around q_b_proj in one launch each (attention_prologue_fused.h): q_a_layernorm
    // (q_lora models), kv_a_layernorm + RoPE on k_pe + the cache write, RoPE on q_pe. Positions are
    // read on the device (CUDA graphs). Without q_lora: one launch; with it: one before q_b_proj
    // (both norms and the cache entry) and one after it (RoPE on q_pe).
    const PagedCacheRef ref{m_cache.layerBase(layer), seq.deviceTable.data(), static_cast<int>(kCacheBlockTokens),
                            static_cast<int>(entry)};
    AttentionPrologueParams pro;
    pro.n_tokens = T;
    pro.positions = m_positions.data();
    pro.eps = eps;
    pro.kv_a = m_kvA.data();
    pro.kv_stride = entry;
    pro.kv_lora = static_cast<int>(c.kvLoraRank);
    pro.kv_weight = a.kvANorm;
    pro.cache = ref;
    pro.n_heads = static_cast<int>(H);
    pro.q_token_stride = H * dqk;
    pro.q_head_stride = dqk;
    pro.rope_dim = static_cast<int>(c.qkRopeHeadDim);
    pro.inv_freq = m_invFreq.data();
    pro.amplitude = static_cast<float>(c.ropeAmplitude());
    if (c.qLoraRank) {
        const int64_t r = *c.qLoraRank;
        AttentionPrologueParams norms = pro;
        norms.q_a = m_qA.data();
        norms.qa_cols = static_cast<int>(r);
        norms.qa_stride = r;
        norms.qa_weight = a.qANorm;
        DSV2_RETURN_IF_ERROR(launchAttentionPrologue(norms, m_stream));
        DSV2_RETURN_IF_ERROR(
            linearFew(blas, m_qA.data(), r, a.qBProj, m_q.data(), GemmType::BF16, H * dqk, T, H * dqk, r, m_stream));
        pro.kv_a = nullptr;  // done above
    }
    pro.q_pe = m_q.data() + c.qkNopeHeadDim;
    // The attention call runs the prologue, inside the q_lat GEMV's launch where it can
    // (MlaCall::prologue); here only when attention is skipped (timing) or DSV2_FUSE_PROLOGUE=0.
    const bool attentionSkipped = !useExpanded(T, pos0 + T) && skipped(kSkipMla, T);
    if (!m_fusePrologue || attentionSkipped) DSV2_RETURN_IF_ERROR(launchAttentionPrologue(pro, m_stream));

    MlaCall call;
    call.q = m_q.data();
    call.n_q = T;
    call.q_pos0 = pos0;
    call.cache = ref;
    call.kv_b = a.kvBProj;
    call.out = m_attn.data();
    call.decode_tiles_early = m_mlaEarlyTiles;  // earlier positions' entries: written by earlier steps
    if (m_fusePrologue && !attentionSkipped) call.prologue = &pro;
    call.merge_in_v_max_splits = m_mergeInVMaxSplits;
    call.next_reads_weights_only = triggersEarly(kEarlyV, T);  // o_proj's GEMV follows
    call.decode_launches_next_early = triggersEarly(kEarlyMla, T);
    if (T == 1) {  // one token: position and split length on the device, so a graph can replay it
        call.q_pos0_device = m_positions.data();
        call.device_splits = m_decodeSplits;
        // A decode graph captured here replays only while the context stays on this side of the
        // short-context limit (runDecodeGraph captures again when it crosses), so the decode
        // kernel may be chosen for it.
        call.context_bound = decodeContextIsShort(pos0 + 1) ? kMlaDecodeSlicedMaxContext : 0;
    }
    const int64_t ctx = pos0 + T;
    if (m_options.mlaForm == MlaForm::Expanded && ctx > m_mlaScratch.maxExpandedCtx())
        return Status(StatusCode::Unsupported, "the expanded MLA form was forced, but a context of " +
                                                   std::to_string(ctx) + " tokens exceeds its workspace (" +
                                                   std::to_string(m_mlaScratch.maxExpandedCtx()) + ")");
    if (useExpanded(T, ctx))
        DSV2_RETURN_IF_ERROR(mlaAttentionExpanded(blas, m_mla, call, m_mlaScratch, m_stream));
    else if (!skipped(kSkipMla, T))
        DSV2_RETURN_IF_ERROR(mlaAttentionAbsorbed(blas, m_mla, call, m_mlaScratch, m_sms, m_stream));
    // o_proj: delta [T, hidden] fp32
    if (skipped(kSkipOProj, T)) return Status::ok();
    return linearFew(blas, m_attn.data(), H * c.vHeadDim, a.oProj, m_delta.data(), GemmType::F32, hidden, T, hidden,
                     H * c.vHeadDim, m_stream, 0.0f, triggersEarly(kEarlyOProj, T));
}

Status CudaBackend::tap(int stage, int T, int64_t pos0) {
    if (!m_residualTap) return Status::ok();
    const auto n = static_cast<size_t>(T) * static_cast<size_t>(m_config.hiddenSize);
    try {
        m_tapHost.resize(n);
    } catch (const std::bad_alloc&) {
        return Status(StatusCode::ResourceExhausted, "out of host memory for the residual tap");
    }
    DSV2_CUDA_CHECK(
        cudaMemcpyAsync(m_tapHost.data(), m_residualNow, sizeof(float) * n, cudaMemcpyDeviceToHost, m_stream));
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

Status CudaBackend::allReduceDelta(int T) {
    if (!m_nccl) return Status::ok();
    return m_nccl->allReduceSum(m_slice.rank, m_delta.data(),
                                static_cast<size_t>(T) * static_cast<size_t>(m_config.hiddenSize), m_stream);
}

// One chunk of T tokens at positions seq.length .. +T (blocks reserved, table synced). Writes the
// logits of rows [firstLogitRow, T) into `logits` (host; none when firstLogitRow == T), the routing
// into `routing` at token offset routingToken0.
Status CudaBackend::forwardChunk(LatentSequence& seq, const int32_t* tokens, int T, int64_t firstLogitRow,
                                 float* logits, ForwardRouting& routing, int64_t routingToken0) {
    const ModelConfig& c = m_config;
    const int64_t pos0 = seq.length;
    for (int t = 0; t < T; ++t) {
        m_hostIds[static_cast<size_t>(t)] = tokens[t];
        m_hostIds[static_cast<size_t>(T + t)] = static_cast<int32_t>(pos0 + t);
    }
    const bool oneRow = T - firstLogitRow == 1;
    if (T == 1 && oneRow && decodeGraphUsable()) {
        DSV2_RETURN_IF_ERROR(runDecodeGraph(seq));
    } else {
        const bool timed = T > 1 && PrefillTimer::requested();
        if (timed) DSV2_RETURN_IF_ERROR(m_prefillTimer.begin(m_stream));
        Status enqueued = enqueueForward(seq, T, firstLogitRow, logits);
        if (timed && enqueued.isOk()) enqueued = m_prefillTimer.enqueued(m_stream);
        if (!enqueued.isOk()) m_prefillTimer.cancel();
        DSV2_RETURN_IF_ERROR(enqueued);
    }
    DSV2_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    if (m_prefillTimer.active()) {
        // stderr whatever the log sink: an opt-in diagnostic for benchmark runs (no sink there).
        const std::string line = m_prefillTimer.report(T);
        if (!line.empty()) std::fprintf(stderr, "dsv2: cuda backend: %s (DSV2_PREFILL_TIMING)\n", line.c_str());
    }
    if (oneRow)
        std::memcpy(logits + m_slice.vocabBegin, m_hostLogits.data(),
                    sizeof(float) * static_cast<size_t>(m_slice.vocabCount));
    if (routing.expertIds.empty()) return Status::ok();  // another GPU records the routing

    const size_t K = static_cast<size_t>(c.numExpertsPerTok);
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

Status CudaBackend::enqueueForward(LatentSequence& seq, int T, int64_t firstLogitRow, float* logits) {
    const ModelConfig& c = m_config;
    const int64_t hidden = c.hiddenSize;
    const int64_t pos0 = seq.length;
    const auto eps = static_cast<float>(c.rmsNormEps);
    cublasHandle_t blas = m_blas.get();

    DSV2_CUDA_CHECK(
        cudaMemcpyAsync(m_tokens.data(), m_hostIds.data(), sizeof(int32_t) * T, cudaMemcpyHostToDevice, m_stream));
    DSV2_CUDA_CHECK(cudaMemcpyAsync(m_positions.data(), m_hostIds.data() + T, sizeof(int32_t) * T,
                                    cudaMemcpyHostToDevice, m_stream));
    EmbeddingParams e;
    e.n_tokens = T;
    e.n_embd = static_cast<int>(hidden);
    e.n_vocab = c.vocabSize;
    e.tokens = m_tokens.data();
    e.table = m_weights.embed;
    m_residualNow = m_residual.data();
    e.out = m_residualNow;
    e.out_stride = hidden;
    DSV2_RETURN_IF_ERROR(launchEmbedding(e, m_stream));

    // One token (and no residual tap, which reads the residual between the launches), with
    // DSV2_FOLD_NORMS=1: each sublayer's residual add + RMSNorm is folded into its first kernel
    // (residual_norm.h). Off by default: on an H200 (Lite, PDL on) the step was 3 % slower folded
    // (386 vs 398 tok/s): every one of the GEMV's ~450 blocks redoes the norm after the PDL wait,
    // which costs more than the separate launch, whose start PDL already hides. Folding only one
    // of the two was slower too (session 9: 458 / 471 vs 479 tok/s with only the post-attention
    // norm in the router / only the input norm in the GEMV) and was taken out again, as was the
    // post-attention norm in the router and the shared expert's blocks (session 10: 490 vs 496).
    const bool foldNorms = T == 1 && !m_residualTap && m_foldNorms;
    size_t moeIndex = 0;
    for (int l = 0; l < static_cast<int>(c.numHiddenLayers); ++l) {
        const DeviceLayerWeights& L = m_weights.layers[static_cast<size_t>(l)];
        if (T > 1) DSV2_RETURN_IF_ERROR(m_prefillTimer.mark(m_stream));  // no-op unless timing; never in a capture
        // The input norm adds the previous layer's FFN output.
        ResidualNorm inputNorm = residualNorm(L.inputNorm, l == 0 ? nullptr : m_delta.data(), eps);
        if (!foldNorms && !skipped(kSkipNorm, T)) DSV2_RETURN_IF_ERROR(normNow(inputNorm, T));
        DSV2_RETURN_IF_ERROR(tap(2 * l, T, pos0));  // the residual add of the previous FFN is done
        DSV2_RETURN_IF_ERROR(attention(l, T, pos0, seq, foldNorms ? inputNorm : ResidualNorm{}));
        DSV2_RETURN_IF_ERROR(allReduceDelta(T));
        ResidualNorm postNorm = residualNorm(L.postNorm, m_delta.data(), eps);
        if (!foldNorms && !skipped(kSkipNorm, T)) DSV2_RETURN_IF_ERROR(normNow(postNorm, T));
        DSV2_RETURN_IF_ERROR(tap(2 * l + 1, T, pos0));
        DSV2_RETURN_IF_ERROR(feedForward(l, T, moeIndex, foldNorms ? postNorm : ResidualNorm{}));
        DSV2_RETURN_IF_ERROR(allReduceDelta(T));
        if (L.moe.gate) ++moeIndex;
    }
    if (T == 1) DSV2_RETURN_IF_ERROR(copyDecodeRouting());
    DSV2_RETURN_IF_ERROR(normNow(residualNorm(m_weights.finalNorm, m_delta.data(), eps), T));
    DSV2_RETURN_IF_ERROR(tap(2 * static_cast<int>(c.numHiddenLayers), T, pos0));

    // This GPU's vocabulary rows of lm_head (all of them on one GPU) into its columns of the logits.
    const int64_t vocab = c.vocabSize, mine = m_slice.vocabCount;
    if (T - firstLogitRow == 1) {  // one row: to pinned memory without waiting (graph-safe)
        if (!skipped(kSkipLmHead, T))
            DSV2_RETURN_IF_ERROR(linearFew(blas, m_x.data() + firstLogitRow * hidden, hidden, m_weights.lmHead,
                                           m_logits.data(), GemmType::F32, mine, 1, mine, hidden, m_stream));
        DSV2_CUDA_CHECK(cudaMemcpyAsync(m_hostLogits.data(), m_logits.data(), sizeof(float) * mine,
                                        cudaMemcpyDeviceToHost, m_stream));
        return Status::ok();
    }
    // lm_head over the requested rows, logitRows at a time, fp32 logits straight to the host.
    for (int64_t r0 = firstLogitRow; r0 < T; r0 += m_plan.shape.logitRows) {
        const int64_t rows = std::min<int64_t>(m_plan.shape.logitRows, T - r0);
        DSV2_RETURN_IF_ERROR(linear(blas, m_x.data() + r0 * hidden, hidden, m_weights.lmHead, m_logits.data(),
                                    GemmType::F32, mine, rows, mine, hidden, m_stream));
        DSV2_CUDA_CHECK(cudaMemcpy2DAsync(logits + (r0 - firstLogitRow) * vocab + m_slice.vocabBegin,
                                          sizeof(float) * vocab, m_logits.data(), sizeof(float) * mine,
                                          sizeof(float) * mine, rows, cudaMemcpyDeviceToHost, m_stream));
        DSV2_CUDA_CHECK(cudaStreamSynchronize(m_stream));  // m_logits is reused by the next rows
    }
    return Status::ok();
}

// The FFN half of layer `layer` on m_x, into m_delta; MoE layers leave their routing in pinned
// memory (slot moeIndex) for forwardChunk.
Status CudaBackend::feedForward(int layer, int T, size_t moeIndex, const ResidualNorm& postNorm) {
    const DeviceLayerWeights& L = m_weights.layers[static_cast<size_t>(layer)];
    cublasHandle_t blas = m_blas.get();
    const int64_t hidden = m_config.hiddenSize;
    // A folded post-attention norm goes into the one-token router launch; elsewhere it runs now.
    const bool foldIntoRouter = postNorm.active() && L.moe.gate && T == 1;
    if (postNorm.active() && !foldIntoRouter) DSV2_RETURN_IF_ERROR(normNow(postNorm, T));
    if (!L.moe.gate)
        return mlpForward(blas, L.dense, static_cast<int>(hidden), m_x.data(), hidden, T, m_delta.data(), hidden, 0.0f,
                          m_ffnScratch, m_stream);
    if (T == 1) {
        // One token: router, then the chosen experts straight from the device's top-k (no host wait).
        // Router logits GEMV + top-k in one launch where the GPU allows (moe_router_fused.h).
        MoeRouterGemvParams rg;
        rg.route = routerParams(m_moe, 1, m_ffnScratch);
        // This layer's slot of the step's routing record: copied to the host once per step (one
        // graph node instead of two per MoE layer between the router and the experts).
        const size_t K = static_cast<size_t>(m_moe.top_k);
        rg.route.topk_ids = m_decodeRouteIds.data() + moeIndex * K;
        rg.route.topk_weights = m_decodeRouteWeights.data() + moeIndex * K;
        rg.hidden = static_cast<int>(hidden);
        rg.x = m_x.data();
        rg.gate = L.moe.gate;
        rg.logits_out = m_ffnScratch.logits.data();
        if (foldIntoRouter) {  // the router computes x (into m_x for the experts) from the residual
            rg.norm = postNorm;
            rg.norm.x_out = m_x.data();
            if (moeRouterGemvSupported(rg)) {
                m_residualNow = postNorm.residual_out;
            } else {
                rg.norm = ResidualNorm{};
                DSV2_RETURN_IF_ERROR(normNow(postNorm, T));
            }
        }
        if (moeRouterGemvSupported(rg)) {
            if (!skipped(kSkipRouter, T)) DSV2_RETURN_IF_ERROR(launchMoeRouterGemv(rg, m_stream));
        } else {
            DSV2_RETURN_IF_ERROR(linearFew(blas, m_x.data(), hidden, L.moe.gate, m_ffnScratch.logits.data(),
                                           GemmType::F32, m_moe.n_experts, 1, m_moe.n_experts, hidden, m_stream));
            DSV2_RETURN_IF_ERROR(launchMoeRouter(rg.route, m_stream));
        }
        const auto nExperts = static_cast<size_t>(m_moe.n_experts);
        MoeDecodeParams d;
        d.hidden = static_cast<int>(hidden);
        d.top_k = m_moe.top_k;
        d.inter = m_moe.expert_inter;
        d.shared_inter = L.moe.shared.gate_up ? L.moe.shared.inter : 0;
        d.x = m_x.data();
        d.topk_ids = rg.route.topk_ids;
        d.topk_weights = rg.route.topk_weights;
        d.expert_gate_up = m_expertTables.data() + 2 * moeIndex * nExperts;
        d.expert_down = m_expertTables.data() + (2 * moeIndex + 1) * nExperts;
        d.shared_gate_up = L.moe.shared.gate_up;
        d.shared_down = L.moe.shared.down;
        d.act = m_ffnScratch.act.data();
        d.out = m_delta.data();
        // x came from the norm before the router (not from the router itself): the shared expert
        // may start while the router runs (moe_decode.h). DSV2_MOE_EARLY_SHARED=0 for A/B.
        d.x_ready_before_wait = !(foldIntoRouter && rg.norm.active()) && m_moeEarlyShared;
        d.down_early = m_moeEarlyDown;
        d.down_launches_next_early = triggersEarly(kEarlyDown, T);  // a norm follows
        if (skipped(kSkipMoe, T)) return Status::ok();
        return launchMoeDecode(d, m_stream);  // routing: copyDecodeRouting() at the end of the step
    }
    DSV2_RETURN_IF_ERROR(moeForward(blas, m_moe, L.moe, m_x.data(), T, m_delta.data(), m_ffnScratch, m_stream));
    // Routing records: [T, K] ids and weights to pinned host memory, asynchronously.
    const size_t K = static_cast<size_t>(m_moe.top_k);
    const size_t slot = moeIndex * static_cast<size_t>(m_plan.shape.chunkTokens) * K;
    DSV2_CUDA_CHECK(cudaMemcpyAsync(m_hostRouteIds.data() + slot, m_ffnScratch.topkIds.data(), sizeof(int32_t) * T * K,
                                    cudaMemcpyDeviceToHost, m_stream));
    DSV2_CUDA_CHECK(cudaMemcpyAsync(m_hostRouteWeights.data() + slot, m_ffnScratch.topkWeights.data(),
                                    sizeof(float) * T * K, cudaMemcpyDeviceToHost, m_stream));
    return Status::ok();
}

// A one-token step's routing, [n_moe, top_k] on the device, into the pinned records [n_moe, chunk,
// top_k] (row 0 of each layer's chunk) in one copy.
Status CudaBackend::copyDecodeRouting() {
    if (m_moeLayers.empty()) return Status::ok();
    const size_t K = static_cast<size_t>(m_moe.top_k), chunk = static_cast<size_t>(m_plan.shape.chunkTokens);
    DSV2_CUDA_CHECK(cudaMemcpy2DAsync(m_hostRouteIds.data(), sizeof(int32_t) * chunk * K, m_decodeRouteIds.data(),
                                      sizeof(int32_t) * K, sizeof(int32_t) * K, m_moeLayers.size(),
                                      cudaMemcpyDeviceToHost, m_stream));
    DSV2_CUDA_CHECK(cudaMemcpy2DAsync(m_hostRouteWeights.data(), sizeof(float) * chunk * K, m_decodeRouteWeights.data(),
                                      sizeof(float) * K, sizeof(float) * K, m_moeLayers.size(), cudaMemcpyDeviceToHost,
                                      m_stream));
    return Status::ok();
}

Status CudaBackend::runChunks(LatentSequence& seq, std::span<const int32_t> tokens, bool wantAllLogits, float* logits,
                              ForwardRouting& routing) {
    const auto T = static_cast<int64_t>(tokens.size());
    const int64_t chunk = chunkTokens();
    for (int64_t c0 = 0; c0 < T; c0 += chunk) {
        const int n = static_cast<int>(std::min(chunk, T - c0));
        const bool last = c0 + n == T;
        // Rows this chunk contributes: all of them, or only the very last row of the call.
        const int64_t firstRow = wantAllLogits ? 0 : (last ? n - 1 : n);
        float* out = wantAllLogits ? logits + c0 * m_config.vocabSize : logits;
        DSV2_RETURN_IF_ERROR(forwardChunk(seq, tokens.data() + c0, n, firstRow, out, routing, c0));
        DSV2_RETURN_IF_ERROR(m_cache.commit(seq, seq.length + n));
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
    const size_t routingSize =
        static_cast<size_t>(T) * result.routing.moeLayers.size() * static_cast<size_t>(c.numExpertsPerTok);
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
    if (st.isOk()) st = m_backend.runChunks(m_seq, tokens, wantAllLogits, result.logits.data(), result.routing);
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

Result<std::unique_ptr<Backend>> createCudaBackendWithExtras(const ModelConfig& config, const ModelWeights& weights,
                                                             const BackendOptions& options,
                                                             const CudaBackendExtras& extras) {
    if (options.devices.size() > 1 && !extras.slice) return createMultiGpuBackend(config, weights, options, extras);
    if (options.devices.size() == 1) {
        BackendOptions one = options;
        one.device = options.devices.front();
        one.devices.clear();
        return createCudaBackendWithExtras(config, weights, one, extras);
    }
    auto backend = std::make_unique<CudaBackend>(config, options);
    DSV2_RETURN_IF_ERROR(backend->init(weights, extras).withContext("cuda backend"));
    return std::unique_ptr<Backend>(std::move(backend));
}

int64_t deviceMemoryInUse() {
    size_t freeBytes = 0, totalBytes = 0;
    if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) return -1;
    return static_cast<int64_t>(totalBytes - freeBytes);
}

int64_t deviceMemoryInUse(int device) {
    int current = 0;
    if (cudaGetDevice(&current) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) return -1;
    const int64_t used = deviceMemoryInUse();
    (void)cudaSetDevice(current);
    return used;
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
