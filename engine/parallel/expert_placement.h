#pragma once
// Expert parallelism: which device holds which routed experts, for any number of devices.
//
// group_limited_greedy (V2/V2.5: 160 experts in n_group 8 groups, topk_group 3) is DeepSeek's
// device-limited routing: a token first keeps its topk_group best groups, then its top_k experts
// among them. Placing whole groups on devices therefore bounds the devices one token touches by
// topk_group. When n_group is not a multiple of the device count, the groups are spread as evenly as
// whole groups allow (8 groups on 3 devices: 3 + 3 + 2, i.e. 60/60/40 experts), and the bound is
// the number of devices holding the chosen groups: still at most min(topk_group, N). With more
// devices than groups a group cannot stay whole; experts are then split contiguously and the bound
// is computed from how many devices each group spans.
//
// greedy (V2-Lite: no groups) has nothing to align to: a contiguous split balanced within one
// expert, and a token may touch up to min(top_k, N) devices.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dsv2/status.h"
#include "model/model_config.h"

namespace dsv2::parallel {

// n split into `parts` contiguous pieces whose sizes differ by at most one (the larger ones first).
std::vector<int64_t> balancedSplit(int64_t n, int parts);

struct ExpertPlacement {
    int nDevices = 1;
    // True when every routing group lives whole on one device (group_limited_greedy, N ≤ n_group).
    bool groupAligned = false;
    int64_t expertsPerGroup = 0;  // n_routed / n_group; the whole set when the model has no groups

    std::vector<std::vector<int32_t>> deviceExperts;  // per device, ascending expert ids
    std::vector<int32_t> expertDevice;                // expert id -> device
    std::vector<std::vector<int32_t>> deviceGroups;   // group-aligned only: group ids per device

    // No routing decision the model's router can make touches more devices than this.
    int maxDevicesPerToken = 0;
    // Mean devices a token touches when routing is uniform over experts and groups (what the
    // router's balance loss aims for); see expectedDevicesTouched().
    double meanDevicesPerToken = 0.0;

    int64_t expertsOn(int device) const {
        return static_cast<int64_t>(deviceExperts[static_cast<size_t>(device)].size());
    }
    // "4 devices, 2 whole groups (40 experts) each; a token touches at most 3 devices (2.36 on average)"
    std::string summary() const;
};

// Refuses N < 1, and N > n_routed_experts (a device would hold no expert).
Result<ExpertPlacement> placeExperts(const ModelConfig& config, int nDevices);

// The devices holding the chosen experts, ascending, each once.
std::vector<int> devicesTouched(const ExpertPlacement& placement, std::span<const int32_t> expertIds);

// Mean number of devices a token's top_k experts occupy when the router's scores are i.i.d. (what
// its balance loss aims for; a trained router is skewed, so real traffic varies by prompt):
// simulated with the router's selection rule and a fixed seed, within 0.01 of the exact value.
double expectedDevicesTouched(const ModelConfig& config, const ExpertPlacement& placement);

}  // namespace dsv2::parallel
