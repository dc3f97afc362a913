// q_nope·W_UK and o_lat·W_UVᵀ of the absorbed MLA form as GEMV kernels for 1–4 query tokens
// (see mla_absorb_gemv.h for why: they replace two cuBLAS strided batches per layer that were
// launch-bound at ~5 µs each).
//
// PDL (pdl.cuh): both load their first kv_b rows (weights, which no kernel of the step writes)
// before waiting for the previous kernel, so the weight fetch overlaps that kernel's tail (q_lat:
// the prologue; v: the decode kernel, whose merge leaves most SMs idle). Expected: ~1-2 µs each
// of launch + first-load latency hidden per layer (not measured here).
#include "cuda/mla_absorb_gemv.h"

#include "cuda/attention_prologue.cuh"
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/mla_decode.h"
#include "cuda/mla_split_merge.cuh"
#include "cuda/pdl.cuh"

namespace dsv2::cuda {
namespace {

// q_lat: W_UK[h] is [nope, kv_lora] row-major and the sum runs over its rows, so threads own
// output columns (8 consecutive per thread, one 16-byte load per row) and row groups split the
// rows; the row groups' partial sums are added in shared memory in a fixed order.
constexpr int kQLatColThreads = 16;  // × 8 columns = 128 columns per block
constexpr int kQLatCols = kQLatColThreads * 8;
constexpr int kQLatRowGroups = 16;  // 256 threads
constexpr int kQLatThreads = kQLatColThreads * kQLatRowGroups;
constexpr int kQLatUnroll = 8;  // 16-byte loads in flight per thread (128 rows: all of them)

// The prologue blocks add their norms as launchAttentionPrologue's block for a few tokens does.
constexpr int kPrologueSumThreads = 1024;
static_assert(kPrologueSumThreads % kQLatThreads == 0, "the norm's order is emulated by whole blocks");

// grid: n_heads × column chunks q_lat blocks (head-major), then, with kPrologue, the prologue's
// n_q × rolesPerToken blocks (attention_prologue.cuh): those wait for the q/kv_a projection and do
// their role, the q_lat blocks are as without them.
template <int NT, bool kPrologue>
__global__ void __launch_bounds__(kQLatThreads) mlaQLatKernel(MlaAbsorbGemvParams p, AttentionPrologueParams pro) {
    __shared__ float partial[kQLatRowGroups][NT][kQLatCols];
    const int chunks = (p.kv_lora + kQLatCols - 1) / kQLatCols;
    const int qLatBlocks = p.n_heads * chunks;
    if constexpr (kPrologue) {
        const int b = static_cast<int>(blockIdx.x) - qLatBlocks;
        if (b >= 0) {
            __shared__ float scratch[32];
            pdlWaitForPrevious();
            pdlLaunchNext();
            const int roles = prologue_detail::rolesPerToken(pro, kQLatThreads);
            prologue_detail::runRole<kPrologueSumThreads>(pro, b / roles, b % roles, scratch);
            return;
        }
    }
    const int h = static_cast<int>(blockIdx.x) / chunks;
    const int col0 = (static_cast<int>(blockIdx.x) % chunks) * kQLatCols;
    const int ct = threadIdx.x % kQLatColThreads;
    const int rg = threadIdx.x / kQLatColThreads;
    const int col = col0 + ct * 8;
    const bool active = col < p.kv_lora;  // kv_lora % 8 == 0: a vector is wholly in or out
    const int64_t kvbRows = static_cast<int64_t>(p.d_nope) + p.d_v;
    const bf16* wHead = p.kv_b + static_cast<int64_t>(h) * kvbRows * p.kv_lora + col;
    const bf16* qHead = p.q + static_cast<int64_t>(h) * p.q_head_stride;

    float acc[NT][8];
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[t][j] = 0.0f;
    uint4 wv[kQLatUnroll];
    auto loadRows = [&](int d0) {
#pragma unroll
        for (int u = 0; u < kQLatUnroll; ++u) {
            const int d = d0 + u * kQLatRowGroups;
            wv[u] = d < p.d_nope ? __ldcs(reinterpret_cast<const uint4*>(wHead + static_cast<int64_t>(d) * p.kv_lora))
                                 : make_uint4(0, 0, 0, 0);
        }
    };
    // The first rows (all of them for d_nope <= 128) before the wait: weights only (pdl.cuh rule 1).
    if (active) loadRows(rg);
    pdlWaitForPrevious();
    pdlLaunchNext();
    if (active) {
        for (int d0 = rg; d0 < p.d_nope; d0 += kQLatRowGroups * kQLatUnroll) {
            if (d0 != rg) loadRows(d0);
#pragma unroll
            for (int u = 0; u < kQLatUnroll; ++u) {
                const int d = d0 + u * kQLatRowGroups;
                if (d >= p.d_nope) break;
                const auto* w2 = reinterpret_cast<const __nv_bfloat162*>(&wv[u]);
#pragma unroll
                for (int t = 0; t < NT; ++t) {
                    const float qv = toFloat(qHead[static_cast<int64_t>(t) * p.q_token_stride + d]);
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        const float2 wf = __bfloat1622float2(w2[j]);
                        acc[t][2 * j] = fmaf(qv, wf.x, acc[t][2 * j]);
                        acc[t][2 * j + 1] = fmaf(qv, wf.y, acc[t][2 * j + 1]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int j = 0; j < 8; ++j) partial[rg][t][ct * 8 + j] = acc[t][j];
    __syncthreads();
    for (int i = threadIdx.x; i < NT * kQLatCols; i += kQLatThreads) {
        const int t = i / kQLatCols;
        const int c = i % kQLatCols;
        if (col0 + c >= p.kv_lora) continue;
        float s = 0.0f;
#pragma unroll
        for (int g = 0; g < kQLatRowGroups; ++g) s += partial[g][t][c];
        p.q_lat[t * p.lat_token_stride + h * p.lat_head_stride + col0 + c] = s;
    }
}

// v: W_UV[h] rows are contiguous along kv_lora, like a linear layer: one warp per (head, output
// row), 16-byte loads of the row and of o_lat, fp32 warp sum, one bf16 rounding (as gemv.cu).
constexpr int kVRowsPerBlock = 8;

constexpr int kVPrefetch = 4;  // 16-byte weight loads per lane before the wait: a whole row up to kv_lora 1024

// kMerge (one token, mla_split_merge.cuh): the block's rows lie in one head (d_v % 8 == 0); when
// the decode kernel left this step's merge here, the block first merges that head's splits into
// shared memory and reads o_lat from there.
template <int NT, bool kMerge>
__global__ void __launch_bounds__(kVRowsPerBlock* kWarpSize) mlaVUpKernel(MlaAbsorbGemvParams p) {
    const int lane = threadIdx.x % kWarpSize;
    const int row = blockIdx.x * kVRowsPerBlock + threadIdx.x / kWarpSize;  // h·d_v + j
    const bool valid = row < p.n_heads * p.d_v;
    const int h = valid ? row / p.d_v : 0;
    const int j = valid ? row % p.d_v : 0;
    const int64_t kvbRows = static_cast<int64_t>(p.d_nope) + p.d_v;
    const uint4* w = reinterpret_cast<const uint4*>(p.kv_b + (h * kvbRows + p.d_nope + j) * p.kv_lora);
    const int nVec = p.kv_lora / 8;
    // The row's first weights before the wait (pdl.cuh rule 1: weights only); o_lat after it.
    uint4 wPre[kVPrefetch];
#pragma unroll
    for (int u = 0; u < kVPrefetch; ++u) {
        const int v = lane + u * kWarpSize;
        wPre[u] = valid && v < nVec ? __ldcs(w + v) : make_uint4(0, 0, 0, 0);
    }
    pdlWaitLaunchingNext(p.launch_next_early);
    const uint4* x[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t)
        x[t] = reinterpret_cast<const uint4*>(p.o_lat + t * p.o_token_stride + h * p.o_head_stride);
    if constexpr (kMerge) {
        __shared__ __align__(16) bf16 merged[kMlaVUpMergeMaxLatent];
        __shared__ float sW[split_merge::kMaxSplits];
        __shared__ float sInv;
        const int used = mlaDecodeDeviceSplits(static_cast<int64_t>(*p.q_pos0_device) + 1, p.n_splits).active;
        if (used <= p.merge_max_splits) {  // block-uniform
            const int hb = static_cast<int>(blockIdx.x) * kVRowsPerBlock / p.d_v;
            const int64_t head = static_cast<int64_t>(hb) * p.n_splits;
            split_merge::mergeHead(p.partial_o + head * p.kv_lora, reinterpret_cast<const float2*>(p.partial_ml) + head,
                                   p.kv_lora, used, p.kv_lora, merged, sW, &sInv);
            x[0] = reinterpret_cast<const uint4*>(merged);
        }
    }
    if (!valid) return;
    // The same fp32 order as warpRowDot for kv_lora <= 1024 (each lane adds its vectors v = lane,
    // lane + 32, ... in turn); the rest of a longer row follows. o_lat may be in shared memory
    // (kMerge): generic loads there.
    auto xAt = [&](int t, int v) { return kMerge ? x[t][v] : __ldg(x[t] + v); };
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
#pragma unroll
    for (int u = 0; u < kVPrefetch; ++u) {
        const int v = lane + u * kWarpSize;
        if (v < nVec)
#pragma unroll
            for (int t = 0; t < NT; ++t) acc[t] += dot8(wPre[u], xAt(t, v));
    }
    for (int v = lane + kVPrefetch * kWarpSize; v < nVec; v += kWarpSize) {
        const uint4 wv = __ldcs(w + v);
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[t] += dot8(wv, xAt(t, v));
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        const float s = warpSum(acc[t]);
        if (lane == 0) p.out[t * p.out_token_stride + h * p.out_head_stride + j] = toBf16(s);
    }
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

Status checkCommon(const MlaAbsorbGemvParams& p) {
    if (!mlaAbsorbGemvSupported(p.n_q, p.kv_lora, p.kv_b) || p.n_heads <= 0 || p.d_nope <= 0 || p.d_v <= 0)
        return Status(StatusCode::InvalidArgument, "mla absorb gemv: unsupported shape or kv_b alignment");
    return Status::ok();
}

template <bool kPrologue>
cudaError_t launchQLat(const MlaAbsorbGemvParams& p, const AttentionPrologueParams& pro, unsigned blocks,
                       cudaStream_t stream) {
    const dim3 grid(blocks), block(kQLatThreads);
    switch (p.n_q) {
    case 1: return launchPdl(mlaQLatKernel<1, kPrologue>, grid, block, 0, stream, p, pro);
    case 2: return launchPdl(mlaQLatKernel<2, kPrologue>, grid, block, 0, stream, p, pro);
    case 3: return launchPdl(mlaQLatKernel<3, kPrologue>, grid, block, 0, stream, p, pro);
    default: return launchPdl(mlaQLatKernel<4, kPrologue>, grid, block, 0, stream, p, pro);
    }
}

}  // namespace

bool mlaAbsorbGemvSupported(int n_q, int kv_lora, const void* kv_b) {
    return n_q >= 1 && n_q <= kMlaAbsorbGemvMaxTokens && kv_lora > 0 && kv_lora % 8 == 0 && kv_b && aligned16(kv_b);
}

Status launchMlaQLatGemv(const MlaAbsorbGemvParams& p, cudaStream_t stream, const AttentionPrologueParams* prologue) {
    DSV2_RETURN_IF_ERROR(checkCommon(p));
    if (!p.q || !p.q_lat) return Status(StatusCode::InvalidArgument, "launchMlaQLatGemv: missing q or q_lat");
    const int64_t qLatBlocks = static_cast<int64_t>(p.n_heads) * ceilDiv(p.kv_lora, kQLatCols);
    int64_t prologueBlocks = 0;
    if (prologue) {
        if (prologue->n_tokens != p.n_q || prologue->q_a)
            return Status(StatusCode::InvalidArgument,
                          "launchMlaQLatGemv: the fused prologue must cover the same tokens and have no q_a norm "
                          "(that one precedes q_b_proj)");
        DSV2_RETURN_IF_ERROR(validateAttentionPrologue(*prologue));
        prologueBlocks = static_cast<int64_t>(p.n_q) * prologue_detail::rolesPerToken(*prologue, kQLatThreads);
    }
    if (qLatBlocks + prologueBlocks > INT32_MAX)
        return Status(StatusCode::InvalidArgument, "launchMlaQLatGemv: too many heads");
    const auto blocks = static_cast<unsigned>(qLatBlocks + prologueBlocks);
    DSV2_CUDA_CHECK(prologueBlocks > 0 ? launchQLat<true>(p, *prologue, blocks, stream)
                                       : launchQLat<false>(p, AttentionPrologueParams{}, blocks, stream));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

Status launchMlaVUpGemv(const MlaAbsorbGemvParams& p, cudaStream_t stream) {
    DSV2_RETURN_IF_ERROR(checkCommon(p));
    if (!p.o_lat || !p.out || !aligned16(p.o_lat) || (p.o_head_stride % 8) || (p.n_q > 1 && (p.o_token_stride % 8)))
        return Status(StatusCode::InvalidArgument, "launchMlaVUpGemv: missing or misaligned o_lat, or no output");
    const bool merge = p.merge_max_splits > 0;
    if (merge && (p.n_q != 1 || p.merge_max_splits > split_merge::kMaxSplits || !p.partial_o || !p.partial_ml ||
                  !p.q_pos0_device || p.n_splits < 1 || p.d_v % kVRowsPerBlock != 0 ||
                  p.kv_lora > kMlaVUpMergeMaxLatent || !aligned16(p.partial_o)))
        return Status(StatusCode::InvalidArgument,
                      "launchMlaVUpGemv: merging the decode splits needs one token, the partials, the device position, "
                      "d_v a multiple of 8, kv_lora <= " +
                          std::to_string(kMlaVUpMergeMaxLatent) + " and at most " +
                          std::to_string(split_merge::kMaxSplits) + " splits");
    const auto blocks = static_cast<unsigned>(ceilDiv(static_cast<int64_t>(p.n_heads) * p.d_v, kVRowsPerBlock));
    const dim3 block(kVRowsPerBlock * kWarpSize);
    cudaError_t err = cudaSuccess;
    switch (p.n_q) {
    case 1:
        err = merge ? launchPdl(mlaVUpKernel<1, true>, dim3(blocks), block, 0, stream, p)
                    : launchPdl(mlaVUpKernel<1, false>, dim3(blocks), block, 0, stream, p);
        break;
    case 2: err = launchPdl(mlaVUpKernel<2, false>, dim3(blocks), block, 0, stream, p); break;
    case 3: err = launchPdl(mlaVUpKernel<3, false>, dim3(blocks), block, 0, stream, p); break;
    default: err = launchPdl(mlaVUpKernel<4, false>, dim3(blocks), block, 0, stream, p); break;
    }
    DSV2_CUDA_CHECK(err);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
