#pragma once
// Token -> expert permutation for the routed experts, and the weighted combine back.
//   permute: entries (t, s) = t·top_k + s grouped by expert, in entry order within an expert
//            (deterministic), giving expert_offsets, perm_src (row -> entry) and entry_row (entry -> row);
//   gather:  xp[row] = x[perm_src[row] / top_k]              (bf16 rows for the expert GEMMs)
//   combine: out[t] = shared[t] + Σ_s w[t,s] · y[entry_row[t·top_k + s]]   (fp32, s ascending)

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

struct MoePermuteParams {
    int n_tokens = 0;
    int top_k = 0;
    int n_experts = 0;
    const int32_t* topk_ids = nullptr;  // [n_tokens, top_k]
    int32_t* expert_counts = nullptr;   // [n_experts] (workspace, also an output)
    int32_t* expert_offsets = nullptr;  // [n_experts + 1]: expert e owns rows [off[e], off[e+1])
    int32_t* perm_src = nullptr;        // [n_tokens·top_k]: row -> entry
    int32_t* entry_row = nullptr;       // [n_tokens·top_k]: entry -> row
};

struct MoeGatherParams {
    int n_rows = 0;  // n_tokens·top_k
    int n_cols = 0;  // hidden
    int top_k = 0;
    const int32_t* perm_src = nullptr;  // [n_rows]
    const __nv_bfloat16* x = nullptr;   // [n_tokens, x_stride]
    int64_t x_stride = 0;
    __nv_bfloat16* out = nullptr;  // [n_rows, out_stride]
    int64_t out_stride = 0;
};

struct MoeCombineParams {
    int n_tokens = 0;
    int top_k = 0;
    int n_cols = 0;
    const float* expert_out = nullptr;  // [n_tokens·top_k, expert_out_stride], permuted rows
    int64_t expert_out_stride = 0;
    const int32_t* entry_row = nullptr;   // [n_tokens·top_k]
    const float* topk_weights = nullptr;  // [n_tokens, top_k]
    // Several GPUs: entries whose expert lives on another GPU (expert_here[topk_ids] == 0) are
    // skipped (their rows were never computed). Both null: every expert is here.
    const int32_t* topk_ids = nullptr;     // [n_tokens, top_k]
    const uint8_t* expert_here = nullptr;  // [n_experts]
    const float* shared = nullptr;         // [n_tokens, shared_stride] or nullptr; may alias out
    int64_t shared_stride = 0;
    float* out = nullptr;  // [n_tokens, out_stride]
    int64_t out_stride = 0;
};

Status launchMoePermute(const MoePermuteParams& p, cudaStream_t stream);
Status launchMoeGather(const MoeGatherParams& p, cudaStream_t stream);
Status launchMoeCombine(const MoeCombineParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
