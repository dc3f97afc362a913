#include "parallel/rank_slice.h"

#include <string>

namespace dsv2::parallel {
namespace {

constexpr int64_t kColumnUnit = 64;  // dense/shared slices are multiples of this (vector loads, GEMV tiles)

// n columns over `parts` ranks in units of kColumnUnit (the last takes any remainder): begin/count.
std::vector<std::pair<int64_t, int64_t>> columnSplit(int64_t n, int parts) {
    const std::vector<int64_t> units = balancedSplit(n / kColumnUnit, parts);
    std::vector<std::pair<int64_t, int64_t>> out;
    int64_t begin = 0;
    for (size_t r = 0; r < units.size(); ++r) {
        int64_t count = units[r] * kColumnUnit;
        if (r + 1 == units.size()) count = n - begin;
        out.emplace_back(begin, count);
        begin += count;
    }
    return out;
}

std::vector<std::pair<int64_t, int64_t>> plainSplit(int64_t n, int parts) {
    std::vector<std::pair<int64_t, int64_t>> out;
    int64_t begin = 0;
    for (int64_t count : balancedSplit(n, parts)) {
        out.emplace_back(begin, count);
        begin += count;
    }
    return out;
}

}  // namespace

int64_t RankSlice::expertCount(int64_t nRouted) const {
    if (ownsExpert.empty()) return nRouted;
    int64_t n = 0;
    for (uint8_t o : ownsExpert) n += o;
    return n;
}

RankSlice wholeModel(const ModelConfig& c) {
    RankSlice s;
    s.headCount = c.numAttentionHeads;
    s.denseCount = c.intermediateSize;
    s.sharedCount = c.nSharedExperts * c.moeIntermediateSize;
    s.vocabCount = c.vocabSize;
    return s;
}

Result<std::vector<RankSlice>> planRankSlices(const ModelConfig& c, const ExpertPlacement& placement) {
    const int n = placement.nDevices;
    if (n < 1) return Status(StatusCode::InvalidArgument, "a multi-GPU layout needs at least one device");
    if (c.numAttentionHeads < n)
        return Status(StatusCode::InvalidArgument, "the model has " + std::to_string(c.numAttentionHeads) +
                                                       " attention heads, too few to split over " + std::to_string(n) +
                                                       " GPUs");
    const bool hasDense = c.firstKDenseReplace > 0 || c.nRoutedExperts == 0;
    const int64_t shared = c.nSharedExperts * c.moeIntermediateSize;
    if ((hasDense && c.intermediateSize / kColumnUnit < n) || (shared > 0 && shared / kColumnUnit < n))
        return Status(StatusCode::InvalidArgument, "the model's MLP widths are too narrow to split over " +
                                                       std::to_string(n) + " GPUs in units of 64 columns");
    const auto heads = plainSplit(c.numAttentionHeads, n);
    const auto dense = columnSplit(c.intermediateSize, n);
    const auto sharedCols = columnSplit(shared, n);
    const auto vocab = plainSplit(c.vocabSize, n);
    std::vector<RankSlice> slices(static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
        RankSlice& s = slices[static_cast<size_t>(r)];
        const auto i = static_cast<size_t>(r);
        s.rank = r;
        s.nRanks = n;
        s.headBegin = heads[i].first;
        s.headCount = heads[i].second;
        s.denseBegin = dense[i].first;
        s.denseCount = dense[i].second;
        s.sharedBegin = sharedCols[i].first;
        s.sharedCount = sharedCols[i].second;
        s.vocabBegin = vocab[i].first;
        s.vocabCount = vocab[i].second;
        if (n > 1) {
            s.ownsExpert.assign(static_cast<size_t>(c.nRoutedExperts), 0);
            for (int32_t e : placement.deviceExperts[i]) s.ownsExpert[static_cast<size_t>(e)] = 1;
        }
    }
    return slices;
}

ModelConfig rankConfig(const ModelConfig& c, const RankSlice& s) {
    ModelConfig r = c;
    r.numAttentionHeads = s.headCount;
    r.intermediateSize = s.denseCount;
    return r;
}

}  // namespace dsv2::parallel
