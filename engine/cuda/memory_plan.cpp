#include "cuda/memory_plan.h"

#include <algorithm>
#include <cstdio>

#include "cuda/mla_attention.h"
#include "cuda/moe_layer.h"
#include "model/weight_binding.h"

namespace dsv2::cuda {
namespace {

constexpr int64_t kBlock = 64;
constexpr int64_t kReserveBytes = 512LL << 20;  // cuBLAS workspace, allocator slack
constexpr int64_t kMinAutoCacheTokens = 4096;

int64_t roundUpBlock(int64_t tokens) { return (tokens + kBlock - 1) / kBlock * kBlock; }

}  // namespace

std::string formatGiB(int64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

std::string MemoryPlan::describe() const {
    return "weights " + formatGiB(weightBytes) + " + KV cache " + formatGiB(cacheBytes) + " (" +
           std::to_string(shape.cacheTokens) + " tokens) + workspace " + formatGiB(workspaceBytes) + " + reserve " +
           formatGiB(reserveBytes) + " = " + formatGiB(neededBytes());
}

int64_t modelWeightBytes(const ModelConfig& config) {
    int64_t elements = 0;
    for (const auto& t : expectedTensors(config)) {
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        elements += n;
    }
    return elements * 2;
}

int64_t cacheBytesPerToken(const ModelConfig& config) { return config.numHiddenLayers * config.latentCacheDim() * 2; }

int64_t workspaceBytes(const ModelConfig& c, const RuntimeShape& shape) {
    const int64_t T = shape.chunkTokens;
    const int64_t H = c.numAttentionHeads;
    const int64_t qRank = c.qLoraRank.value_or(0);
    // tokens + positions, residual (fp32), delta (fp32), normed x, q_a, q, kv_a, attention output
    const int64_t activations = T * 8 + T * c.hiddenSize * (4 + 4 + 2) + T * qRank * 2 + T * H * c.qHeadDim() * 2 +
                                T * c.latentCacheDim() * 2 + T * H * c.vHeadDim * 2;
    MlaGeometry g;
    g.n_heads = static_cast<int>(H);
    g.d_nope = static_cast<int>(c.qkNopeHeadDim);
    g.d_rope = static_cast<int>(c.qkRopeHeadDim);
    g.d_v = static_cast<int>(c.vHeadDim);
    g.kv_lora = static_cast<int>(c.kvLoraRank);
    const int64_t mla = MlaScratch::bytesFor(g, T, shape.maxSplits, std::min(shape.expandedCtx, shape.cacheTokens),
                                             mlaPrefillMayUseGemmForm(g));
    MoeGeometry m;
    m.hidden = static_cast<int>(c.hiddenSize);
    m.n_experts = static_cast<int>(c.nRoutedExperts);
    m.top_k = static_cast<int>(c.numExpertsPerTok);
    m.expert_inter = static_cast<int>(c.moeIntermediateSize);
    const int maxInter = static_cast<int>(std::max(c.intermediateSize, c.nSharedExperts * c.moeIntermediateSize));
    const int64_t ffn = FfnScratch::bytesFor(m, T, maxInter);
    const int64_t logits = shape.logitRows * c.vocabSize * 4;
    const int64_t sequenceTables = (shape.cacheTokens / kBlock + 1) * 4 * 4;  // a few sessions' block tables
    return activations + mla + ffn + logits + sequenceTables;
}

Result<MemoryPlan> planMemory(const ModelConfig& config, RuntimeShape shape, int64_t requestedCacheTokens,
                              int64_t freeBytes, int64_t totalDeviceBytes, const std::string& deviceName,
                              int64_t weightBytes) {
    MemoryPlan plan;
    plan.weightBytes = weightBytes >= 0 ? weightBytes : modelWeightBytes(config);
    plan.reserveBytes = kReserveBytes;
    plan.freeBytes = freeBytes;
    plan.totalDeviceBytes = totalDeviceBytes;
    const int64_t perToken = cacheBytesPerToken(config);
    const bool automatic = requestedCacheTokens <= 0;
    int64_t tokens = roundUpBlock(automatic ? config.maxPositionEmbeddings : requestedCacheTokens);
    shape.chunkTokens = std::max<int64_t>(1, std::min(shape.chunkTokens, tokens));

    auto fill = [&](int64_t cacheTokens) {
        plan.shape = shape;
        plan.shape.cacheTokens = cacheTokens;
        plan.cacheBytes = cacheTokens * perToken;
        plan.workspaceBytes = workspaceBytes(config, plan.shape);
    };
    fill(tokens);
    if (automatic && plan.neededBytes() > freeBytes) {
        // Shrink the cache to what is left after everything else (the workspace shrinks with it).
        fill(0);
        const int64_t left = freeBytes - plan.neededBytes();
        const int64_t fits = left > 0 ? left / perToken / kBlock * kBlock : 0;
        if (fits >= std::min(kMinAutoCacheTokens, tokens)) {
            fill(std::min(tokens, fits));
            while (plan.neededBytes() > freeBytes && plan.shape.cacheTokens > kBlock)
                fill(plan.shape.cacheTokens - kBlock);
        } else {
            fill(std::min(tokens, kMinAutoCacheTokens));
        }
    }
    if (plan.neededBytes() > freeBytes) {
        std::string msg = "the model does not fit on " + deviceName + ": it needs " + plan.describe() + ", but " +
                          formatGiB(freeBytes) + " of " + formatGiB(totalDeviceBytes) + " are free";
        if (plan.weightBytes + plan.reserveBytes > freeBytes)
            msg += " (the weights alone do not fit)";
        else
            msg += "; a smaller context (--context) shrinks the KV cache";
        return Status(StatusCode::ResourceExhausted, msg);
    }
    return plan;
}

}  // namespace dsv2::cuda
