#pragma once
// MLA decode in the absorbed ("MQA") form over the paged latent cache (REFERENCE.md "Absorbed decode"):
//   q_lat_h = q_nope_h · W_UK_h                (cuBLAS, before this kernel; fp32)
//   s_h(j)  = scale · ([q_lat_h | q_pe_h] · [c_kv_j | k_pe_j])  over cache positions j <= q_pos0 + i
//   o_lat_h = Σ_j softmax(s_h)_j · c_kv_j      (this kernel; bf16 out)
//   v_h     = o_lat_h · W_UV_hᵀ                (cuBLAS, after)
// One latent "head" serves every query head, so a block reads each cache entry once for a group of
// query heads. Long contexts are split into ranges (flash-decoding); a second kernel merges the
// partial softmaxes of the ranges that were used. Three kernels compute the same thing:
//  (tensor cores: the merge runs inside the decode kernel, in clusters of 8 splits plus arrival
//  counters, see mla_decode_mma.cu; CUDA cores: a second kernel merges)
//  - tensor cores (mla_decode_mma.cu): 16 query heads per block as the M dimension of
//    mma.m16n8k16 (bf16 in, fp32 accumulate; q split into bf16 hi + lo so scores keep fp32
//    precision; probabilities in bf16), 64-position cache tiles double-buffered by cp.async;
//    kv_lora_rank 512 and rope 64 only (the whole V2 family);
//  - CUDA cores (mla_decode.cu): 8 heads per block, scalar fp32 FMAs; any even dims. The reference
//    and fallback (other dims, or DSV2_MLA_DECODE=simt in the environment, read once).
//  - tensor cores, sliced (mla_decode_sliced.cu; MlaDecodeKernel::TensorCoreSliced, or Auto for
//    contexts up to kMlaDecodeSlicedMaxContext): each split is worked by a cluster of 4-8 blocks at
//    once (scores of 1/R of the positions each, exchanged through distributed shared memory; P·V
//    of 1/R of the latent dims each), for latency at short contexts; splits merge through the
//    workspace with the CUDA-core kernel's layout. Same numerics as the tensor-core kernel.
// DSV2_MLA_DECODE (read once) overrides Auto: simt, mma (the tensor-core kernel at every context)
// or sliced (the sliced kernel at every context).

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/latent_cache_ops.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

enum class MlaDecodeKernel {
    Auto,              // tensor cores where supported, unless DSV2_MLA_DECODE=simt
    Simt,              // CUDA cores (the reference)
    TensorCore,        // mma.sync; Unsupported for other dims
    TensorCoreSliced,  // mma.sync, one split per cluster (mla_decode_sliced.cu); Unsupported for other dims
};

// Compiled shapes of the sliced kernel (cluster size, tile positions, warps, stages; listed in
// mla_decode_sliced.cu). MlaDecodeParams::sliced_variant picks one, else DSV2_MLA_SLICED_VARIANT
// (read once), else the default (the fastest measured; mla_decode_sliced.cu).
constexpr int kMlaDecodeSlicedVariants = 6;

// Auto takes the sliced kernel for a launch whose context is known to stay within this many
// positions, the tensor-core kernel beyond. Measured on the H200 (session 6,
// tools/bench/mla_decode_bench.cu, Lite, µs a layer at the engine's split count): sliced (default
// shape) 9.6 / 15.2 / 27.2 at 1K / 4K / 16K against 17.2 / 22.0 / 28.6 for the tensor-core kernel,
// which wins at 32K (35.3 against 46.9 for the shape measured there). Straight lines through
// those points cross near 17.7K, so the limit sits one 1K step below: 17,408 (was 16,384, which
// put the bench's "16K" decode, at positions 16,385+, on the slower kernel; session 8 measures
// both kernels there, scripts/device_ab.sh with DSV2_MLA_DECODE=mma).
constexpr int64_t kMlaDecodeSlicedMaxContext = 17408;

// The tensor-core kernel runs in clusters of this many consecutive splits and merges them itself.
constexpr int kMlaDecodeClusterBlocks = 8;

