#include "cuda/moe_permute.h"

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kPerThread = 4;  // consecutive entries per thread per chunk

// Block e of both kernels walks all n = n_tokens·top_k entries in chunks of kThreads·kPerThread
// (12288 entries of a 2K-token Lite chunk: 3 chunks); thread t owns entries c0 + kPerThread·t ...
// + kPerThread - 1, so thread order is entry order. (Was 256 threads, one entry each, with a block
// barrier per 256 entries: 13 + 16 µs a layer at 2K tokens under ncu.)

// grid: n_experts blocks. Block e counts the entries routed to e (O(experts · entries) reads, all
// from L2: 64 experts × 49K entries for an 8K-token chunk of Lite is nothing next to the GEMMs).
__global__ void __launch_bounds__(kThreads) moeCountKernel(MoePermuteParams p) {
    __shared__ int warpCounts[kWarps];
    const int e = blockIdx.x;
    const int n = p.n_tokens * p.top_k;
    int count = 0;
    for (int i = threadIdx.x; i < n; i += kThreads) count += p.topk_ids[i] == e;
    for (int o = kWarpSize / 2; o > 0; o /= 2) count += __shfl_xor_sync(kFullMask, count, o);
    if (threadIdx.x % kWarpSize == 0) warpCounts[threadIdx.x / kWarpSize] = count;
    __syncthreads();
    if (threadIdx.x == 0) {
        int total = 0;
        for (int w = 0; w < kWarps; ++w) total += warpCounts[w];
        p.expert_counts[e] = total;
    }
}

// grid: n_experts blocks. Block e writes its rows in entry order (a block-wide stable compaction:
// each thread counts its matches among its kPerThread entries, an exclusive scan over the block
// gives its first row).
__global__ void __launch_bounds__(kThreads) moeScatterKernel(MoePermuteParams p) {
    __shared__ int warpTotals[kWarps];
    const int e = blockIdx.x;
    const int lane = threadIdx.x % kWarpSize;
    const int warp = threadIdx.x / kWarpSize;
    int base = 0;
    for (int i = 0; i < e; ++i) base += p.expert_counts[i];
    if (threadIdx.x == 0) {
        p.expert_offsets[e] = base;
        if (e == p.n_experts - 1) p.expert_offsets[p.n_experts] = base + p.expert_counts[e];
    }
    const int n = p.n_tokens * p.top_k;
    for (int c0 = 0; c0 < n; c0 += kThreads * kPerThread) {
        const int first = c0 + threadIdx.x * kPerThread;
        bool match[kPerThread];
        int mine = 0;
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) {
            match[j] = first + j < n && p.topk_ids[first + j] == e;
            mine += match[j];
        }
        // Inclusive scan of `mine` over the warp, then over the warps' totals.
        int incl = mine;
        for (int o = 1; o < kWarpSize; o *= 2) {
            const int v = __shfl_up_sync(kFullMask, incl, o);
            if (lane >= o) incl += v;
        }
        if (lane == kWarpSize - 1) warpTotals[warp] = incl;
        __syncthreads();
        int warpOffset = 0, chunkTotal = 0;
        for (int w = 0; w < kWarps; ++w) {
            const int t = warpTotals[w];
            if (w < warp) warpOffset += t;
            chunkTotal += t;
        }
        int row = base + warpOffset + incl - mine;
#pragma unroll
        for (int j = 0; j < kPerThread; ++j)
            if (match[j]) {
                p.perm_src[row] = first + j;
                p.entry_row[first + j] = row;
                ++row;
            }
        base += chunkTotal;
        __syncthreads();  // warpTotals is rewritten by the next chunk
    }
}

// grid: n_rows blocks; one block copies one row, in units of Vec (uint4 = 8 bf16 where every row
// start is 16-byte aligned and n_cols % 8 == 0, else one bf16): at 2K tokens of Lite the rows are
// 50 MB a layer, and 2-byte accesses ran at a third of the bandwidth.
template <typename Vec>
__global__ void moeGatherKernel(MoeGatherParams p) {
    constexpr int kPer = sizeof(Vec) / sizeof(bf16);
    const int row = blockIdx.x;
    const int token = p.perm_src[row] / p.top_k;
    const auto* src = reinterpret_cast<const Vec*>(p.x + static_cast<int64_t>(token) * p.x_stride);
    auto* dst = reinterpret_cast<Vec*>(p.out + static_cast<int64_t>(row) * p.out_stride);
    for (int c = threadIdx.x; c < p.n_cols / kPer; c += blockDim.x) dst[c] = src[c];
}

