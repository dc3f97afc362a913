#pragma once
// The routed experts of a prefill chunk as two grouped GEMMs on tensor cores (moeForward's default
// path; DSV2_MOE_GEMM=cublas keeps the per-expert cuBLAS loop). Rows are the permuted token rows
// (moe_permute.h): expert e owns rows [off[e], off[e+1]) of the activations, and the offsets are
// read ON THE DEVICE, so nothing waits for the host and the launches can be graph-captured.
//   gate|up + SwiGLU:  act[r, j] = bf16( silu(bf16(x[r]·gate_e[j])) · bf16(x[r]·up_e[j]) )
//   down:              y[r, :]   = act[r] · down_eᵀ                                (fp32 out)
// with gate_e = rows [0, inter) and up_e = rows [inter, 2·inter) of expert e's gate|up weight
// [2·inter, hidden], and down_e [hidden, inter]; the bf16 rounding points are those of the cuBLAS
// path (gate|up stored in bf16, then swiglu.cu). An expert whose weight pointer is null (it lives
// on another GPU) is skipped: its rows are not written.
//
// Shapes: hidden and inter multiples of 8 (16-byte rows), up to kMoeGroupedMaxExperts experts;
// everything else (rows per expert, widths that are not a multiple of the tile) is handled.
// moeGroupedGemmSupported() says whether a geometry qualifies, so the caller can fall back.
//
// Two kernels do the work: on compute capability 9.0 (H100/H200) a wgmma kernel
// (moe_grouped_gemm_wgmma.cu: warp-specialised, swapped operands so the tile follows each expert's
// row count), elsewhere the mma.sync kernel (moe_grouped_gemm.cu). DSV2_MOE_GEMM=mma forces the
// mma.sync kernel (A/B measurement); MoeGroupedGemmParams::kernel picks one per call.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

// The expert pointers travel in the kernel's parameters (by value: graph-capturable, no device
// table to keep in sync with the weights); 256 × 8 bytes stays inside the 4 KB parameter space.
constexpr int kMoeGroupedMaxExperts = 256;

enum class MoeGroupedKernel {
    Auto,     // wgmma where the GPU runs it, unless DSV2_MOE_GEMM=mma; otherwise mma.sync
    MmaSync,  // the sm_80+ mma.sync kernel
    Wgmma,    // the sm_90a wgmma kernel; Unsupported where the GPU cannot run it
};

struct MoeGroupedGemmParams {
    int max_rows = 0;   // rows the offsets can name at most (n_tokens·top_k): sizes the grid
    int n_experts = 0;  // <= kMoeGroupedMaxExperts
    int hidden = 0;
    int inter = 0;                            // expert_inter
    const int32_t* expert_offsets = nullptr;  // device [n_experts + 1], non-decreasing, off[0] = 0
    // HOST array of n_experts device pointers: gate|up [2·inter, hidden] (launchMoeGroupedGateUp)
    // or down [hidden, inter] (launchMoeGroupedDown); a null entry skips that expert's rows.
    const __nv_bfloat16* const* expert_weights = nullptr;
    const __nv_bfloat16* in = nullptr;  // device [rows, in_stride]: x (gate|up) or act (down)
    int64_t in_stride = 0;
    void* out = nullptr;  // device [rows, out_stride]: act bf16 (gate|up) or y fp32 (down)
    int64_t out_stride = 0;
    int tile_m = 0;  // mma.sync kernel: rows per block tile, 64 or 128; 0 picks from the mean rows per expert
    MoeGroupedKernel kernel = MoeGroupedKernel::Auto;
};

// Whether the wgmma kernel runs on the current device (compute capability 9.0 and this build's
// sm_90a code present).
bool moeGroupedWgmmaAvailable();

// Ok when hidden/inter/n_experts fit the kernels; otherwise a message naming what does not.
Status moeGroupedGemmSupported(int hidden, int inter, int n_experts);

// act = SwiGLU(x · gate|upᵀ) per expert (out: bf16 [rows, inter]).
Status launchMoeGroupedGateUp(const MoeGroupedGemmParams& p, cudaStream_t stream);
// y = act · downᵀ per expert (out: fp32 [rows, hidden]).
Status launchMoeGroupedDown(const MoeGroupedGemmParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
