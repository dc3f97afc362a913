#pragma once
// Pieces shared by the MLA decode kernels (mla_decode.cu: CUDA cores and the split combine;
// mla_decode_mma.cu and mla_decode_sliced.cu: tensor cores). Device code; include from .cu files only.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/device_utils.cuh"
#include "cuda/mla_decode.h"
#include "dsv2/status.h"

namespace dsv2::cuda::mla_decode_detail {

// Positions fit 32 bits (max_position_embeddings); 32-bit division is several times cheaper.
__device__ __forceinline__ const bf16* cacheEntry(const PagedCacheRef& c, int64_t pos) {
    const auto ipos = static_cast<int32_t>(pos);
    const int32_t block = c.block_table[ipos / c.block_size];
    return c.layer_base + (static_cast<int64_t>(block) * c.block_size + ipos % c.block_size) * c.entry_dim;
}

// The part of the context one (split, query) block covers, and how many splits query `qi` uses.
// Every kernel of one launch (decode and combine) computes it the same way.
struct SplitRange {
    int64_t begin = 0, end = 0;  // positions [begin, end) of this split (end > begin when split < used)
    int used = 1;                // splits that query qi reaches: [0, used); each is non-empty
};

__device__ __forceinline__ SplitRange splitRange(const MlaDecodeParams& p, int qi, int split) {
    const int64_t qPos0 = p.q_pos0_device ? static_cast<int64_t>(*p.q_pos0_device) : p.q_pos0;
    const int64_t splitLen = p.q_pos0_device ? mlaDecodeDeviceSplits(qPos0 + p.n_q, p.n_splits).split_len : p.split_len;
    const int64_t ctx = qPos0 + qi + 1;  // causal length of this query
    SplitRange r;
    r.used = static_cast<int>(ceilDiv(ctx, splitLen));
    r.begin = static_cast<int64_t>(split) * splitLen;
    r.end = min(r.begin + splitLen, ctx);
    return r;
}

// With tiles_before_wait: whether a block's early tiles, [begin, min(end, begin + early_len)),
// stay below the entries the kernel just before wrote (new_entries_one_back). Reads the position
// from the device, which the step wrote long before (mla_decode.h).
__device__ __forceinline__ bool earlyTilesWrittenBefore(const MlaDecodeParams& p, int64_t begin, int64_t end,
                                                        int64_t early_len) {
    if (!p.new_entries_one_back) return true;
    const int64_t qPos0 = p.q_pos0_device ? static_cast<int64_t>(*p.q_pos0_device) : p.q_pos0;
    return min(end, begin + early_len) <= qPos0;
}

// Launches of the two decode kernels (grid (n_splits, n_q, head groups)); p is validated.
Status launchMlaDecodeSimt(const MlaDecodeParams& p, cudaStream_t stream);
Status launchMlaDecodeMma(const MlaDecodeParams& p, cudaStream_t stream);
// Whether the tensor-core kernel takes these sizes, pointers and strides.
bool mlaDecodeMmaSupports(const MlaDecodeParams& p);
// The sliced tensor-core kernel (mla_decode_sliced.cu): grid (R × splits, n_q, head groups) in
// clusters of R; p is validated. Supports: sizes, pointers, strides and the chosen variant.
// n_splits_used: the split count the launch used (fewer than p.n_splits with q_pos0_device).
Status launchMlaDecodeSliced(const MlaDecodeParams& p, cudaStream_t stream, int* n_splits_used = nullptr);
bool mlaDecodeSlicedSupports(const MlaDecodeParams& p);
// "r8 t64 w4 s4": cluster size, tile positions, warps, stages of a variant (bench output).
const char* mlaDecodeSlicedVariantName(int variant);

}  // namespace dsv2::cuda::mla_decode_detail
