// One launch for q_a_layernorm, kv_a_layernorm + RoPE(k_pe) + the latent cache write, and
// RoPE(q_pe): see attention_prologue_fused.h for why. The arithmetic of each part is written
// exactly as in rmsnorm.cu (plain mode), rope.cu and latent_cache_ops.cu, with the same block
// size as launchRmsNorm, so every value is bit-identical to the separate kernels.
//
// PDL (pdl.cuh): everything here (positions, q_a, kv_a, q_pe, the block table) comes from earlier
// work of the step, so the kernel waits first; the gain is its launch and block ramp-up
// overlapping the q/kv_a projection, and the q_lat GEMV after it prefetching W_UK meanwhile
// (expected ~1-2 µs a layer; not measured here).
#include "cuda/attention_prologue_fused.h"

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/pdl.cuh"

namespace dsv2::cuda {
namespace {

// RMSNorm of row x[0, n) as rmsNormKernel's plain mode: out may alias x (each thread rereads and
// writes only its own columns). A second output (the cache slot) gets the same bf16 values.
__device__ __forceinline__ void normRow(const bf16* x, const bf16* weight, int n, float eps, bf16* out, bf16* out2,
                                        float* scratch) {
    float sumSq = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = toFloat(x[i]);
        sumSq += v * v;
    }
    const float total = blockSum(sumSq, scratch);
    const float rstd = rsqrtf(total / static_cast<float>(n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const bf16 o = toBf16(toFloat(x[i]) * rstd * toFloat(weight[i]));
        out[i] = o;
        if (out2) out2[i] = o;
    }
}

// One interleaved pair rotated as ropeKernel does; written to x and (when set) x2.
__device__ __forceinline__ void ropePair(bf16* x, bf16* x2, int32_t pos, const AttentionPrologueParams& p, int i) {
    const float angle = static_cast<float>(pos) * p.inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    c *= p.amplitude;
    s *= p.amplitude;
    const float x0 = toFloat(x[0]);
    const float x1 = toFloat(x[1]);
    const bf16 o0 = toBf16(x0 * c - x1 * s);
    const bf16 o1 = toBf16(x1 * c + x0 * s);
    x[0] = o0;
    x[1] = o1;
    if (x2) {
        x2[0] = o0;
        x2[1] = o1;
    }
}

// grid (n_tokens, roles): blockIdx.y picks the role: [q_a norm] [latent entry] [q_pe chunk 0, 1, ...].
// Roles are block-uniform, so the block reductions inside are safe.
__global__ void attentionPrologueKernel(AttentionPrologueParams p) {
    __shared__ float scratch[32];
    pdlWaitForPrevious();
    pdlLaunchNext();
    const int t = blockIdx.x;
    int role = blockIdx.y;
    const int32_t pos = p.positions[t];
    const int half = p.rope_dim / 2;
    if (p.q_a) {
        if (role == 0) {
            bf16* x = p.q_a + static_cast<int64_t>(t) * p.qa_stride;
            normRow(x, p.qa_weight, p.qa_cols, p.eps, x, nullptr, scratch);
            return;
        }
        --role;
    }
    if (p.kv_a) {
        if (role == 0) {
            bf16* x = p.kv_a + static_cast<int64_t>(t) * p.kv_stride;
            const PagedCacheRef& c = p.cache;
            const int32_t block = c.block_table[pos / c.block_size];
            const int64_t slot = static_cast<int64_t>(block) * c.block_size + pos % c.block_size;
            bf16* dst = c.layer_base + slot * c.entry_dim;
            normRow(x, p.kv_weight, p.kv_lora, p.eps, x, dst, scratch);
            for (int i = threadIdx.x; i < half; i += blockDim.x)
                ropePair(x + p.kv_lora + 2 * i, dst + p.kv_lora + 2 * i, pos, p, i);
            return;
        }
        --role;
    }
    // q_pe: pairs [role·blockDim, +blockDim) of the token's n_heads·half pairs.
    const int idx = role * blockDim.x + threadIdx.x;
    if (idx >= p.n_heads * half) return;
    const int h = idx / half;
    const int i = idx % half;
    ropePair(p.q_pe + static_cast<int64_t>(t) * p.q_token_stride + h * p.q_head_stride + 2 * i, nullptr, pos, p, i);
}

}  // namespace

Status launchAttentionPrologue(const AttentionPrologueParams& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return Status::ok();
    if (p.n_tokens < 0 || !p.positions)
        return Status(StatusCode::InvalidArgument, "launchAttentionPrologue: bad token count or no positions");
    if (p.q_a && (p.qa_cols <= 0 || p.qa_stride < p.qa_cols || !p.qa_weight))
        return Status(StatusCode::InvalidArgument, "launchAttentionPrologue: bad q_a part");
    const bool rope = p.kv_a || p.q_pe;
    if (rope && (p.rope_dim <= 0 || p.rope_dim % 2 != 0 || !p.inv_freq))
        return Status(StatusCode::InvalidArgument, "launchAttentionPrologue: bad RoPE parameters");
    if (p.kv_a) {
        const PagedCacheRef& c = p.cache;
        if (p.kv_lora <= 0 || !p.kv_weight || p.kv_stride < p.kv_lora + p.rope_dim || !c.layer_base || !c.block_table ||
            c.block_size <= 0 || c.entry_dim != p.kv_lora + p.rope_dim)
            return Status(StatusCode::InvalidArgument, "launchAttentionPrologue: bad latent part or cache reference");
    }
    if (p.q_pe && p.n_heads <= 0)
        return Status(StatusCode::InvalidArgument, "launchAttentionPrologue: q_pe needs n_heads");
    // launchRmsNorm's block size (the norms' fp32 sums then add in the same order).
    const int threads = p.n_tokens < 64 ? 1024 : 256;
    const int64_t qPairs = p.q_pe ? static_cast<int64_t>(p.n_heads) * (p.rope_dim / 2) : 0;
    const int64_t roles = (p.q_a ? 1 : 0) + (p.kv_a ? 1 : 0) + ceilDiv(qPairs, threads);
    if (roles == 0) return Status::ok();
    if (roles > 65535) return Status(StatusCode::InvalidArgument, "launchAttentionPrologue: too many heads");
    DSV2_CUDA_CHECK(launchPdl(attentionPrologueKernel,
                              dim3(static_cast<unsigned>(p.n_tokens), static_cast<unsigned>(roles)), dim3(threads), 0,
                              stream, p));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
