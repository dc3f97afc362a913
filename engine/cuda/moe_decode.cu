#include "cuda/moe_decode.h"

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kMaxSegments = 33;  // top_k <= 32 routed experts + the shared expert

// One warp per activation i: the gate row i and the up row i of its expert, then
// act[i] = bf16(silu(bf16(gate)) · bf16(up)) (the rounding points of the grouped path: gate|up
// stored in bf16, then swiglu.cu). Indices [0, top_k·inter) belong to the routed experts in router
// order, the rest to the shared expert.
__global__ void __launch_bounds__(kThreads) moeDecodeGateUpKernel(MoeDecodeParams p) {
    const int lane = threadIdx.x % kWarpSize;
    const int64_t i = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarpSize;
    const int64_t routedAct = static_cast<int64_t>(p.top_k) * p.inter;
    if (i >= routedAct + p.shared_inter) return;
    const bf16 *gate, *up;
    if (i < routedAct) {
        const int slot = static_cast<int>(i / p.inter);
        const int64_t r = i % p.inter;
        const bf16* w = p.expert_gate_up[p.topk_ids[slot]];
        if (!w) return;  // an expert of another GPU (several GPUs): the down kernel skips its slot
        gate = w + r * p.hidden;
        up = w + (p.inter + r) * p.hidden;
    } else {
        const int64_t r = i - routedAct;
        gate = p.shared_gate_up + r * p.hidden;
        up = p.shared_gate_up + (p.shared_inter + r) * p.hidden;
    }
    const auto* x = reinterpret_cast<const uint4*>(p.x);
    const auto* g16 = reinterpret_cast<const uint4*>(gate);
    const auto* u16 = reinterpret_cast<const uint4*>(up);
    const int nVec = p.hidden / 8;
    float g = 0.0f, u = 0.0f;
    int v = lane;
    for (; v + kWarpSize < nVec; v += 2 * kWarpSize) {  // four 16-byte weight loads in flight
        const uint4 g0 = __ldcs(g16 + v), g1 = __ldcs(g16 + v + kWarpSize);
        const uint4 u0 = __ldcs(u16 + v), u1 = __ldcs(u16 + v + kWarpSize);
        const uint4 x0 = __ldg(x + v), x1 = __ldg(x + v + kWarpSize);
        g += dot8(g0, x0) + dot8(g1, x1);
        u += dot8(u0, x0) + dot8(u1, x1);
    }
    for (; v < nVec; v += kWarpSize) {
        const uint4 xv = __ldg(x + v);
        g += dot8(__ldcs(g16 + v), xv);
        u += dot8(__ldcs(u16 + v), xv);
    }
    g = warpSum(g);
    u = warpSum(u);
    if (lane == 0) p.act[i] = toBf16(silu(toFloat(toBf16(g))) * toFloat(toBf16(u)));
}

// One warp per output row j walks the concatenation of the chosen experts' rows j
// (top_k · inter + shared_inter values) as one long row, so a lane keeps four 16-byte loads in
// flight across expert boundaries instead of waiting at the end of every short row.
__global__ void __launch_bounds__(kThreads) moeDecodeDownKernel(MoeDecodeParams p) {
    __shared__ const bf16* segBase[kMaxSegments];  // down weights of each segment (row 0)
    __shared__ float segScale[kMaxSegments];
    __shared__ int segStride[kMaxSegments];  // elements per weight row = inter of the segment
    __shared__ int segAct[kMaxSegments];     // first act vector of the segment
    __shared__ int nRouted;                  // routed segments on this GPU (all of them on one GPU)
    if (threadIdx.x == 0) {
        // The routed experts held here, in router order (with several GPUs some live elsewhere:
        // their slots are left out, so the long row below only walks this GPU's weights).
        int n = 0;
        for (int k = 0; k < p.top_k; ++k) {
            const bf16* w = p.expert_down[p.topk_ids[k]];
            if (!w) continue;
            segBase[n] = w;
            segScale[n] = p.topk_weights[k];
            segStride[n] = p.inter;
            segAct[n] = k * (p.inter / 8);
            ++n;
        }
        nRouted = n;
        segBase[n] = p.shared_down;
        segScale[n] = 1.0f;
        segStride[n] = p.shared_inter;
        segAct[n] = p.top_k * (p.inter / 8);
    }
    __syncthreads();

    const int lane = threadIdx.x % kWarpSize;
    const int j = blockIdx.x * kWarps + threadIdx.x / kWarpSize;
    if (j >= p.hidden) return;
    const auto* act16 = reinterpret_cast<const uint4*>(p.act);
    const int interVec = p.inter / 8;
    const int routedVec = nRouted * interVec, nVec = routedVec + p.shared_inter / 8;
    // Vector v of the long row: segment k = v / interVec for routed experts, else the shared one.
    auto load = [&](int v, float& scale, uint4& act) {
        const int k = v < routedVec ? v / interVec : nRouted;
        const int within = v < routedVec ? v - k * interVec : v - routedVec;
        scale = segScale[k];
        act = __ldg(act16 + segAct[k] + within);
        return __ldcs(reinterpret_cast<const uint4*>(segBase[k] + static_cast<int64_t>(j) * segStride[k]) + within);
    };
    float sum = 0.0f;
    int v = lane;
    for (; v + 3 * kWarpSize < nVec; v += 4 * kWarpSize) {
        uint4 wv[4], av[4];
        float sc[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) wv[u] = load(v + u * kWarpSize, sc[u], av[u]);
#pragma unroll
        for (int u = 0; u < 4; ++u) sum += sc[u] * dot8(wv[u], av[u]);
    }
    for (; v < nVec; v += kWarpSize) {
        float sc;
        uint4 av;
        const uint4 wv = load(v, sc, av);
        sum += sc * dot8(wv, av);
    }
    sum = warpSum(sum);
    if (lane == 0) p.out[j] = sum;
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

Status launchMoeDecode(const MoeDecodeParams& p, cudaStream_t stream) {
    if (p.hidden <= 0 || p.hidden % 8 || p.top_k <= 0 || p.top_k >= kMaxSegments || p.inter <= 0 || p.inter % 8 ||
        p.shared_inter < 0 || p.shared_inter % 8)
        return Status(StatusCode::Unsupported,
                      "launchMoeDecode: sizes must be multiples of 8, at most 32 experts per token");
    if (!p.x || !aligned16(p.x) || !p.topk_ids || !p.topk_weights || !p.expert_gate_up || !p.expert_down || !p.act ||
        !aligned16(p.act) || !p.out || (p.shared_inter > 0 && (!p.shared_gate_up || !p.shared_down)))
        return Status(StatusCode::InvalidArgument, "launchMoeDecode: missing or misaligned pointer");
    const int64_t nAct = moeDecodeActElements(p.top_k, p.inter, p.shared_inter);
    moeDecodeGateUpKernel<<<static_cast<unsigned>(ceilDiv(nAct, kWarps)), kThreads, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    moeDecodeDownKernel<<<static_cast<unsigned>(ceilDiv(p.hidden, kWarps)), kThreads, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
