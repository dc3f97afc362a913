#pragma once
// Copies between the paged latent cache and contiguous rows:
//  - write: the new tokens' [c_kv | k_pe] (after kv_a_layernorm and RoPE) into their slots;
//  - gather: positions [0, n) of a sequence into a contiguous [n, entry] buffer, for the expanded
//    (prefill) form, which runs kv_b_proj over the whole context.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

struct PagedCacheRef {
    __nv_bfloat16* layer_base = nullptr;   // PagedLatentCache::layerBase(layer): [n_blocks, block_size, entry_dim]
    const int32_t* block_table = nullptr;  // [ceil(len / block_size)] device
    int block_size = 64;
    int entry_dim = 0;  // kv_lora_rank + qk_rope_head_dim
};

struct LatentCacheWriteParams {
    PagedCacheRef cache;
    int n_tokens = 0;
    int64_t pos0 = 0;                    // position of the first new token
    const int32_t* positions = nullptr;  // when set: token t goes to positions[t] (device; CUDA graphs)
    const __nv_bfloat16* src = nullptr;  // [n_tokens, src_stride], first entry_dim values are copied
    int64_t src_stride = 0;
};

struct LatentCacheGatherParams {
    PagedCacheRef cache;
    int64_t n_tokens = 0;          // positions [0, n_tokens)
    __nv_bfloat16* dst = nullptr;  // [n_tokens, dst_stride]
    int64_t dst_stride = 0;
};

Status launchLatentCacheWrite(const LatentCacheWriteParams& p, cudaStream_t stream);
Status launchLatentCacheGather(const LatentCacheGatherParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
