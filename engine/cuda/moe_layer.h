#pragma once
// The feed-forward half of a layer on the GPU, composed from the kernels and cuBLAS:
//  - mlpForward: dense MLP / shared experts, out = down(silu(gate·x) · up·x), gate|up as ONE weight;
//  - moeForward: router GEMM (fp32 logits) -> top-k on the GPU -> token->expert permutation ->
//    expert GEMMs over contiguous row ranges -> SwiGLU -> weighted combine with the shared experts.
// Outputs are fp32 deltas for the residual stream.
//
// The routed experts' GEMMs, two ways (MoeExpertGemm):
//  - grouped (default): two tensor-core launches over all experts with SwiGLU fused into the
//    gate|up one (moe_grouped_gemm.h); they read the expert offsets on the device: no host sync,
//    graph-capturable;
//  - cuBLAS: one gate|up and one down GEMM per expert that got tokens, sized from the offsets
//    copied to the host (one stream sync per MoE layer), plus swiglu.cu. Taken with
//    DSV2_MOE_GEMM=cublas (A/B) and where the grouped kernels do not support the geometry.

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
    PinnedBuffer<int32_t> hostOffsets;   // [n_experts + 1] (the cuBLAS path only)

private:
    int64_t m_maxTokens = 0;
};

// The router kernel's parameters for n_tokens rows of scratch.logits, into scratch.topkIds/Weights.
MoeRouterParams routerParams(const MoeGeometry& g, int n_tokens, FfnScratch& scratch);

// out [T, hidden] fp32 (ldo) = MLP(x [T, hidden] bf16 (ldx)); beta = 1 adds onto out.
Status mlpForward(cublasHandle_t blas, const MlpDeviceWeights& w, int hidden, const __nv_bfloat16* x, int64_t ldx,
                  int64_t n_tokens, float* out, int64_t ldo, float beta, FfnScratch& scratch, cudaStream_t stream);

enum class MoeExpertGemm {
    Auto,     // grouped unless DSV2_MOE_GEMM=cublas or the geometry is unsupported
    Grouped,  // grouped; an unsupported geometry is an error (tests)
    Cublas,   // the per-expert cuBLAS loop
};

// Whether moeForward runs the routed experts grouped for this geometry and choice (an error only
// for Grouped with an unsupported geometry).
Result<bool> useGroupedExpertGemm(const MoeGeometry& g, MoeExpertGemm path);

// out [T, hidden] fp32 = Σ_k w_k · Expert_k(x) + Shared(x). The routing stays in scratch.topkIds /
// scratch.topkWeights ([T, top_k], sorted by weight) for the caller to record.
Status moeForward(cublasHandle_t blas, const MoeGeometry& g, const MoeDeviceWeights& w, const __nv_bfloat16* x,
                  int64_t n_tokens, float* out, FfnScratch& scratch, cudaStream_t stream,
                  MoeExpertGemm path = MoeExpertGemm::Auto);

}  // namespace dsv2::cuda