// int32 arrival counters the tensor-core kernel's merge needs (MlaDecodeParams::merge_counters).
constexpr int64_t mlaDecodeMergeCounterCount(int n_q, int n_heads) {
    return static_cast<int64_t>(n_q) * ((n_heads + 15) / 16) * kMlaDecodeClusterBlocks;
}

// With q_pos0 on the device, the number of splits that get work is derived from the context there:
// at least this many positions per split (one tensor-core tile), at most n_splits splits.
constexpr int kMlaDecodeMinSplitLen = 64;
// The most splits whose merge a decode launch may leave to the next kernel (one merge chunk).
constexpr int kMlaDecodeMaxDeferredSplits = 64;

struct MlaDecodeParams {
    int n_q = 0;  // query tokens (1 in plain decode)
    int n_heads = 0;
    int d_latent = 0;    // kv_lora_rank (even, <= 512)
    int d_rope = 0;      // qk_rope_head_dim (even); cache.entry_dim == d_latent + d_rope
    int64_t q_pos0 = 0;  // position of query 0; query i attends positions [0, q_pos0 + i]
    // When set, q_pos0 is read from here on the device instead (a CUDA graph replays one launch
    // at every position), and split_len must be 0: n_splits is then the most splits, and the
    // kernels use mlaDecodeDeviceSplits(q_pos0 + n_q, n_splits) of them (the other blocks return
    // at once; the combine reads only the used splits).
    const int32_t* q_pos0_device = nullptr;

    const float* q_lat = nullptr;  // [n_q, H, d_latent] fp32
    int64_t q_lat_token_stride = 0, q_lat_head_stride = 0;
    const __nv_bfloat16* q_pe = nullptr;  // [n_q, H, d_rope] after RoPE
    int64_t q_pe_token_stride = 0, q_pe_head_stride = 0;
    PagedCacheRef cache;  // entries for positions [0, q_pos0 + n_q) already written

    // With q_pos0_device: the longest context (q_pos0 + n_q) any replay of this launch will see,
    // or 0 when unknown. Auto chooses the kernel from it (kMlaDecodeSlicedMaxContext); without
    // q_pos0_device the context q_pos0 + n_q is known and this is ignored.
    int64_t context_bound = 0;

    int n_splits = 1;             // from planMlaDecode(), or the most splits with q_pos0_device
    int64_t split_len = 0;        // positions per split, a multiple of 32 (0 with q_pos0_device)
    float* partial_o = nullptr;   // workspace [n_q, H, n_splits, d_latent]
    float* partial_ml = nullptr;  // workspace [n_q, H, n_splits, 2] (max of scale·s, Σ exp(scale·s − max))
    // A query whose context fits one split (tensor cores: one cluster of 8 splits) has its output
    // written by the decode kernel directly (not with defer_merge_max_splits, below); the partials of the splits a
    // query does not reach are neither written nor read. The tensor-core kernel writes cluster partials into partial_o
    // only (O of cluster c at split slot c, the (m, l) pairs after slot ceil(n_splits / 8); see
    // mla_decode_mma.cu) and leaves partial_ml alone.
    // The sliced kernel writes partials as the CUDA-core kernel does (partial_o of every used split,
    // a split's 512 columns written by the cluster's blocks in slices; (m, l) in partial_ml). With
    // q_pos0_device it may use fewer splits than n_splits (one wave of clusters, at most 64).
    // Tensor-core kernels only (required there): mlaDecodeMergeCounterCount(n_q, H) int32 arrival
    // counters, zero before the first launch; every launch leaves them zero again, so a CUDA
    // graph replays it as is. One launch at a time per counter array.
    int32_t* merge_counters = nullptr;

