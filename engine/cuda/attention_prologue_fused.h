#pragma once
// The small steps between the q/kv_a projections and attention, fused into one launch
// (issue 9: a decode step was ~460 launches, and these four moved almost no bytes but cost
// 3–5 µs each). Per token it does, in blocks of different roles:
//   - q_a_layernorm in place on q_a (q_lora models; before q_b_proj), when q_a is set;
//   - kv_a_layernorm on c_kv (the first kv_lora values of [c_kv | k_pe]), RoPE on k_pe, both in
//     place, and the resulting entry written into its slot of the paged latent cache, when kv_a
//     is set (the cache sees exactly the normed/rotated bf16 values, as before);
//   - RoPE on q_pe of every head in place, when q_pe is set.
// Each part computes what launchRmsNorm (plain mode), launchRope and launchLatentCacheWrite
// compute, with the same block size, the same fp32 order of operations and the same bf16
// rounding points, so the results are bit-identical to the separate kernels. Positions come from
// the device, so the launch can be captured in a CUDA graph and replayed at every position.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/latent_cache_ops.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

struct AttentionPrologueParams {
    int n_tokens = 0;
    const int32_t* positions = nullptr;  // [n_tokens] absolute positions (device): RoPE angles and cache slots
    float eps = 1e-6f;                   // q_a / kv_a layernorm epsilon

    // q_a_layernorm (optional): q_a [n_tokens, qa_stride], first qa_cols values normed in place.
    __nv_bfloat16* q_a = nullptr;
    int qa_cols = 0;
    int64_t qa_stride = 0;
    const __nv_bfloat16* qa_weight = nullptr;

    // Latent part (optional): kv_a [n_tokens, kv_stride] = [c_kv (kv_lora) | k_pe (rope_dim)].
    __nv_bfloat16* kv_a = nullptr;
    int64_t kv_stride = 0;
    int kv_lora = 0;
    const __nv_bfloat16* kv_weight = nullptr;  // kv_a_layernorm [kv_lora]
    PagedCacheRef cache;                       // entry_dim == kv_lora + rope_dim

    // q_pe RoPE (optional): element i of head h of token t at q_pe[t·q_token_stride + h·q_head_stride + i].
    __nv_bfloat16* q_pe = nullptr;
    int n_heads = 0;
    int64_t q_token_stride = 0;
    int64_t q_head_stride = 0;

    // RoPE (k_pe and q_pe), as RopeParams.
    int rope_dim = 0;
    const float* inv_freq = nullptr;  // [rope_dim / 2]
    float amplitude = 1.0f;
};

// InvalidArgument naming the bad part, or ok (n_tokens may be 0).
Status validateAttentionPrologue(const AttentionPrologueParams& p);
Status launchAttentionPrologue(const AttentionPrologueParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
