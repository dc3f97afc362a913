#pragma once
// The memory plan across the devices of one host, made before anything is uploaded: on each
// device, its weights (replicated part + tensor-parallel slices + its routed experts), its latent
// KV cache, the workspace of one step and a reserve, against that device's free memory. A layout
// that does not fit is refused naming the device and the numbers, as the single-device plan
// (engine/cuda/memory_plan.h) does; the cache is sized the same way (explicit: exactly that or
// refuse; automatic: max_position_embeddings shrunk to what fits, never below 4096 tokens).
//
// The KV cache is the same size on every device in both layouts: MLA caches ONE latent [c_kv | k_pe]
// per token that every query head reads, so tensor-parallel ranks cannot split it by heads; each
// holds it whole. With data-parallel attention each device caches only its own sequences, and every
// device's pool is planned for the longest context because any device may own it.

#include <cstdint>
#include <string>
#include <vector>

#include "dsv2/status.h"
#include "model/model_config.h"
#include "parallel/expert_placement.h"
#include "parallel/weight_sharding.h"

namespace dsv2::parallel {

struct DeviceMemory {
    std::string name;  // "NVIDIA H200", for messages
    int64_t freeBytes = 0;
    int64_t totalBytes = 0;
};

// The sizes one step runs with (the defaults of the single-device engine's cuda::RuntimeShape).
struct StepShape {
    int64_t chunkTokens = 4096;   // prefill chunk per device
    int64_t expandedCtx = 32768;  // longest context of the expanded (prefill) MLA form
    int maxSplits = 64;           // decode context splits
    int64_t logitRows = 256;      // lm_head rows per pass
};

struct DevicePlan {
    int device = 0;
    std::string name;
    DeviceWeightBytes weights;
    int64_t expertCount = 0;  // routed experts per MoE layer on this device
    int64_t heads = 0;        // query heads whose attention this device computes
    int64_t cacheTokens = 0;
    int64_t cacheBytes = 0;
    int64_t workspaceBytes = 0;
    int64_t reserveBytes = 0;
    int64_t freeBytes = 0;
    int64_t totalBytes = 0;

    int64_t neededBytes() const { return weights.total() + cacheBytes + workspaceBytes + reserveBytes; }
    // "weights 111.52 GiB (replicated 2.28 GiB + tensor-parallel 5.51 GiB + 40 experts x 59 layers
    //  103.73 GiB) + KV cache 10.55 GiB + workspace 3.12 GiB + reserve 0.50 GiB = 125.69 GiB"
    std::string describe(int64_t moeLayers) const;
};

struct ParallelMemoryPlan {
    AttentionSplit split = AttentionSplit::Tensor;
    StepShape shape;
    int64_t cacheTokens = 0;         // per device (every device the same)
    int64_t cacheBytesPerToken = 0;  // layers x (kv_lora_rank + qk_rope_head_dim) x 2 B, per device
    int64_t moeLayers = 0;
    std::vector<DevicePlan> devices;
};

// Workspace of one step on one device with `heads` query heads: the single-device engine's buffers
// (cuda::workspaceBytes mirrors them; that file needs CUDA headers, this one must not) with the
// head-dependent ones cut to this device's heads and the vocabulary to its lm_head rows, plus, with
// data-parallel attention, the rows the expert all-to-all can deliver from every device.
int64_t stepWorkspaceBytes(const ModelConfig& config, const StepShape& shape, int64_t cacheTokens, int64_t heads,
                           int64_t vocabRows, int64_t ffnWidth, int64_t tokensIn);

// devices.size() must equal placement.nDevices. requestedCacheTokens 0 = automatic.
Result<ParallelMemoryPlan> planParallelMemory(const ModelConfig& config, const ExpertPlacement& placement,
                                              AttentionSplit split, StepShape shape, int64_t requestedCacheTokens,
                                              const std::vector<DeviceMemory>& devices);

std::string formatGiB(int64_t bytes);  // "29.26 GiB", as engine/cuda/memory_plan.h prints

}  // namespace dsv2::parallel