    __nv_bfloat16* out = nullptr;  // o_lat [n_q, H, d_latent]
    int64_t out_token_stride = 0, out_head_stride = 0;
    float softmax_scale = 0.0f;
    MlaDecodeKernel kernel = MlaDecodeKernel::Auto;
    // Tensor-core kernels: start the first cache tiles' loads before the PDL wait. Only when
    // the cache entries, the block table and q_pos0_device were written by kernels (or copies)
    // enqueued before the kernel just before this launch, and that kernel follows pdl.cuh's rules
    // (mlaAttentionAbsorbed: the q_lat GEMV comes between the cache write and this launch), so
    // that they are complete once this kernel starts (pdl.cuh). q_lat is still read after the wait.
    bool tiles_before_wait = false;
    // With tiles_before_wait: the entries of the new positions [q_pos0, q_pos0 + n_q) were written
    // by the kernel just before this one (the q_lat GEMV with the attention prologue in it,
    // mla_absorb_gemv.h), so they are complete only after the wait. A block whose early tiles
    // reach them waits first instead (at short contexts: the cluster of the last split).
    bool new_entries_one_back = false;
    // Sliced kernel, one query with q_pos0_device: when the query uses at most this many splits
    // (<= kMlaDecodeMaxDeferredSplits), every used split writes its partials (one split too) and
    // the kernel leaves the merge, and o_lat, to the next kernel (mla_absorb_gemv.h: the v GEMV
    // merges them as this kernel would, same bits), so no split waits on a GPU-scope fence and an
    // arrival counter, and no single block reads every split. 0: the kernel merges. The other
    // kernels always merge: launchMlaDecode says whether it deferred.
    int defer_merge_max_splits = 0;
    // PDL, tensor-core kernels: let the next kernel launch before this one waits (pdl.cuh, the
    // exception to rule 3): only when it reads nothing but weights before its own wait (the v
    // GEMV). The CUDA-core kernel ignores it (its split merge follows).
    bool launch_next_early = false;
    // Sliced kernel: which compiled shape, 0 .. kMlaDecodeSlicedVariants − 1; -1 = the default.
    int sliced_variant = -1;
};

struct MlaDecodePlan {
    int n_splits = 1;
    int64_t split_len = 32;
};

// Splits a context of `ctx_len` positions so that about two blocks per multiprocessor run, never
// fewer than 256 positions per split, never more than `max_splits` splits.
MlaDecodePlan planMlaDecode(int64_t ctx_len, int n_q, int n_heads, int n_sms, int max_splits);

// The device-side split of a context of `ctx_total` positions (q_pos0 + n_q) into at most
// `max_splits` ranges of at least kMlaDecodeMinSplitLen positions, each a multiple of 64: few
// splits (little merge work) at short contexts, max_splits at long ones. Query i then uses the
// first ceil((q_pos0 + i + 1) / split_len) splits. Host and device compute the same numbers.
struct MlaDecodeSplits {
    int64_t split_len = 64;
    int active = 1;
};
__host__ __device__ inline MlaDecodeSplits mlaDecodeDeviceSplits(int64_t ctx_total, int max_splits) {
    MlaDecodeSplits s;
    const int64_t ctx = ctx_total < 1 ? 1 : ctx_total;
    const int64_t maxS = max_splits < 1 ? 1 : max_splits;
    const int64_t byLength = (ctx + kMlaDecodeMinSplitLen - 1) / kMlaDecodeMinSplitLen;
    const int64_t splits = byLength < maxS ? byLength : maxS;
    const int64_t len = (ctx + splits - 1) / splits;
    s.split_len = (len + 63) / 64 * 64;
    s.active = static_cast<int>((ctx + s.split_len - 1) / s.split_len);  // <= splits
    return s;
}

// The device split count a one-token decode step should pass (n_splits with q_pos0_device) so
// that a long context gives about one block per multiprocessor: n_sms / ceil(n_heads / 16).
int mlaDecodeSplitsForDevice(int n_heads, int n_sms);

// What a launch did, for a kernel that takes over its deferred merge.
struct MlaDecodeLaunched {
    bool merge_deferred = false;  // defer_merge_max_splits > 0 and the sliced kernel ran
    int n_splits = 0;             // the split count it derived the split length and workspace rows from
};
Status launchMlaDecode(const MlaDecodeParams& p, cudaStream_t stream, MlaDecodeLaunched* launched = nullptr);

}  // namespace dsv2::cuda
