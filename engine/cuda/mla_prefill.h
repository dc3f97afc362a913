#pragma once
// MLA prefill in the expanded (MHA) form, flash-style: per (query tile, head) one block streams
// the keys in tiles with an online softmax, so no [tokens × tokens] score matrix exists.
// bf16 inputs, fp32 scores/softmax/accumulators, bf16 output. Causal with an offset, so a long
// prompt is processed in chunks: the chunk's queries (positions q_pos0 ..) against keys [0, n_kv).
// Two kernels: tensor cores (mla_prefill_mma.cu, FlashAttention-2 style, DeepSeek-V2 head dims
// 128 + 64 / 128 only) and CUDA cores (mla_prefill.cu: any even dims, the fallback and reference).
//
//   score(i, j) = scale · ([q_nope | q_pe]_i · [k_nope | k_pe]_j),  j <= q_pos0 + i
//   out_i       = Σ_j softmax_j(score) · v_j
// k_nope and v come from kv_b_proj (rows per head [k_nope | v]); k_pe is one head shared by all.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

enum class MlaPrefillKernel {
    Auto,        // tensor cores where supported, unless DSV2_MLA_PREFILL=simt (read once)
    Simt,        // CUDA cores (any even dims)
    TensorCore,  // mma.sync; Unsupported for other dims or alignments
};

struct MlaPrefillParams {
    int n_q = 0;         // query tokens in this chunk
    int n_kv = 0;        // keys at positions [0, n_kv)
    int64_t q_pos0 = 0;  // position of query 0; query i attends keys j <= q_pos0 + i
    int n_heads = 0;
    int d_nope = 0;  // qk_nope_head_dim (even)
    int d_rope = 0;  // qk_rope_head_dim (even); d_nope + d_rope <= 256
    int d_v = 0;     // v_head_dim (even, <= 128)

    const __nv_bfloat16* q = nullptr;  // [n_q, H, d_nope + d_rope]: [q_nope | q_pe] (after RoPE)
    int64_t q_token_stride = 0, q_head_stride = 0;
    const __nv_bfloat16* kv = nullptr;  // [n_kv, H, d_nope + d_v]: [k_nope | v]
    int64_t kv_token_stride = 0, kv_head_stride = 0;
    const __nv_bfloat16* k_pe = nullptr;  // [n_kv, d_rope] (after RoPE), shared by all heads
    int64_t k_pe_token_stride = 0;
    __nv_bfloat16* out = nullptr;  // [n_q, H, d_v]
    int64_t out_token_stride = 0, out_head_stride = 0;

    float softmax_scale = 0.0f;  // ModelConfig::softmaxScale() (includes YaRN m²)
    MlaPrefillKernel kernel = MlaPrefillKernel::Auto;
    int mma_q_tile = 0;  // tensor cores: queries per block, 64 or 128 (0: chosen from the grid size)
};

Status launchMlaPrefill(const MlaPrefillParams& p, cudaStream_t stream);

// The tensor-core kernel alone (launchMlaPrefill dispatches to it): Ok where it applies (d_nope
// 128, d_rope 64, d_v 128; pointers 16-byte aligned, strides multiples of 8 elements), else
// Unsupported with the reason.
Status mlaPrefillMmaSupported(const MlaPrefillParams& p);
Status launchMlaPrefillMma(const MlaPrefillParams& p, cudaStream_t stream);

// The softmax step of the GEMM form of prefill attention (mla_attention.cpp): scores of a block of
// n_rows queries (rows of every head) against n_keys keys, fp32 [H, n_rows, n_keys] as the score
// GEMM left them. Row i of each head (query position q_pos0 + i) sees keys j <= q_pos0 + i:
//   probs[h, i, j] = bf16(softmax_j(scale · scores[h, i, j])) for those keys, 0 beyond,
// the bf16 probabilities the P·V GEMM takes (as FlashAttention rounds P before its P·V product).
struct MlaSoftmaxParams {
    int n_heads = 0;
    int n_rows = 0;
    int n_keys = 0;
    int64_t q_pos0 = 0;
    const float* scores = nullptr;   // [H, n_rows, n_keys]
    __nv_bfloat16* probs = nullptr;  // [H, n_rows, n_keys]
    float softmax_scale = 0.0f;
};

Status launchMlaCausalSoftmax(const MlaSoftmaxParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
