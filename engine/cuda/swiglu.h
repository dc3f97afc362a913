#pragma once
// Fused SwiGLU for the MLPs (dense, shared experts, routed experts): one GEMM produces
// [gate | up] per row (the weights are stored concatenated), this kernel gives
//   out = bf16(silu(gate) · up)   in fp32, rounded once.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

struct SwigluParams {
    int n_rows = 0;
    int n_inter = 0;                          // width of gate (and of up)
    const __nv_bfloat16* gate_up = nullptr;   // [n_rows, in_stride]: [gate (n_inter) | up (n_inter)]
    int64_t in_stride = 0;
    __nv_bfloat16* out = nullptr;             // [n_rows, out_stride]
    int64_t out_stride = 0;
};

Status launchSwiglu(const SwigluParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
