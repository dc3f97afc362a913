#include "cuda/latent_cache_ops.h"

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {
namespace {

__device__ __forceinline__ bf16* slotOf(const PagedCacheRef& c, int64_t pos) {
    const int32_t block = c.block_table[pos / c.block_size];
    const int64_t slot = static_cast<int64_t>(block) * c.block_size + pos % c.block_size;
    return c.layer_base + slot * c.entry_dim;
}

// grid: n_tokens blocks; one block copies one entry.
__global__ void latentCacheWriteKernel(LatentCacheWriteParams p) {
    const int t = blockIdx.x;
    bf16* dst = slotOf(p.cache, p.positions ? static_cast<int64_t>(p.positions[t]) : p.pos0 + t);
    const bf16* src = p.src + static_cast<int64_t>(t) * p.src_stride;
    for (int i = threadIdx.x; i < p.cache.entry_dim; i += blockDim.x) dst[i] = src[i];
}

__global__ void latentCacheGatherKernel(LatentCacheGatherParams p) {
    const int64_t t = blockIdx.x;
    const bf16* src = slotOf(p.cache, t);
    bf16* dst = p.dst + t * p.dst_stride;
    for (int i = threadIdx.x; i < p.cache.entry_dim; i += blockDim.x) dst[i] = src[i];
}

Status checkCache(const PagedCacheRef& c) {
    if (!c.layer_base || !c.block_table || c.block_size <= 0 || c.entry_dim <= 0)
        return Status(StatusCode::InvalidArgument, "latent cache op: bad cache reference");
    return Status::ok();
}

}  // namespace

Status launchLatentCacheWrite(const LatentCacheWriteParams& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return Status::ok();
    DSV2_RETURN_IF_ERROR(checkCache(p.cache));
    if (p.n_tokens < 0 || p.pos0 < 0 || !p.src || p.src_stride < p.cache.entry_dim)
        return Status(StatusCode::InvalidArgument, "launchLatentCacheWrite: bad parameters");
    latentCacheWriteKernel<<<p.n_tokens, 128, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

Status launchLatentCacheGather(const LatentCacheGatherParams& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return Status::ok();
    DSV2_RETURN_IF_ERROR(checkCache(p.cache));
    if (p.n_tokens < 0 || p.n_tokens > INT32_MAX || !p.dst || p.dst_stride < p.cache.entry_dim)
        return Status(StatusCode::InvalidArgument, "launchLatentCacheGather: bad parameters");
    latentCacheGatherKernel<<<static_cast<unsigned>(p.n_tokens), 128, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
