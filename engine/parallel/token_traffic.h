#pragma once
// Bytes one token's forward pass moves between the devices, for each attention layout, computed
// from the config (docs/multi-gpu.md has the hand calculation for V2 on 4 devices).
//
// Tensor-parallel attention keeps the residual stream replicated: every device has every token's
// hidden state, so the routed experts need no dispatch. Per layer, two ring all-reduces of the fp32
// partial sums (after o_proj, and after the FFN, where the shared/dense slices and the local routed
// experts' weighted outputs are summed together): each moves 2(N−1)/N · hidden · 4 B per device.
// fp32, because the single-device engine writes these outputs in fp32 into an fp32 residual; summing
// fp32 partials keeps its numerics.
//
// Data-parallel attention keeps a token on the device that owns its sequence. Per MoE layer, its
// bf16 normed hidden state goes to every other device holding one of its experts (one copy per
// device, however many of its experts live there: the point of device-limited routing) and one fp32
// weighted partial sum comes back from each: an all-to-all dispatch and an all-to-all combine.

#include <cstdint>
#include <string>

#include "model/model_config.h"
#include "parallel/expert_placement.h"
#include "parallel/weight_sharding.h"

namespace dsv2::parallel {

struct TokenTraffic {
    AttentionSplit split = AttentionSplit::Tensor;
    int nDevices = 1;
    int64_t collectives = 0;    // collectives one token's forward waits for, in sequence (latency)
    double linkBytesWorst = 0;  // bytes sent between devices, all devices together, worst routing
    double linkBytesMean = 0;   // the same under uniform routing
    std::string derivation;     // the formula with the config's numbers, for people
};

// Bytes per element of what crosses the links.
inline constexpr int64_t kHiddenStateBytes = 2;  // bf16 normed hidden state (the experts' input)
inline constexpr int64_t kPartialSumBytes = 4;   // fp32 partial sums (o_proj, FFN outputs)

TokenTraffic tokenTraffic(const ModelConfig& config, const ExpertPlacement& placement, AttentionSplit split);

}  // namespace dsv2::parallel
