#pragma once
// Small work a one-token decode kernel hands to its LAST block (issue 9): the block that finishes
// last, once every block of the grid has written its outputs, does it before the grid ends.
//
// Why: a decode step is a chain of dependent launches, and the ablation of session 8
// (scripts/decode_ablation.sh, Lite, 1K context) found that the two RMSNorm launches per layer
// alone cost 175 µs of a 2,135 µs step: 3.2 µs each for 16 KB of work. The attention prologue
// (kv_a norm, RoPE, cache write) is such a launch too. The work is tiny, so one block does it in
// about a microsecond, right after the last output of the kernel that produced its input; the
// next kernel's PDL wait (pdl.cuh) then covers it, as it covers the whole grid.
//
// The two kinds of tail work:
//   - a residual add + RMSNorm after a kernel whose fp32 output is the sublayer's delta
//     (o_proj, the MoE or dense MLP down projection): residual += delta in place, and x_out =
//     bf16(rmsnorm(residual) · weight), the next sublayer's input (rmsnorm.cu's numbers except
//     for the order of the fp32 sum of squares);
//   - the attention prologue of one token after the q/kv_a projection (attention_prologue_fused.h):
//     the same roles, the same code.
// How the last block is found: every block, after its output stores, fences and adds one to
// `counter`; the block that brings it to the grid size is last and resets it to zero for the next
// launch (graph replays reuse it). Kernels that use the counter one after another may share it:
// a kernel only counts after its PDL wait, i.e. after the previous user finished.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/attention_prologue_fused.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

struct GridTail {
    unsigned* counter = nullptr;  // device, zero before the launch (the last block leaves it zero)

    // Residual add + RMSNorm (active when residual is set): over n = the kernel's output rows.
    float* residual = nullptr;                   // [n], updated in place
    const float* delta = nullptr;                // [n]: the kernel's own fp32 output
    const __nv_bfloat16* norm_weight = nullptr;  // [n]
    __nv_bfloat16* x_out = nullptr;              // [n]
    int n = 0;
    float eps = 0.0f;

    // Attention prologue of one token (active when prologue.n_tokens == 1).
    AttentionPrologueParams prologue;

    __host__ __device__ bool normActive() const { return residual != nullptr; }
    __host__ __device__ bool prologueActive() const { return prologue.n_tokens == 1; }
    __host__ __device__ bool active() const { return normActive() || prologueActive(); }
};

// InvalidArgument when an active tail cannot run: no counter, missing norm pointers, a norm that
// does not cover the producing kernel's fp32 output (`outputRows`, 0 when it has none) exactly,
// or a bad prologue (checkAttentionPrologue).
Status checkGridTail(const GridTail& t, int outputRows);

}  // namespace dsv2::cuda
