#include "cuda/moe_layer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/cublas_gemm.h"
#include "cuda/gemv.h"
#include "cuda/moe_grouped_gemm.h"
#include "cuda/moe_permute.h"
#include "cuda/moe_router.h"
#include "cuda/swiglu.h"

namespace dsv2::cuda {
namespace {

// Elements of the act buffer: dense/shared rows (T · maxInter), routed rows (T · top_k ·
// expert_inter), or one token's routed + shared activations (the one-token path, moe_decode.h).
int64_t actElements(const MoeGeometry& g, int64_t maxTokens, int maxInter) {
    const int64_t routed = g.top_k * static_cast<int64_t>(g.expert_inter);
    return std::max({maxTokens * maxInter, maxTokens * routed, routed + maxInter});
}

// DSV2_MOE_GEMM=cublas: the per-expert cuBLAS loop (A/B measurement, fallback); anything else or
// unset: the grouped tensor-core kernels where the geometry allows. DSV2_MOE_TILE_M=64|128 pins
// their row tile (unset: chosen from the mean rows per expert). Read once per process.
bool groupedMoeRequested() {
    static const bool grouped = [] {
        const char* env = std::getenv("DSV2_MOE_GEMM");
        return !(env && std::strcmp(env, "cublas") == 0);
    }();
    return grouped;
}

int groupedTileM() {
    static const int tile = [] {
        const char* env = std::getenv("DSV2_MOE_TILE_M");
        const int v = env ? std::atoi(env) : 0;
        return v == 64 || v == 128 ? v : 0;
    }();
    return tile;
}

// Routed experts, grouped: two launches that read the expert offsets on the device.
Status routedExpertsGrouped(const MoeGeometry& g, const MoeDeviceWeights& w, int rows, FfnScratch& scratch,
                            cudaStream_t stream) {
    std::vector<const __nv_bfloat16*> weights(static_cast<size_t>(g.n_experts));
    MoeGroupedGemmParams p;
    p.max_rows = rows;
    p.n_experts = g.n_experts;
    p.hidden = g.hidden;
    p.inter = g.expert_inter;
    p.expert_offsets = scratch.offsets.data();
    p.expert_weights = weights.data();
    p.tile_m = groupedTileM();
    for (size_t e = 0; e < weights.size(); ++e) weights[e] = w.experts[e].gate_up;
    p.in = scratch.xPerm.data();
    p.in_stride = g.hidden;
    p.out = scratch.act.data();
    p.out_stride = g.expert_inter;
    DSV2_RETURN_IF_ERROR(launchMoeGroupedGateUp(p, stream));
    for (size_t e = 0; e < weights.size(); ++e) weights[e] = w.experts[e].down;
    p.in = scratch.act.data();
    p.in_stride = g.expert_inter;
    p.out = scratch.yPerm.data();
    p.out_stride = g.hidden;
    return launchMoeGroupedDown(p, stream);
}

// Routed experts, one cuBLAS GEMM per expert sized from offsets copied to the host (the caller
// started that copy); syncs the stream once.
Status routedExpertsCublas(cublasHandle_t blas, const MoeGeometry& g, const MoeDeviceWeights& w, int rows,
                           FfnScratch& scratch, cudaStream_t stream) {
    DSV2_CUDA_CHECK(cudaStreamSynchronize(stream));
    const int hidden = g.hidden;
    const int inter = g.expert_inter;
    for (int e = 0; e < g.n_experts; ++e) {
        const int64_t begin = scratch.hostOffsets[static_cast<size_t>(e)];
        const int64_t n = scratch.hostOffsets[static_cast<size_t>(e) + 1] - begin;
        const MlpDeviceWeights& ew = w.experts[static_cast<size_t>(e)];
        if (n <= 0 || !ew.gate_up) continue;  // no tokens, or an expert of another GPU
        // gate|up rows [begin, begin+n) into the same rows of gateUp, then SwiGLU, then down.
        DSV2_RETURN_IF_ERROR(linear(blas, scratch.xPerm.data() + begin * hidden, hidden, ew.gate_up,
                                    scratch.gateUp.data() + begin * 2 * inter, GemmType::BF16, 2 * inter, n, 2 * inter,
                                    hidden, stream));
    }
    SwigluParams s;
    s.n_rows = rows;
    s.n_inter = inter;
    s.gate_up = scratch.gateUp.data();
    s.in_stride = 2 * inter;
    s.out = scratch.act.data();
    s.out_stride = inter;
    DSV2_RETURN_IF_ERROR(launchSwiglu(s, stream));
    for (int e = 0; e < g.n_experts; ++e) {
        const int64_t begin = scratch.hostOffsets[static_cast<size_t>(e)];
        const int64_t n = scratch.hostOffsets[static_cast<size_t>(e) + 1] - begin;
        if (n <= 0 || !w.experts[static_cast<size_t>(e)].down) continue;
        DSV2_RETURN_IF_ERROR(linear(blas, scratch.act.data() + begin * inter, inter,
                                    w.experts[static_cast<size_t>(e)].down, scratch.yPerm.data() + begin * hidden,
                                    GemmType::F32, hidden, n, hidden, inter, stream));
    }
    return Status::ok();
}

}  // namespace

Result<bool> useGroupedExpertGemm(const MoeGeometry& g, MoeExpertGemm path) {
    if (path == MoeExpertGemm::Cublas) return false;
    const Status supported = moeGroupedGemmSupported(g.hidden, g.expert_inter, g.n_experts);
    if (path == MoeExpertGemm::Grouped && !supported.isOk()) return supported;
    return supported.isOk() && (path == MoeExpertGemm::Grouped || groupedMoeRequested());
}

int64_t FfnScratch::bytesFor(const MoeGeometry& g, int64_t maxTokens, int maxInter) {
    const int64_t perm = maxTokens * g.top_k;
    return actElements(g, maxTokens, maxInter) * 3 * 2 + maxTokens * g.n_experts * 4 + maxTokens * g.top_k * 8 +
           (2 * static_cast<int64_t>(g.n_experts) + 1) * 4 + perm * 8 + perm * g.hidden * (2 + 4);
}

Result<FfnScratch> FfnScratch::allocate(const MoeGeometry& g, int64_t maxTokens, int maxInter) {
    FfnScratch s;
    s.m_maxTokens = maxTokens;
    const auto act = static_cast<size_t>(actElements(g, maxTokens, maxInter));
    const auto T = static_cast<size_t>(maxTokens);
    const auto perm = T * static_cast<size_t>(g.top_k);
    DSV2_ASSIGN_OR_RETURN(s.gateUp, DeviceBuffer<__nv_bfloat16>::allocate(2 * act));
    DSV2_ASSIGN_OR_RETURN(s.act, DeviceBuffer<__nv_bfloat16>::allocate(act));
    if (g.n_experts > 0) {
        DSV2_ASSIGN_OR_RETURN(s.logits, DeviceBuffer<float>::allocate(T * g.n_experts));
        DSV2_ASSIGN_OR_RETURN(s.topkIds, DeviceBuffer<int32_t>::allocate(perm));
        DSV2_ASSIGN_OR_RETURN(s.topkWeights, DeviceBuffer<float>::allocate(perm));
        DSV2_ASSIGN_OR_RETURN(s.counts, DeviceBuffer<int32_t>::allocate(static_cast<size_t>(g.n_experts)));
        DSV2_ASSIGN_OR_RETURN(s.offsets, DeviceBuffer<int32_t>::allocate(static_cast<size_t>(g.n_experts) + 1));
        DSV2_ASSIGN_OR_RETURN(s.permSrc, DeviceBuffer<int32_t>::allocate(perm));
        DSV2_ASSIGN_OR_RETURN(s.entryRow, DeviceBuffer<int32_t>::allocate(perm));
        DSV2_ASSIGN_OR_RETURN(s.xPerm, DeviceBuffer<__nv_bfloat16>::allocate(perm * g.hidden));
        DSV2_ASSIGN_OR_RETURN(s.yPerm, DeviceBuffer<float>::allocate(perm * g.hidden));
        DSV2_ASSIGN_OR_RETURN(s.hostOffsets, PinnedBuffer<int32_t>::allocate(static_cast<size_t>(g.n_experts) + 1));
    }
    return s;
}

MoeRouterParams routerParams(const MoeGeometry& g, int n_tokens, FfnScratch& scratch) {
    MoeRouterParams r;
    r.n_tokens = n_tokens;
    r.n_experts = g.n_experts;
    r.top_k = g.top_k;
    r.group_limited = g.group_limited;
    r.n_group = g.n_group;
    r.topk_group = g.topk_group;
    r.norm_topk_prob = g.norm_topk_prob;
    r.routed_scaling_factor = g.routed_scaling_factor;
    r.logits = scratch.logits.data();
    r.logits_stride = g.n_experts;
    r.topk_ids = scratch.topkIds.data();
    r.topk_weights = scratch.topkWeights.data();
    return r;
}

Status mlpForward(cublasHandle_t blas, const MlpDeviceWeights& w, int hidden, const __nv_bfloat16* x, int64_t ldx,
                  int64_t n_tokens, float* out, int64_t ldo, float beta, FfnScratch& scratch, cudaStream_t stream) {
    if (n_tokens == 0) return Status::ok();
    const int64_t inter = w.inter;
    if (n_tokens * 2 * inter > static_cast<int64_t>(scratch.gateUp.size()))
        return Status(StatusCode::Internal,
                      "mlpForward: scratch too small for " + std::to_string(n_tokens) + " tokens");
    // gate|up [T, 2·inter] = x · [gate; up]ᵀ
    DSV2_RETURN_IF_ERROR(linearFew(blas, x, ldx, w.gate_up, scratch.gateUp.data(), GemmType::BF16, 2 * inter, n_tokens,
                                   2 * inter, hidden, stream));
    SwigluParams s;
    s.n_rows = static_cast<int>(n_tokens);
    s.n_inter = static_cast<int>(inter);
    s.gate_up = scratch.gateUp.data();
    s.in_stride = 2 * inter;
    s.out = scratch.act.data();
    s.out_stride = inter;
    DSV2_RETURN_IF_ERROR(launchSwiglu(s, stream));
    // out [T, hidden] = act · downᵀ (+ out)
    return linearFew(blas, scratch.act.data(), inter, w.down, out, GemmType::F32, ldo, n_tokens, hidden, inter, stream,
                     beta);
}

Status moeForward(cublasHandle_t blas, const MoeGeometry& g, const MoeDeviceWeights& w, const __nv_bfloat16* x,
                  int64_t n_tokens, float* out, FfnScratch& scratch, cudaStream_t stream, MoeExpertGemm path) {
    if (n_tokens == 0) return Status::ok();
    if (n_tokens > scratch.maxTokens())
        return Status(StatusCode::Internal, "moeForward: " + std::to_string(n_tokens) +
                                                " tokens exceed the scratch planned for " +
                                                std::to_string(scratch.maxTokens()));
    if (static_cast<int>(w.experts.size()) != g.n_experts)
        return Status(StatusCode::Internal, "moeForward: expert weights do not match n_experts");
    const int T = static_cast<int>(n_tokens);
    const int hidden = g.hidden;

    // Router logits in fp32: [T, E] = x · W_gateᵀ
    DSV2_RETURN_IF_ERROR(linear(blas, x, hidden, w.gate, scratch.logits.data(), GemmType::F32, g.n_experts, T,
                                g.n_experts, hidden, stream));
    DSV2_RETURN_IF_ERROR(launchMoeRouter(routerParams(g, T, scratch), stream));

    MoePermuteParams pp;
    pp.n_tokens = T;
    pp.top_k = g.top_k;
    pp.n_experts = g.n_experts;
    pp.topk_ids = scratch.topkIds.data();
    pp.expert_counts = scratch.counts.data();
    pp.expert_offsets = scratch.offsets.data();
    pp.perm_src = scratch.permSrc.data();
    pp.entry_row = scratch.entryRow.data();
    DSV2_RETURN_IF_ERROR(launchMoePermute(pp, stream));
    DSV2_ASSIGN_OR_RETURN(const bool grouped, useGroupedExpertGemm(g, path));
    if (!grouped)  // the cuBLAS loop sizes its GEMMs on the host
        DSV2_CUDA_CHECK(cudaMemcpyAsync(scratch.hostOffsets.data(), scratch.offsets.data(),
                                        sizeof(int32_t) * (static_cast<size_t>(g.n_experts) + 1),
                                        cudaMemcpyDeviceToHost, stream));

    // The shared experts straight into `out` (while the offsets travel, on the cuBLAS path), and
    // the permuted rows.
    if (w.shared.gate_up) {
        DSV2_RETURN_IF_ERROR(mlpForward(blas, w.shared, hidden, x, hidden, T, out, hidden, 0.0f, scratch, stream));
    }
    MoeGatherParams gp;
    gp.n_rows = T * g.top_k;
    gp.n_cols = hidden;
    gp.top_k = g.top_k;
    gp.perm_src = scratch.permSrc.data();
    gp.x = x;
    gp.x_stride = hidden;
    gp.out = scratch.xPerm.data();
    gp.out_stride = hidden;
    DSV2_RETURN_IF_ERROR(launchMoeGather(gp, stream));
    if (grouped)
        DSV2_RETURN_IF_ERROR(routedExpertsGrouped(g, w, T * g.top_k, scratch, stream));
    else
        DSV2_RETURN_IF_ERROR(routedExpertsCublas(blas, g, w, T * g.top_k, scratch, stream));

    MoeCombineParams c;
    c.n_tokens = T;
    c.top_k = g.top_k;
    c.n_cols = hidden;
    c.expert_out = scratch.yPerm.data();
    c.expert_out_stride = hidden;
    c.entry_row = scratch.entryRow.data();
    c.topk_weights = scratch.topkWeights.data();
    if (w.expertHere) {
        c.topk_ids = scratch.topkIds.data();
        c.expert_here = w.expertHere;
    }
    c.shared = w.shared.gate_up ? out : nullptr;
    c.shared_stride = hidden;
    c.out = out;
    c.out_stride = hidden;
    return launchMoeCombine(c, stream);
}

}  // namespace dsv2::cuda
