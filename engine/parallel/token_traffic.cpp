#include "parallel/token_traffic.h"

#include <algorithm>
#include <cstdio>

namespace dsv2::parallel {
namespace {

int64_t moeLayerCount(const ModelConfig& c) {
    int64_t n = 0;
    for (int64_t l = 0; l < c.numHiddenLayers; ++l) n += c.isMoeLayer(l) ? 1 : 0;
    return n;
}

std::string fixed(double v, int digits) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

}  // namespace

TokenTraffic tokenTraffic(const ModelConfig& c, const ExpertPlacement& p, AttentionSplit split) {
    TokenTraffic t;
    t.split = split;
    t.nDevices = p.nDevices;
    const int64_t n = p.nDevices;
    const std::string H = std::to_string(c.hiddenSize);
    if (n == 1) {
        t.derivation = "one device: nothing crosses a link";
        return t;
    }
    if (split == AttentionSplit::Tensor) {
        const int64_t perAllReduce = 2 * (n - 1) * c.hiddenSize * kPartialSumBytes;  // ring, all devices together
        t.collectives = 2 * c.numHiddenLayers;
        t.linkBytesWorst = t.linkBytesMean = static_cast<double>(t.collectives * perAllReduce);
        t.derivation = std::to_string(c.numHiddenLayers) +
                       " layers x 2 all-reduces x 2(N-1)=" + std::to_string(2 * (n - 1)) + " x hidden " + H + " x " +
                       std::to_string(kPartialSumBytes) + " B";
        return t;
    }
    const int64_t moeLayers = moeLayerCount(c);
    const int64_t perRemote = c.hiddenSize * (kHiddenStateBytes + kPartialSumBytes);
    const int64_t worstRemote = std::min<int64_t>(p.maxDevicesPerToken, n - 1);
    // The owner is any device with probability 1/N, independent of the routing.
    const double meanRemote = p.meanDevicesPerToken * static_cast<double>(n - 1) / static_cast<double>(n);
    t.collectives = moeLayers > 0 ? 2 * moeLayers : 0;
    t.linkBytesWorst = static_cast<double>(moeLayers * worstRemote * perRemote);
    t.linkBytesMean = static_cast<double>(moeLayers) * meanRemote * static_cast<double>(perRemote);
    t.derivation = std::to_string(moeLayers) + " MoE layers x remote devices (at most " + std::to_string(worstRemote) +
                   ", " + fixed(meanRemote, 2) + " on average) x hidden " + H + " x (" +
                   std::to_string(kHiddenStateBytes) + " B out + " + std::to_string(kPartialSumBytes) + " B back)";
    return t;
}

}  // namespace dsv2::parallel
