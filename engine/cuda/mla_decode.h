#pragma once
// MLA decode in the absorbed ("MQA") form over the paged latent cache (REFERENCE.md "Absorbed decode"):
//   q_lat_h = q_nope_h · W_UK_h                (cuBLAS, before this kernel; fp32)
//   s_h(j)  = scale · ([q_lat_h | q_pe_h] · [c_kv_j | k_pe_j])  over cache positions j <= q_pos0 + i
//   o_lat_h = Σ_j softmax(s_h)_j · c_kv_j      (this kernel; bf16 out)
//   v_h     = o_lat_h · W_UV_hᵀ                (cuBLAS, after)
// One latent "head" serves every query head, so a block takes 8 query heads and reads each cache
// entry once for all of them. Long contexts are split into `n_splits` ranges (flash-decoding); a
// second kernel merges the partial softmaxes.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/latent_cache_ops.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

struct MlaDecodeParams {
    int n_q = 0;  // query tokens (1 in plain decode)
    int n_heads = 0;
    int d_latent = 0;    // kv_lora_rank (even, <= 512)
    int d_rope = 0;      // qk_rope_head_dim (even); cache.entry_dim == d_latent + d_rope
    int64_t q_pos0 = 0;  // position of query 0; query i attends positions [0, q_pos0 + i]
    // When set, q_pos0 is read from here on the device instead (a CUDA graph replays one launch
    // at every position), and split_len must be 0: each split then covers
    // ceil(context / n_splits) positions rounded up to 32, so empty splits are fine.
    const int32_t* q_pos0_device = nullptr;

    const float* q_lat = nullptr;  // [n_q, H, d_latent] fp32
    int64_t q_lat_token_stride = 0, q_lat_head_stride = 0;
    const __nv_bfloat16* q_pe = nullptr;  // [n_q, H, d_rope] after RoPE
    int64_t q_pe_token_stride = 0, q_pe_head_stride = 0;
    PagedCacheRef cache;  // entries for positions [0, q_pos0 + n_q) already written

    int n_splits = 1;             // from planMlaDecode()
    int64_t split_len = 0;        // positions per split, a multiple of 32 (0 with q_pos0_device)
    float* partial_o = nullptr;   // workspace [n_q, H, n_splits, d_latent]
    float* partial_ml = nullptr;  // workspace [n_q, H, n_splits, 2] (running max, sum)

    __nv_bfloat16* out = nullptr;  // o_lat [n_q, H, d_latent]
    int64_t out_token_stride = 0, out_head_stride = 0;
    float softmax_scale = 0.0f;
};

struct MlaDecodePlan {
    int n_splits = 1;
    int64_t split_len = 32;
};

// Splits a context of `ctx_len` positions so that about two blocks per multiprocessor run, never
// fewer than 256 positions per split, never more than `max_splits` splits.
MlaDecodePlan planMlaDecode(int64_t ctx_len, int n_q, int n_heads, int n_sms, int max_splits);

Status launchMlaDecode(const MlaDecodeParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
