#pragma once
// The feed-forward half of a layer on the GPU, composed from the kernels and cuBLAS:
//  - mlpForward: dense MLP / shared experts, out = down(silu(gate·x) · up·x), gate|up as ONE weight;
//  - moeForward: router GEMM (fp32 logits) -> top-k on the GPU -> token->expert permutation ->
//    per-expert GEMMs over contiguous row ranges (grouped: one gate|up GEMM and one down GEMM per
//    expert that got tokens) -> fused SwiGLU -> weighted combine with the shared experts.
// Outputs are fp32 deltas for the residual stream.
//
// moeForward copies the per-expert row offsets to the host (one stream sync per MoE layer) to size
// the expert GEMMs; a device-side grouped GEMM that avoids it belongs to the speed issue.

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cuda/device_buffer.h"
#include "cuda/moe_router.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

struct MlpDeviceWeights {
    const __nv_bfloat16* gate_up = nullptr;  // [2·inter, hidden]: gate rows then up rows
    const __nv_bfloat16* down = nullptr;     // [hidden, inter]
    int inter = 0;
};

struct MoeGeometry {
    int hidden = 0;
    int n_experts = 0;
    int top_k = 0;
    int expert_inter = 0;  // moe_intermediate_size
    bool group_limited = false;
    int n_group = 1;
    int topk_group = 1;
    bool norm_topk_prob = false;
    float routed_scaling_factor = 1.0f;
};

struct MoeDeviceWeights {
    const __nv_bfloat16* gate = nullptr;    // router [n_experts, hidden]
    std::vector<MlpDeviceWeights> experts;  // n_experts
    MlpDeviceWeights shared;                // gate_up == nullptr when there are no shared experts
    // Several GPUs: experts of other GPUs have null weights, and this [n_experts] device mask says
    // which are here (null: all of them).
    const uint8_t* expertHere = nullptr;
};

// Scratch for one FFN at a time, sized for maxTokens tokens.
class FfnScratch {
public:
    // maxInter: widest dense/shared MLP (gate|up output is 2·maxInter wide).
    static Result<FfnScratch> allocate(const MoeGeometry& g, int64_t maxTokens, int maxInter);
    static int64_t bytesFor(const MoeGeometry& g, int64_t maxTokens, int maxInter);
    int64_t maxTokens() const { return m_maxTokens; }

    // Sized for the larger of T rows of a dense/shared MLP (maxInter) and T·top_k routed rows.
    DeviceBuffer<__nv_bfloat16> gateUp;  // [rows, 2·inter]
    DeviceBuffer<__nv_bfloat16> act;     // [rows, inter]
    DeviceBuffer<float> logits;          // [maxTokens, n_experts]
    DeviceBuffer<int32_t> topkIds;       // [maxTokens, top_k]
    DeviceBuffer<float> topkWeights;     // [maxTokens, top_k]
    DeviceBuffer<int32_t> counts;        // [n_experts]
    DeviceBuffer<int32_t> offsets;       // [n_experts + 1]
    DeviceBuffer<int32_t> permSrc;       // [maxTokens·top_k]
    DeviceBuffer<int32_t> entryRow;      // [maxTokens·top_k]
    DeviceBuffer<__nv_bfloat16> xPerm;   // [maxTokens·top_k, hidden]
    DeviceBuffer<float> yPerm;           // [maxTokens·top_k, hidden]
    PinnedBuffer<int32_t> hostOffsets;   // [n_experts + 1]

private:
    int64_t m_maxTokens = 0;
};

// The router kernel's parameters for n_tokens rows of scratch.logits, into scratch.topkIds/Weights.
MoeRouterParams routerParams(const MoeGeometry& g, int n_tokens, FfnScratch& scratch);

// out [T, hidden] fp32 (ldo) = MLP(x [T, hidden] bf16 (ldx)); beta = 1 adds onto out.
Status mlpForward(cublasHandle_t blas, const MlpDeviceWeights& w, int hidden, const __nv_bfloat16* x, int64_t ldx,
                  int64_t n_tokens, float* out, int64_t ldo, float beta, FfnScratch& scratch, cudaStream_t stream);

// out [T, hidden] fp32 = Σ_k w_k · Expert_k(x) + Shared(x). The routing stays in scratch.topkIds /
// scratch.topkWeights ([T, top_k], sorted by weight) for the caller to record.
Status moeForward(cublasHandle_t blas, const MoeGeometry& g, const MoeDeviceWeights& w, const __nv_bfloat16* x,
                  int64_t n_tokens, float* out, FfnScratch& scratch, cudaStream_t stream);

}  // namespace dsv2::cuda
