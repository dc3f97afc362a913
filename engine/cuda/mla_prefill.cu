#include "cuda/mla_prefill.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {
namespace {

constexpr int kQTile = 32;  // queries per block
constexpr int kKTile = 32;  // keys per tile: one key per lane when scoring
constexpr int kWarps = 4;
constexpr int kQPerWarp = kQTile / kWarps;  // 8
constexpr int kMaxDqk = 256;
constexpr int kMaxDv = 128;  // 2 bf16 pairs per lane
constexpr int kVPairsPerLane = kMaxDv / 64;

// K rows in shared memory get an odd number of 4-byte words so that 32 lanes reading the same
// column of 32 different rows hit 32 different banks.
__host__ __device__ inline int kRowStride(int dqk) { return (dqk / 2) % 2 == 0 ? dqk + 2 : dqk; }

__device__ __forceinline__ float2 ld2(const bf16* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

// grid: (ceil(n_q / 32), n_heads); block: 128 threads. Warp w owns queries w·8 .. w·8+7 of the tile.
__global__ void __launch_bounds__(kWarps* kWarpSize) mlaPrefillKernel(MlaPrefillParams p) {
    extern __shared__ __align__(16) unsigned char smemRaw[];
    const int dqk = p.d_nope + p.d_rope;
    const int ks = kRowStride(dqk);
    bf16* sQ = reinterpret_cast<bf16*>(smemRaw);  // [kQTile, dqk]
    bf16* sK = sQ + kQTile * dqk;                 // [kKTile, ks]
    bf16* sV = sK + kKTile * ks;                  // [kKTile, d_v]

    const int h = blockIdx.y;
    const int q0 = blockIdx.x * kQTile;
    const int tid = threadIdx.x;
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int halfQk = dqk / 2;
    const int halfV = p.d_v / 2;

    // Q tile (rows past n_q are zero and masked later).
    for (int idx = tid; idx < kQTile * halfQk; idx += blockDim.x) {
        const int r = idx / halfQk, w = idx % halfQk;
        const int qi = q0 + r;
        __nv_bfloat162 v = __floats2bfloat162_rn(0.0f, 0.0f);
        if (qi < p.n_q)
            v = *reinterpret_cast<const __nv_bfloat162*>(p.q + qi * p.q_token_stride + h * p.q_head_stride + 2 * w);
        *reinterpret_cast<__nv_bfloat162*>(sQ + r * dqk + 2 * w) = v;
    }

    const int lastQ = min(q0 + kQTile, p.n_q) - 1;
    const int64_t nKeys = min(static_cast<int64_t>(p.n_kv), p.q_pos0 + lastQ + 1);
    const int wq0 = q0 + warp * kQPerWarp;  // first query of this warp
    const bool warpActive = wq0 < p.n_q;
    const int64_t warpMaxPos = p.q_pos0 + min(wq0 + kQPerWarp, p.n_q) - 1;

    float m[kQPerWarp], l[kQPerWarp], acc[kQPerWarp][2 * kVPairsPerLane];
#pragma unroll
    for (int qq = 0; qq < kQPerWarp; ++qq) {
        m[qq] = -INFINITY;
        l[qq] = 0.0f;
#pragma unroll
        for (int c = 0; c < 2 * kVPairsPerLane; ++c) acc[qq][c] = 0.0f;
    }

    for (int64_t k0 = 0; k0 < nKeys; k0 += kKTile) {
        __syncthreads();  // the previous tile (and, first time, nothing) is no longer read
        for (int idx = tid; idx < kKTile * halfQk; idx += blockDim.x) {
            const int r = idx / halfQk, d = 2 * (idx % halfQk);
            const int64_t key = k0 + r;
            __nv_bfloat162 v = __floats2bfloat162_rn(0.0f, 0.0f);
            if (key < nKeys) {
                const bf16* src = d < p.d_nope ? p.kv + key * p.kv_token_stride + h * p.kv_head_stride + d
                                               : p.k_pe + key * p.k_pe_token_stride + (d - p.d_nope);
                v = *reinterpret_cast<const __nv_bfloat162*>(src);
            }
            *reinterpret_cast<__nv_bfloat162*>(sK + r * ks + d) = v;
        }
        for (int idx = tid; idx < kKTile * halfV; idx += blockDim.x) {
            const int r = idx / halfV, d = 2 * (idx % halfV);
            const int64_t key = k0 + r;
            __nv_bfloat162 v = __floats2bfloat162_rn(0.0f, 0.0f);
            if (key < nKeys)
                v = *reinterpret_cast<const __nv_bfloat162*>(p.kv + key * p.kv_token_stride + h * p.kv_head_stride +
                                                             p.d_nope + d);
            *reinterpret_cast<__nv_bfloat162*>(sV + r * p.d_v + d) = v;
        }
        __syncthreads();
        if (!warpActive || k0 > warpMaxPos) continue;  // warp-uniform: whole tile masked for this warp

        // Scores: lane = key, 8 queries at once (q reads are warp broadcasts).
        float s[kQPerWarp];
#pragma unroll
        for (int qq = 0; qq < kQPerWarp; ++qq) s[qq] = 0.0f;
        const bf16* kRow = sK + lane * ks;
        const bf16* qRows = sQ + warp * kQPerWarp * dqk;
        for (int d = 0; d < dqk; d += 2) {
            const float2 kf = ld2(kRow + d);
#pragma unroll
            for (int qq = 0; qq < kQPerWarp; ++qq) {
                const float2 qf = ld2(qRows + qq * dqk + d);
                s[qq] = fmaf(qf.x, kf.x, fmaf(qf.y, kf.y, s[qq]));
            }
        }

        const int64_t key = k0 + lane;
        float pv[kQPerWarp];
#pragma unroll
        for (int qq = 0; qq < kQPerWarp; ++qq) {
            const int qi = wq0 + qq;
            const bool valid = qi < p.n_q && key < nKeys && key <= p.q_pos0 + qi;
            const float sc = valid ? s[qq] * p.softmax_scale : -INFINITY;
            const float mNew = fmaxf(m[qq], warpMax(sc));
            const float prob = valid ? expf(sc - mNew) : 0.0f;
            // m == -inf means nothing seen yet: acc and l are zero, any finite alpha works.
            const float alpha = m[qq] == -INFINITY ? 0.0f : expf(m[qq] - mNew);
            l[qq] = l[qq] * alpha + warpSum(prob);
            m[qq] = mNew;
#pragma unroll
            for (int c = 0; c < 2 * kVPairsPerLane; ++c) acc[qq][c] *= alpha;
            pv[qq] = prob;
        }

        const int keysHere = static_cast<int>(min(static_cast<int64_t>(kKTile), nKeys - k0));
        for (int j = 0; j < keysHere; ++j) {
            float2 vf[kVPairsPerLane];
#pragma unroll
            for (int i = 0; i < kVPairsPerLane; ++i) {
                const int d = 2 * (lane + kWarpSize * i);
                vf[i] = d < p.d_v ? ld2(sV + j * p.d_v + d) : make_float2(0.0f, 0.0f);
            }
#pragma unroll
            for (int qq = 0; qq < kQPerWarp; ++qq) {
                const float pj = __shfl_sync(kFullMask, pv[qq], j);
#pragma unroll
                for (int i = 0; i < kVPairsPerLane; ++i) {
                    acc[qq][2 * i] = fmaf(pj, vf[i].x, acc[qq][2 * i]);
                    acc[qq][2 * i + 1] = fmaf(pj, vf[i].y, acc[qq][2 * i + 1]);
                }
            }
        }
    }

    if (!warpActive) return;
#pragma unroll
    for (int qq = 0; qq < kQPerWarp; ++qq) {
        const int qi = wq0 + qq;
        if (qi >= p.n_q) break;
        const float inv = l[qq] > 0.0f ? 1.0f / l[qq] : 0.0f;
        bf16* o = p.out + qi * p.out_token_stride + h * p.out_head_stride;
#pragma unroll
        for (int i = 0; i < kVPairsPerLane; ++i) {
            const int d = 2 * (lane + kWarpSize * i);
            if (d < p.d_v)
                *reinterpret_cast<__nv_bfloat162*>(o + d) =
                    __floats2bfloat162_rn(acc[qq][2 * i] * inv, acc[qq][2 * i + 1] * inv);
        }
    }
}

bool aligned4(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 4 == 0; }

// DSV2_MLA_PREFILL=simt forces the CUDA-core kernel where Auto would take the tensor cores.
bool envForcesSimt() {
    static const bool forced = [] {
        const char* env = std::getenv("DSV2_MLA_PREFILL");
        return env && std::strcmp(env, "simt") == 0;
    }();
    return forced;
}

}  // namespace

Status launchMlaPrefill(const MlaPrefillParams& p, cudaStream_t stream) {
    if (p.n_q == 0) return Status::ok();
    const int dqk = p.d_nope + p.d_rope;
    if (p.n_q < 0 || p.n_kv < p.q_pos0 + p.n_q || p.q_pos0 < 0 || p.n_heads <= 0 || p.d_nope <= 0 || p.d_rope <= 0 ||
        p.d_v <= 0)
        return Status(StatusCode::InvalidArgument,
                      "launchMlaPrefill: bad sizes (need n_kv >= q_pos0 + n_q and positive dimensions)");
    if (p.d_nope % 2 || p.d_rope % 2 || p.d_v % 2 || dqk > kMaxDqk || p.d_v > kMaxDv)
        return Status(StatusCode::Unsupported, "launchMlaPrefill: head dims must be even, nope+rope <= 256, v <= 128");
    if (!p.q || !p.kv || !p.k_pe || !p.out || !aligned4(p.q) || !aligned4(p.kv) || !aligned4(p.k_pe) ||
        !aligned4(p.out) || p.q_token_stride % 2 || p.q_head_stride % 2 || p.kv_token_stride % 2 ||
        p.kv_head_stride % 2 || p.k_pe_token_stride % 2 || p.out_token_stride % 2 || p.out_head_stride % 2)
        return Status(StatusCode::InvalidArgument, "launchMlaPrefill: pointers and strides must be bf16-pair aligned");
    if (p.kernel == MlaPrefillKernel::TensorCore ||
        (p.kernel == MlaPrefillKernel::Auto && !envForcesSimt() && mlaPrefillMmaSupported(p).isOk()))
        return launchMlaPrefillMma(p, stream);
    const size_t smem =
        sizeof(bf16) * (static_cast<size_t>(kQTile) * dqk + static_cast<size_t>(kKTile) * kRowStride(dqk) +
                        static_cast<size_t>(kKTile) * p.d_v);
    const dim3 grid(static_cast<unsigned>(ceilDiv(p.n_q, kQTile)), static_cast<unsigned>(p.n_heads));
    mlaPrefillKernel<<<grid, kWarps * kWarpSize, smem, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

namespace {

// grid: (n_rows, n_heads); one block per score row.
__global__ void mlaCausalSoftmaxKernel(MlaSoftmaxParams p) {
    __shared__ float scratch[32];
    const int i = blockIdx.x, h = blockIdx.y;
    const int64_t row = static_cast<int64_t>(h) * p.n_rows + i;
    const float* s = p.scores + row * p.n_keys;
    bf16* out = p.probs + row * p.n_keys;
    const int valid = static_cast<int>(min(static_cast<int64_t>(p.n_keys), p.q_pos0 + i + 1));
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < valid; j += blockDim.x) mx = fmaxf(mx, s[j]);
    // Block max: warps, then across warps (scratch reused by blockSum below after its own sync).
    mx = warpMax(mx);
    if (threadIdx.x % kWarpSize == 0) scratch[threadIdx.x / kWarpSize] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < static_cast<int>(blockDim.x / kWarpSize); ++w) mx = fmaxf(mx, scratch[w]);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < valid; j += blockDim.x) sum += expf((s[j] - mx) * p.softmax_scale);
    const float inv = 1.0f / blockSum(sum, scratch);
    for (int j = threadIdx.x; j < p.n_keys; j += blockDim.x)
        out[j] = toBf16(j < valid ? expf((s[j] - mx) * p.softmax_scale) * inv : 0.0f);
}

}  // namespace

Status launchMlaCausalSoftmax(const MlaSoftmaxParams& p, cudaStream_t stream) {
    if (p.n_rows == 0) return Status::ok();
    if (p.n_heads <= 0 || p.n_rows < 0 || p.n_keys <= 0 || p.q_pos0 < 0 || !p.scores || !p.probs ||
        p.n_rows > 2147483647 || p.n_heads > 65535 || p.softmax_scale <= 0.0f)
        return Status(StatusCode::InvalidArgument, "launchMlaCausalSoftmax: bad parameters");
    const dim3 grid(static_cast<unsigned>(p.n_rows), static_cast<unsigned>(p.n_heads));
    mlaCausalSoftmaxKernel<<<grid, 256, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
