#include "parallel/parallel_memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "model/model_stats.h"
#include "parallel/token_traffic.h"

namespace dsv2::parallel {
namespace {

constexpr int64_t kBlock = 64;                  // the paged cache's block (tokens)
constexpr int64_t kReserveBytes = 512LL << 20;  // cuBLAS workspace, allocator slack (as one device)
// NCCL's own buffers with more than one device: channels x peers x NCCL_BUFFSIZE (4 MiB) plus its
// proxy state; an allowance until it is measured on the 4-GPU machine.
constexpr int64_t kCommReserveBytes = 256LL << 20;
constexpr int64_t kMinAutoCacheTokens = 4096;
constexpr int64_t kMaxSuggestedDevices = 64;
// The single-device engine's fp32 score block limit (engine/cuda/mla_attention.cpp): 48 Mi elements.
constexpr int64_t kMaxScoreElements = int64_t{48} << 20;

// Whether the engine plans that score block: only where prefill attention may take the GEMM form
// (cuda::mlaPrefillMayUseGemmForm): head dims other than DeepSeek-V2's 128 + 64 / 128, which the
// tensor-core flash kernel takes, or DSV2_MLA_PREFILL=gemm.
bool gemmPrefillScores(const ModelConfig& c) {
    const char* env = std::getenv("DSV2_MLA_PREFILL");
    if (env && std::strcmp(env, "gemm") == 0) return true;
    return !(c.qkNopeHeadDim == 128 && c.qkRopeHeadDim == 64 && c.vHeadDim == 128);
}

int64_t roundUpBlock(int64_t tokens) { return (tokens + kBlock - 1) / kBlock * kBlock; }

int64_t countMoeLayers(const ModelConfig& c) {
    int64_t n = 0;
    for (int64_t l = 0; l < c.numHiddenLayers; ++l) n += c.isMoeLayer(l) ? 1 : 0;
    return n;
}

// The smallest device count above `from` whose weights (plus the reserve) fit `freeBytes` per
// device, or 0 when none up to kMaxSuggestedDevices does.
int devicesNeededForWeights(const ModelConfig& c, AttentionSplit split, int from, int64_t freeBytes) {
    const int64_t most =
        c.nRoutedExperts > 0 ? std::min<int64_t>(kMaxSuggestedDevices, c.nRoutedExperts) : kMaxSuggestedDevices;
    for (int n = from + 1; n <= most; ++n) {
        auto placement = placeExperts(c, n);
        if (!placement) return 0;
        int64_t worst = 0;
        for (const auto& w : deviceWeightBytes(c, *placement, split)) worst = std::max(worst, w.total());
        if (worst + kReserveBytes + kCommReserveBytes <= freeBytes) return n;
    }
    return 0;
}

}  // namespace

std::string formatGiB(int64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

std::string DevicePlan::describe(int64_t moeLayers) const {
    std::string w = "weights " + formatGiB(weights.total()) + " (replicated " + formatGiB(weights.replicated);
    if (weights.sharded > 0) w += " + tensor-parallel slices " + formatGiB(weights.sharded);
    if (expertCount > 0)
        w += " + " + std::to_string(expertCount) + " experts x " + std::to_string(moeLayers) + " layers " +
             formatGiB(weights.experts);
    return w + ") + KV cache " + formatGiB(cacheBytes) + " (" + std::to_string(cacheTokens) + " tokens) + workspace " +
           formatGiB(workspaceBytes) + " + reserve " + formatGiB(reserveBytes) + " = " + formatGiB(neededBytes());
}

int64_t stepWorkspaceBytes(const ModelConfig& c, const StepShape& shape, int64_t cacheTokens, int64_t heads,
                           int64_t vocabRows, int64_t ffnWidth, int64_t tokensIn) {
    const int64_t T = shape.chunkTokens;
    const int64_t H = heads;
    const int64_t qRank = c.qLoraRank.value_or(0);
    // tokens + positions, residual (fp32), delta (fp32), normed x, q_a, q, kv_a, attention output
    const int64_t activations = T * 8 + T * c.hiddenSize * (4 + 4 + 2) + T * qRank * 2 + T * H * c.qHeadDim() * 2 +
                                T * c.latentCacheDim() * 2 + T * H * c.vHeadDim * 2;
    // MLA scratch: q_lat (fp32) + o_lat (bf16), flash-decoding partials, the tensor-core decode's
    // int32 merge counters (8 per query and group of 16 heads: mla_decode.h), the expanded k/v of
    // the prefill form, its score and probability block where the GEMM form may run.
    const int64_t ctx = std::min(shape.expandedCtx, cacheTokens);
    const int64_t partialRows = std::max(T, std::min<int64_t>(T, 64) * shape.maxSplits);
    const int64_t mergeCounters = T * ((H + 15) / 16) * 8 * 4;
    const int64_t mla = T * H * c.kvLoraRank * (4 + 2) + partialRows * H * (c.kvLoraRank + 2) * 4 + mergeCounters +
                        ctx * (c.latentCacheDim() + H * (c.qkNopeHeadDim + c.vHeadDim)) * 2 +
                        (gemmPrefillScores(c) ? std::min(kMaxScoreElements, T * H * ctx) : 0) * (4 + 2);
    // FFN scratch over the rows that reach this device's experts: gate|up, act, router logits,
    // top-k ids/weights, counts/offsets, the permutation, gathered inputs (bf16) and outputs (fp32).
    const int64_t R = tokensIn;
    const int64_t E = c.nRoutedExperts, K = c.numExpertsPerTok;
    const int64_t routed = K * c.moeIntermediateSize;
    const int64_t act = std::max({R * ffnWidth, R * routed, routed + ffnWidth});
    const int64_t perm = R * K;
    const int64_t ffn =
        act * 3 * 2 + R * E * 4 + R * K * 8 + (2 * E + 1) * 4 + perm * 8 + perm * c.hiddenSize * (2 + 4);
    const int64_t logits = shape.logitRows * vocabRows * 4;
    const int64_t sequenceTables = (cacheTokens / kBlock + 1) * 4 * 4;
    // Data-parallel attention: staging of the all-to-all (hidden states in, partial sums out).
    const int64_t exchange = tokensIn > T ? tokensIn * c.hiddenSize * (kHiddenStateBytes + kPartialSumBytes) : 0;
    return activations + mla + ffn + logits + sequenceTables + exchange;
}

Result<ParallelMemoryPlan> planParallelMemory(const ModelConfig& c, const ExpertPlacement& placement,
                                              AttentionSplit split, StepShape shape, int64_t requestedCacheTokens,
                                              const std::vector<DeviceMemory>& devices) {
    const int n = placement.nDevices;
    if (static_cast<int>(devices.size()) != n)
        return Status(StatusCode::InvalidArgument, "the expert placement is for " + std::to_string(n) +
                                                       " devices but " + std::to_string(devices.size()) +
                                                       " were given");
    ParallelMemoryPlan plan;
    plan.split = split;
    plan.moeLayers = countMoeLayers(c);
    plan.cacheBytesPerToken = mlaKvBytesPerToken(c);
    const auto weights = deviceWeightBytes(c, placement, split);
    const auto heads = headsPerDevice(c, n, split);
    const bool tp = split == AttentionSplit::Tensor;
    const auto vocab = tp ? balancedSplit(c.vocabSize, n) : std::vector<int64_t>(static_cast<size_t>(n), c.vocabSize);
    const auto dense =
        tp ? balancedSplit(c.intermediateSize, n) : std::vector<int64_t>(static_cast<size_t>(n), c.intermediateSize);
    const int64_t sharedWidth = c.nSharedExperts * c.moeIntermediateSize;
    const auto shared = tp ? balancedSplit(sharedWidth, n) : std::vector<int64_t>(static_cast<size_t>(n), sharedWidth);

    const bool automatic = requestedCacheTokens <= 0;
    const int64_t tokens = roundUpBlock(automatic ? c.maxPositionEmbeddings : requestedCacheTokens);
    shape.chunkTokens = std::max<int64_t>(1, std::min(shape.chunkTokens, tokens));
    plan.shape = shape;
    // With data-parallel attention every device's tokens may all route to one device's experts.
    const int64_t tokensIn = tp ? shape.chunkTokens : shape.chunkTokens * n;

    auto fill = [&](int64_t cacheTokens) {
        plan.cacheTokens = cacheTokens;
        plan.devices.clear();
        for (int d = 0; d < n; ++d) {
            const auto i = static_cast<size_t>(d);
            DevicePlan p;
            p.device = d;
            p.name = devices[i].name;
            p.weights = weights[i];
            p.expertCount = placement.expertsOn(d);
            p.heads = heads[i];
            p.cacheTokens = cacheTokens;
            p.cacheBytes = cacheTokens * plan.cacheBytesPerToken;
            p.workspaceBytes =
                stepWorkspaceBytes(c, shape, cacheTokens, heads[i], vocab[i], std::max(dense[i], shared[i]), tokensIn);
            p.reserveBytes = kReserveBytes + (n > 1 ? kCommReserveBytes : 0);
            p.freeBytes = devices[i].freeBytes;
            p.totalBytes = devices[i].totalBytes;
            plan.devices.push_back(p);
        }
    };
    auto allFit = [&] {
        return std::all_of(plan.devices.begin(), plan.devices.end(),
                           [](const DevicePlan& p) { return p.neededBytes() <= p.freeBytes; });
    };
    fill(tokens);
    if (automatic && !allFit()) {
        // Shrink the cache (the same on every device) to what the tightest device has left.
        fill(0);
        int64_t fits = tokens;
        for (const auto& p : plan.devices) {
            const int64_t left = p.freeBytes - p.neededBytes();
            fits = std::min(fits, left > 0 ? left / plan.cacheBytesPerToken / kBlock * kBlock : 0);
        }
        if (fits >= std::min(kMinAutoCacheTokens, tokens)) {
            fill(fits);
            while (!allFit() && plan.cacheTokens > kBlock) fill(plan.cacheTokens - kBlock);
        } else {
            fill(std::min(tokens, kMinAutoCacheTokens));
        }
    }

    std::vector<const DevicePlan*> failing;
    for (const auto& p : plan.devices)
        if (p.neededBytes() > p.freeBytes) failing.push_back(&p);
    if (failing.empty()) return plan;

    const DevicePlan& p = *failing.front();
    std::string msg = "the model does not fit on device " + std::to_string(p.device) + " of " + std::to_string(n) +
                      " (" + p.name + ", " + attentionSplitName(split) + " attention): it needs " +
                      p.describe(plan.moeLayers) + ", but " + formatGiB(p.freeBytes) + " of " +
                      formatGiB(p.totalBytes) + " are free";
    if (p.weights.total() + p.reserveBytes > p.freeBytes) {
        int64_t smallest = p.freeBytes;
        for (const auto& d : plan.devices) smallest = std::min(smallest, d.freeBytes);
        const int enough = devicesNeededForWeights(c, split, n, smallest);
        msg += " (the weights alone do not fit";
        msg += enough > 0 ? "; their share fits from " + std::to_string(enough) + " devices like these)"
                          : "; no count of such devices up to " + std::to_string(kMaxSuggestedDevices) + " holds them)";
    } else {
        msg += "; a smaller context (--context) shrinks the KV cache, a smaller prefill chunk the workspace";
    }
    if (failing.size() > 1) msg += "; " + std::to_string(failing.size() - 1) + " other device(s) do not fit either";
    return Status(StatusCode::ResourceExhausted, msg);
}

}  // namespace dsv2::parallel
