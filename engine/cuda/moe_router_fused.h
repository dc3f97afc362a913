#pragma once
// The one-token MoE router as ONE launch (issue 9): the gate logits GEMV (fp32 logits =
// W_gate [n_experts, hidden] · x) and the top-k / group-limited selection of moe_router.h. Before,
// these were two launches per MoE layer (gemv.cu's kernel, then moeRouterKernel), the second
// reading 256 bytes. Here a cluster of 8 blocks (sm_90) shares the GEMV rows, each block stores
// its logits into block 0's shared memory, and block 0's first warp runs the selection.
// The logits are bit-identical to gemv.cu's (same per-lane order of the 16-byte dot products, same
// warp reduction) and the selection is the same code as the router kernel (moe_router_select.cuh),
// so the chosen experts and weights are exactly those of the two-launch path.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/moe_router.h"
#include "cuda/residual_norm.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

struct MoeRouterGemvParams {
    MoeRouterParams route;                // n_tokens must be 1; route.logits / logits_stride are unused
    int hidden = 0;                       // a multiple of 8
    const __nv_bfloat16* x = nullptr;     // [hidden], 16-byte aligned
    const __nv_bfloat16* gate = nullptr;  // [n_experts, hidden] row-major, 16-byte aligned
    float* logits_out = nullptr;          // optional: the fp32 logits [n_experts] are also stored here
    // Optional: x is not read but computed in every block from the residual stream
    // (residual_norm.h); norm.x_out then receives it for the expert kernels.
    ResidualNorm norm;
};

// True when this GPU and these shapes can run the fused kernel (sm_90 cluster launch and code
// built for it, hidden % 8 == 0, aligned pointers); else use linearFew + launchMoeRouter.
bool moeRouterGemvSupported(const MoeRouterGemvParams& p);

Status launchMoeRouterGemv(const MoeRouterGemvParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
