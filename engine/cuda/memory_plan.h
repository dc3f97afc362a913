#pragma once
// The CUDA backend's memory plan, made before anything is uploaded: weights (bf16) + the paged
// latent KV cache + the per-chunk workspace + a reserve for cuBLAS and fragmentation, checked
// against the device's free memory. A model that does not fit is refused with the numbers.
// Host-only arithmetic: tested without a GPU.

#include <cstdint>
#include <string>

#include "dsv2/status.h"
#include "model/model_config.h"

namespace dsv2::cuda {

// The sizes the backend runs with.
struct RuntimeShape {
    int64_t chunkTokens = 4096;   // prefill chunk (tokens per forward step)
    int64_t cacheTokens = 0;      // paged pool capacity, all sessions together (multiple of 64)
    int64_t expandedCtx = 32768;  // longest context the expanded (prefill) MLA form runs over
    int maxSplits = 64;           // decode context splits
    int64_t logitRows = 256;      // lm_head rows per pass
};

struct MemoryPlan {
    RuntimeShape shape;
    int64_t weightBytes = 0;
    int64_t cacheBytes = 0;
    int64_t workspaceBytes = 0;
    int64_t reserveBytes = 0;
    int64_t freeBytes = 0;  // device memory free when planning
    int64_t totalDeviceBytes = 0;

    int64_t neededBytes() const { return weightBytes + cacheBytes + workspaceBytes + reserveBytes; }
    // "weights 29.26 GiB + KV cache 4.75 GiB (163840 tokens) + workspace 1.10 GiB + reserve 0.50 GiB = 35.61 GiB"
    std::string describe() const;
};

// bf16 bytes of every tensor the forward pass reads (lm_head shared when tied).
int64_t modelWeightBytes(const ModelConfig& config);
// Workspace for one chunk of `shape.chunkTokens` tokens (activations, MLA and FFN scratch, logits).
int64_t workspaceBytes(const ModelConfig& config, const RuntimeShape& shape);
// KV cache bytes per token: layers × (kv_lora_rank + qk_rope_head_dim) × 2.
int64_t cacheBytesPerToken(const ModelConfig& config);

// requestedCacheTokens > 0: exactly that many (rounded up to 64) or refuse. 0: the model's
// max_position_embeddings, shrunk to what fits (never below 4096 tokens) when memory is short.
// `deviceName` goes into the refusal message. weightBytes >= 0: what this GPU holds (one rank of
// several), else the whole model's (modelWeightBytes).
Result<MemoryPlan> planMemory(const ModelConfig& config, RuntimeShape shape, int64_t requestedCacheTokens,
                              int64_t freeBytes, int64_t totalDeviceBytes, const std::string& deviceName,
                              int64_t weightBytes = -1);

std::string formatGiB(int64_t bytes);  // "29.26 GiB"

}  // namespace dsv2::cuda
