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

#include "cuda/attention_prologue.cuh"
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/pdl.cuh"

namespace dsv2::cuda {
namespace {

// grid (n_tokens, roles): blockIdx.y picks the role (attention_prologue.cuh). The norms add as a
// block of kThreads threads, launchRmsNorm's block size for this many tokens.
template <int kThreads>
__global__ void __launch_bounds__(kThreads) attentionPrologueKernel(AttentionPrologueParams p) {
    __shared__ float scratch[32];
    pdlWaitForPrevious();
    pdlLaunchNext();
    prologue_detail::runRole<kThreads>(p, static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y), scratch);
}

}  // namespace

Status validateAttentionPrologue(const AttentionPrologueParams& p) {
    if (p.n_tokens < 0 || !p.positions)
        return Status(StatusCode::InvalidArgument, "attention prologue: bad token count or no positions");
    if (p.q_a && (p.qa_cols <= 0 || p.qa_stride < p.qa_cols || !p.qa_weight))
        return Status(StatusCode::InvalidArgument, "attention prologue: bad q_a part");
    const bool rope = p.kv_a || p.q_pe;
    if (rope && (p.rope_dim <= 0 || p.rope_dim % 2 != 0 || !p.inv_freq))
        return Status(StatusCode::InvalidArgument, "attention prologue: bad RoPE parameters");
    if (p.kv_a) {
        const PagedCacheRef& c = p.cache;
        if (p.kv_lora <= 0 || !p.kv_weight || p.kv_stride < p.kv_lora + p.rope_dim || !c.layer_base || !c.block_table ||
            c.block_size <= 0 || c.entry_dim != p.kv_lora + p.rope_dim)
            return Status(StatusCode::InvalidArgument, "attention prologue: bad latent part or cache reference");
    }
    if (p.q_pe && p.n_heads <= 0) return Status(StatusCode::InvalidArgument, "attention prologue: q_pe needs n_heads");
    return Status::ok();
}

Status launchAttentionPrologue(const AttentionPrologueParams& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return Status::ok();
    DSV2_RETURN_IF_ERROR(validateAttentionPrologue(p));
    // launchRmsNorm's block size (the norms' fp32 sums then add in the same order).
    const bool few = p.n_tokens < 64;
    const int threads = few ? 1024 : 256;
    const int64_t roles = prologue_detail::rolesPerToken(p, threads);
    if (roles == 0) return Status::ok();
    if (roles > 65535) return Status(StatusCode::InvalidArgument, "attention prologue: too many heads");
    const dim3 grid(static_cast<unsigned>(p.n_tokens), static_cast<unsigned>(roles));
    DSV2_CUDA_CHECK(few ? launchPdl(attentionPrologueKernel<1024>, grid, dim3(threads), 0, stream, p)
                        : launchPdl(attentionPrologueKernel<256>, grid, dim3(threads), 0, stream, p));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