__device__ __forceinline__ float4 fma4(float w, float4 y, float4 v) {
    return make_float4(fmaf(w, y.x, v.x), fmaf(w, y.y, v.y), fmaf(w, y.z, v.z), fmaf(w, y.w, v.w));
}
__device__ __forceinline__ float fma4(float w, float y, float v) { return fmaf(w, y, v); }

// grid: n_tokens blocks. Each thread reads shared[t][c] before writing out[t][c]: aliasing is safe.
// Vec = float4 where every row start is 16-byte aligned and n_cols % 4 == 0, else float; the same
// additions in the same order (shared, then slot 0, 1, ...) either way.
template <typename Vec>
__global__ void moeCombineKernel(MoeCombineParams p) {
    constexpr int kPer = sizeof(Vec) / sizeof(float);
    const int t = blockIdx.x;
    const int32_t* rows = p.entry_row + static_cast<int64_t>(t) * p.top_k;
    const float* w = p.topk_weights + static_cast<int64_t>(t) * p.top_k;
    auto* out = reinterpret_cast<Vec*>(p.out + static_cast<int64_t>(t) * p.out_stride);
    const Vec* shared =
        p.shared ? reinterpret_cast<const Vec*>(p.shared + static_cast<int64_t>(t) * p.shared_stride) : nullptr;
    const int32_t* ids = p.topk_ids ? p.topk_ids + static_cast<int64_t>(t) * p.top_k : nullptr;
    for (int c = threadIdx.x; c < p.n_cols / kPer; c += blockDim.x) {
        Vec v = shared ? shared[c] : Vec{};
        for (int s = 0; s < p.top_k; ++s) {
            if (ids && !p.expert_here[ids[s]]) continue;  // computed on another GPU
            const auto* y =
                reinterpret_cast<const Vec*>(p.expert_out + static_cast<int64_t>(rows[s]) * p.expert_out_stride);
            v = fma4(w[s], y[c], v);
        }
        out[c] = v;
    }
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

Status launchMoePermute(const MoePermuteParams& p, cudaStream_t stream) {
    if (p.n_experts <= 0 || p.top_k <= 0 || p.n_tokens < 0 || !p.expert_counts || !p.expert_offsets)
        return Status(StatusCode::InvalidArgument, "launchMoePermute: bad parameters");
    if (p.n_tokens > 0 && (!p.topk_ids || !p.perm_src || !p.entry_row))
        return Status(StatusCode::InvalidArgument, "launchMoePermute: missing pointer");
    if (static_cast<int64_t>(p.n_tokens) * p.top_k > INT32_MAX)
        return Status(StatusCode::InvalidArgument, "launchMoePermute: too many entries");
    moeCountKernel<<<p.n_experts, kThreads, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    moeScatterKernel<<<p.n_experts, kThreads, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

Status launchMoeGather(const MoeGatherParams& p, cudaStream_t stream) {
    if (p.n_rows == 0) return Status::ok();
    if (p.n_rows < 0 || p.n_cols <= 0 || p.top_k <= 0 || !p.perm_src || !p.x || !p.out || p.x_stride < p.n_cols ||
        p.out_stride < p.n_cols)
        return Status(StatusCode::InvalidArgument, "launchMoeGather: bad parameters");
    const bool vec =
        p.n_cols % 8 == 0 && p.x_stride % 8 == 0 && p.out_stride % 8 == 0 && aligned16(p.x) && aligned16(p.out);
    if (vec)
        moeGatherKernel<uint4><<<p.n_rows, 256, 0, stream>>>(p);
    else
        moeGatherKernel<bf16><<<p.n_rows, 256, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

Status launchMoeCombine(const MoeCombineParams& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return Status::ok();
    if (p.n_tokens < 0 || p.top_k <= 0 || p.n_cols <= 0 || !p.expert_out || !p.entry_row || !p.topk_weights || !p.out ||
        p.expert_out_stride < p.n_cols || p.out_stride < p.n_cols || (p.shared && p.shared_stride < p.n_cols))
        return Status(StatusCode::InvalidArgument, "launchMoeCombine: bad parameters");
    const bool vec = p.n_cols % 4 == 0 && p.expert_out_stride % 4 == 0 && p.out_stride % 4 == 0 &&
                     aligned16(p.expert_out) && aligned16(p.out) &&
                     (!p.shared || (p.shared_stride % 4 == 0 && aligned16(p.shared)));
    if (vec)
        moeCombineKernel<float4><<<p.n_tokens, 256, 0, stream>>>(p);
    else
        moeCombineKernel<float><<<p.n_tokens, 256, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
