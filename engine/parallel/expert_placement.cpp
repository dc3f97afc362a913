#include "parallel/expert_placement.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <numeric>
#include <random>
#include <set>

namespace dsv2::parallel {
namespace {

bool usesGroups(const ModelConfig& c) { return c.topkMethod == TopkMethod::GroupLimitedGreedy && c.nGroup > 1; }

// The router's view of groups: experts [g·m, (g+1)·m) form group g (DeepSeek reshapes the scores
// to [n_group, n_routed / n_group]). A model without groups is one group of every expert.
int64_t groupCount(const ModelConfig& c) { return usesGroups(c) ? c.nGroup : 1; }
int64_t groupsChosen(const ModelConfig& c) { return usesGroups(c) ? c.topkGroup : 1; }

// More group sets than this and the exact enumeration is skipped (no released config comes close:
// V2 has C(8,3) = 56).
constexpr double kMaxCombinations = 2e6;

constexpr int kSimulatedTokens = 20000;

double binomial(int64_t n, int64_t k) {
    if (k < 0 || k > n) return 0.0;
    double r = 1.0;
    for (int64_t i = 0; i < k; ++i) r = r * static_cast<double>(n - i) / static_cast<double>(i + 1);
    return r;
}

// Calls fn with every k-subset of [0, n) in lexicographic order.
void forEachCombination(int64_t n, int64_t k, const std::function<void(const std::vector<int64_t>&)>& fn) {
    std::vector<int64_t> pick(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) pick[static_cast<size_t>(i)] = i;
    while (true) {
        fn(pick);
        int64_t i = k - 1;
        while (i >= 0 && pick[static_cast<size_t>(i)] == n - k + i) --i;
        if (i < 0) return;
        ++pick[static_cast<size_t>(i)];
        for (int64_t j = i + 1; j < k; ++j) pick[static_cast<size_t>(j)] = pick[static_cast<size_t>(j - 1)] + 1;
    }
}

// Devices that a group's experts occupy.
std::vector<std::set<int>> groupDevices(const ModelConfig& c, const ExpertPlacement& p) {
    const int64_t m = c.nRoutedExperts / groupCount(c);
    std::vector<std::set<int>> out(static_cast<size_t>(groupCount(c)));
    for (int64_t e = 0; e < c.nRoutedExperts; ++e)
        out[static_cast<size_t>(e / m)].insert(p.expertDevice[static_cast<size_t>(e)]);
    return out;
}

// The most devices any choice of topk_group groups spans (then capped by top_k and N).
int worstCaseDevices(const ModelConfig& c, const ExpertPlacement& p) {
    const int64_t cap = std::min<int64_t>(c.numExpertsPerTok, p.nDevices);
    if (p.groupAligned) return static_cast<int>(std::min(cap, groupsChosen(c)));
    const auto spans = groupDevices(c, p);
    int64_t worst = 0;
    if (binomial(groupCount(c), groupsChosen(c)) <= kMaxCombinations) {
        forEachCombination(groupCount(c), groupsChosen(c), [&](const std::vector<int64_t>& groups) {
            std::set<int> all;
            for (int64_t g : groups)
                all.insert(spans[static_cast<size_t>(g)].begin(), spans[static_cast<size_t>(g)].end());
            worst = std::max<int64_t>(worst, static_cast<int64_t>(all.size()));
        });
    } else {  // an upper bound: the widest groups added up
        std::vector<int64_t> sizes;
        for (const auto& s : spans) sizes.push_back(static_cast<int64_t>(s.size()));
        std::sort(sizes.rbegin(), sizes.rend());
        for (int64_t i = 0; i < groupsChosen(c); ++i) worst += sizes[static_cast<size_t>(i)];
    }
    return static_cast<int>(std::min(cap, worst));
}

std::string plural(int64_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

std::vector<int64_t> balancedSplit(int64_t n, int parts) {
    std::vector<int64_t> sizes(static_cast<size_t>(std::max(parts, 0)), parts > 0 ? n / parts : 0);
    for (int64_t i = 0; parts > 0 && i < n % parts; ++i) ++sizes[static_cast<size_t>(i)];
    return sizes;
}

Result<ExpertPlacement> placeExperts(const ModelConfig& c, int nDevices) {
    if (nDevices < 1)
        return Status(StatusCode::InvalidArgument,
                      "the device count must be at least 1, got " + std::to_string(nDevices));
    if (c.nRoutedExperts > 0 && nDevices > c.nRoutedExperts)
        return Status(StatusCode::InvalidArgument,
                      std::to_string(nDevices) + " devices for " + std::to_string(c.nRoutedExperts) +
                          " routed experts: some devices would hold no expert; use at most " +
                          std::to_string(c.nRoutedExperts) + " devices");
    if (usesGroups(c) && c.nRoutedExperts % c.nGroup != 0)
        return Status(StatusCode::InvalidArgument, "n_routed_experts " + std::to_string(c.nRoutedExperts) +
                                                       " is not a multiple of n_group " + std::to_string(c.nGroup) +
                                                       ": the router's groups are undefined");

    ExpertPlacement p;
    p.nDevices = nDevices;
    p.deviceExperts.resize(static_cast<size_t>(nDevices));
    p.expertDevice.assign(static_cast<size_t>(c.nRoutedExperts), 0);
    if (c.nRoutedExperts == 0) return p;  // a dense model: nothing to place, nothing routed
    p.expertsPerGroup = c.nRoutedExperts / groupCount(c);

    auto assign = [&](int device, int64_t firstExpert, int64_t count) {
        for (int64_t e = firstExpert; e < firstExpert + count; ++e) {
            p.deviceExperts[static_cast<size_t>(device)].push_back(static_cast<int32_t>(e));
            p.expertDevice[static_cast<size_t>(e)] = device;
        }
    };
    p.groupAligned = usesGroups(c) && nDevices <= c.nGroup;
    if (p.groupAligned) {
        // Whole groups, contiguous: device d holds groups [first, first + count).
        p.deviceGroups.resize(static_cast<size_t>(nDevices));
        int64_t group = 0;
        const auto groupsPer = balancedSplit(c.nGroup, nDevices);
        for (int d = 0; d < nDevices; ++d) {
            for (int64_t i = 0; i < groupsPer[static_cast<size_t>(d)]; ++i, ++group) {
                p.deviceGroups[static_cast<size_t>(d)].push_back(static_cast<int32_t>(group));
                assign(d, group * p.expertsPerGroup, p.expertsPerGroup);
            }
        }
    } else {
        int64_t first = 0;
        const auto expertsPer = balancedSplit(c.nRoutedExperts, nDevices);
        for (int d = 0; d < nDevices; ++d) {
            assign(d, first, expertsPer[static_cast<size_t>(d)]);
            first += expertsPer[static_cast<size_t>(d)];
        }
    }
    p.maxDevicesPerToken = worstCaseDevices(c, p);
    p.meanDevicesPerToken = expectedDevicesTouched(c, p);
    return p;
}

std::vector<int> devicesTouched(const ExpertPlacement& p, std::span<const int32_t> expertIds) {
    std::vector<int> devices;
    for (int32_t e : expertIds) devices.push_back(p.expertDevice.at(static_cast<size_t>(e)));
    std::sort(devices.begin(), devices.end());
    devices.erase(std::unique(devices.begin(), devices.end()), devices.end());
    return devices;
}

double expectedDevicesTouched(const ModelConfig& c, const ExpertPlacement& p) {
    if (c.nRoutedExperts == 0) return 0.0;
    // The router's choice depends only on the order of the scores (softmax is monotone), so i.i.d.
    // uniform scores give the same choices as i.i.d. logits. Group-limited selection makes this
    // hard in closed form (a chosen group's best expert is almost always among the top_k), hence a
    // simulation with a fixed seed: the standard error is below 0.005 devices.
    const int64_t E = c.nRoutedExperts, G = groupCount(c), m = p.expertsPerGroup;
    const int64_t k = groupsChosen(c), K = std::min<int64_t>(c.numExpertsPerTok, E);
    std::mt19937 rng(20240507u);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::vector<double> score(static_cast<size_t>(E)), groupBest(static_cast<size_t>(G));
    std::vector<int64_t> groupOrder(static_cast<size_t>(G)), pool;
    std::vector<int> devices;
    int64_t touched = 0;
    for (int t = 0; t < kSimulatedTokens; ++t) {
        for (double& s : score) s = uniform(rng);
        for (int64_t g = 0; g < G; ++g)
            groupBest[static_cast<size_t>(g)] = *std::max_element(score.begin() + g * m, score.begin() + (g + 1) * m);
        std::iota(groupOrder.begin(), groupOrder.end(), 0);
        std::partial_sort(groupOrder.begin(), groupOrder.begin() + k, groupOrder.end(), [&](int64_t a, int64_t b) {
            return groupBest[static_cast<size_t>(a)] > groupBest[static_cast<size_t>(b)];
        });
        pool.clear();
        for (int64_t i = 0; i < k; ++i)
            for (int64_t e = groupOrder[static_cast<size_t>(i)] * m; e < (groupOrder[static_cast<size_t>(i)] + 1) * m;
                 ++e)
                pool.push_back(e);
        std::partial_sort(pool.begin(), pool.begin() + K, pool.end(), [&](int64_t a, int64_t b) {
            return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)];
        });
        devices.clear();
        for (int64_t i = 0; i < K; ++i)
            devices.push_back(p.expertDevice[static_cast<size_t>(pool[static_cast<size_t>(i)])]);
        std::sort(devices.begin(), devices.end());
        touched += std::unique(devices.begin(), devices.end()) - devices.begin();
    }
    return static_cast<double>(touched) / kSimulatedTokens;
}

std::string ExpertPlacement::summary() const {
    std::string s = plural(nDevices, "device", "devices") + ", ";
    if (expertDevice.empty()) return s + "no routed experts";
    const int64_t most = static_cast<int64_t>(deviceExperts.front().size());
    const int64_t least = static_cast<int64_t>(deviceExperts.back().size());
    if (groupAligned) {
        const int64_t gMost = static_cast<int64_t>(deviceGroups.front().size());
        const int64_t gLeast = static_cast<int64_t>(deviceGroups.back().size());
        s += gMost == gLeast
                 ? plural(gMost, "whole group", "whole groups") + " (" + std::to_string(most) + " experts) each"
                 : std::to_string(gLeast) + "-" + std::to_string(gMost) + " whole groups (" + std::to_string(least) +
                       "-" + std::to_string(most) + " experts) each";
    } else {
        s += most == least ? std::to_string(most) + " experts each"
                           : std::to_string(least) + "-" + std::to_string(most) + " experts each";
        s += " (contiguous)";
    }
    char mean[32];
    std::snprintf(mean, sizeof mean, "%.2f", meanDevicesPerToken);
    return s + "; a token touches at most " + plural(maxDevicesPerToken, "device", "devices") + " (" + mean +
           " on average under uniform routing)";
}

}  // namespace dsv2::parallel
