#pragma once
// The MoE FFN of ONE token without a host round trip (decode, CUDA graphs): the router's top-k
// experts are read on the device, so nothing waits for the host between the router and the
// experts. Two kernels stream exactly the chosen experts' weights (top_k routed + the shared
// expert):
//   1. gate and up rows of every chosen expert and of the shared expert with SwiGLU fused (one warp
//      per activation; bf16 rounding of gate, up and the product, as the grouped path);
//   2. the down projections with the weighted combine fused (a block per 4 output rows, split-K
//      over its 8 warps, partial sums added in a fixed order: deterministic, no scratch):
//      out[j] = Σ_k w_k · down_k[j]·act_k + down_shared[j]·act_shared, fp32.
// Both are launched with programmatic dependent launch (pdl.cuh). gate|up waits for the kernel
// before it first (but see x_ready_before_wait); down reads the routing (topk_ids/weights, which
// must come from work enqueued before this call: then they are complete once down starts) and its
// first weights before its wait (down_early), and act after it. Launch geometry and measurements: moe_decode.cu.
// moeForward() (moe_layer.h) keeps the grouped per-expert path for prefill chunks.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

struct MoeDecodeParams {
    int hidden = 0;  // K of gate|up, N of down (a multiple of 8)
    int top_k = 0;
    int inter = 0;                                         // moe_intermediate_size (a multiple of 8)
    int shared_inter = 0;                                  // n_shared_experts · moe_intermediate_size; 0: none
    const __nv_bfloat16* x = nullptr;                      // [hidden], normed input, 16-byte aligned
    const int32_t* topk_ids = nullptr;                     // [top_k] device (from the router)
    const float* topk_weights = nullptr;                   // [top_k] device
    const __nv_bfloat16* const* expert_gate_up = nullptr;  // [n_experts] device: [2·inter, hidden] each
    const __nv_bfloat16* const* expert_down = nullptr;     // [n_experts] device: [hidden, inter] each
    const __nv_bfloat16* shared_gate_up = nullptr;         // [2·shared_inter, hidden]
    const __nv_bfloat16* shared_down = nullptr;            // [hidden, shared_inter]
    __nv_bfloat16* act = nullptr;                          // scratch [top_k·inter + shared_inter], 16-byte aligned
    float* out = nullptr;                                  // [hidden]
    // True when x was written by a kernel BEFORE the one launched just before launchMoeDecode (the
    // router), and that router is PDL-launched by the rules of pdl.cuh: it triggers its dependents
    // only after its own wait, so once the gate|up kernel starts, x is complete and visible. The
    // shared expert's activations (no routing needed) are then computed before the gate|up kernel
    // waits for the router: they overlap the router instead of following it. Never set it when
    // the router itself writes x (a folded norm).
    bool x_ready_before_wait = false;
    // down: the routing and the first weights before the PDL wait (see above); false waits first
    // (DSV2_MOE_EARLY_DOWN=0, for A/B).
    bool down_early = true;
    // down: let the next kernel launch before down waits (pdl.cuh, the exception to rule 3); only
    // when it reads nothing but weights before its own wait (a norm: the next layer's or the final one).
    bool down_launches_next_early = false;
};

// Elements of act scratch the call needs.
inline int64_t moeDecodeActElements(int top_k, int inter, int shared_inter) {
    return static_cast<int64_t>(top_k) * inter + shared_inter;
}

Status launchMoeDecode(const MoeDecodeParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
