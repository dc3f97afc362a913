#pragma once
// What one GPU ("rank") of a multi-GPU run computes, as ranges of the model's tensors: the layout
// docs/multi-gpu.md argues for, made concrete for the CUDA backend (engine/cuda/multi_gpu_backend.h).
//
//  - attention: query heads [headBegin, +headCount) — their rows of q_b_proj (q_proj on Lite) and
//    kv_b_proj, their columns of o_proj; q_a/kv_a projections, norms and the latent KV cache are
//    whole on every rank (MLA's single latent serves all heads);
//  - dense MLP and shared experts: intermediate columns [begin, +count) — rows of gate/up, columns
//    of down, in units of 64 so every slice stays vector-aligned;
//  - routed experts: the ones ExpertPlacement gives the rank (whole routing groups for
//    group_limited_greedy); routers are whole, so every rank makes the same routing decision;
//  - lm_head: vocabulary rows [vocabBegin, +vocabCount); each rank writes its logits straight into
//    the host's row, so no gather is needed.
// Each rank's attention output and FFN output are partial sums over its heads/columns/experts; one
// all-reduce after each sublayer completes them (two per layer).

#include <cstdint>
#include <vector>

#include "dsv2/status.h"
#include "model/model_config.h"
#include "parallel/expert_placement.h"

namespace dsv2::parallel {

struct RankSlice {
    int rank = 0;
    int nRanks = 1;
    int64_t headBegin = 0, headCount = 0;
    int64_t denseBegin = 0, denseCount = 0;    // of intermediate_size
    int64_t sharedBegin = 0, sharedCount = 0;  // of n_shared_experts · moe_intermediate_size
    int64_t vocabBegin = 0, vocabCount = 0;
    std::vector<uint8_t> ownsExpert;  // per routed expert; empty = all of them

    bool owns(int64_t expert) const { return ownsExpert.empty() || ownsExpert[static_cast<size_t>(expert)] != 0; }
    int64_t expertCount(int64_t nRouted) const;
};

// The whole model on one rank (the single-GPU path).
RankSlice wholeModel(const ModelConfig& config);

// One slice per device of `placement`. Refuses a split that leaves a rank without a head or
// without columns of a dense/shared MLP the model has (more ranks than heads or 64-column units).
Result<std::vector<RankSlice>> planRankSlices(const ModelConfig& config, const ExpertPlacement& placement);

// The config the rank's kernels see: its heads as num_attention_heads, its dense width as
// intermediate_size. Routed experts, vocabulary, cache and RoPE stay the model's.
ModelConfig rankConfig(const ModelConfig& config, const RankSlice& slice);

}  // namespace dsv2::parallel
