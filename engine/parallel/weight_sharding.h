#pragma once
// Which weights each device holds for a layout, and what it reads per token at batch 1.
//
// Tensor-parallel attention (the default, AttentionSplit::Tensor): every device holds the query
// heads H/N of q_b_proj (q_proj on Lite), kv_b_proj and o_proj, a 1/N slice of the dense MLP's and
// the shared experts' width, and a 1/N slice of lm_head's vocabulary rows; q_a_proj, kv_a_proj, the
// norms, the routers and the embedding table are replicated (every head needs the whole latent, and
// a token reads one embedding row). Data-parallel attention (AttentionSplit::Data) replicates all of
// those instead: each device serves its own sequences alone. Routed experts are placed by
// ExpertPlacement in both. All weights are bf16 (2 bytes), as the CUDA engine holds them.
// docs/multi-gpu.md argues the choice with the numbers.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "parallel/expert_placement.h"

namespace dsv2::parallel {

enum class AttentionSplit { Tensor, Data };

const char* attentionSplitName(AttentionSplit split);                        // "tensor-parallel" / "data-parallel"
std::optional<AttentionSplit> parseAttentionSplit(const std::string& text);  // "tp" / "dp"

struct DeviceWeightBytes {
    int64_t replicated = 0;  // tensors every device holds whole
    int64_t sharded = 0;     // this device's slice of the tensor-parallel tensors
    int64_t experts = 0;     // its routed experts, all layers
    int64_t total() const { return replicated + sharded + experts; }
};

// Per device, from the tensor list the weight binding expects (engine/model/weight_binding.h), so
// the device bytes add up to the whole model for N = 1.
std::vector<DeviceWeightBytes> deviceWeightBytes(const ModelConfig& config, const ExpertPlacement& placement,
                                                 AttentionSplit split);

// Weight bytes each device reads to decode one token at batch 1: its replicated tensors (one
// embedding row, not the table), its tensor-parallel slices, and its share of the top_k routed
// experts of every MoE layer under uniform routing. With data-parallel attention only the device
// owning the sequence runs attention, the dense MLP, the shared experts and lm_head (device 0
// here). The busiest device sets the step time at batch 1.
std::vector<int64_t> batchOneReadBytes(const ModelConfig& config, const ExpertPlacement& placement,
                                       AttentionSplit split);

// Query heads on each device: H split as evenly as possible under tensor parallelism, all of them
// with data parallelism (each device runs full attention for its own sequences).
std::vector<int64_t> headsPerDevice(const ModelConfig& config, int nDevices, AttentionSplit split);

}  // namespace dsv2::parallel
