#pragma once
// Embedding gather: the residual stream starts as the token's row of embed_tokens, widened to fp32.
// The residual stream stays fp32 on the GPU (never fp16: known overflow; fp32 rather than bf16 so
// that 27-60 residual adds do not each round).

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

struct EmbeddingParams {
    int n_tokens = 0;
    int n_embd = 0;                        // hidden size
    int64_t n_vocab = 0;
    const int32_t* tokens = nullptr;       // [n_tokens], device; ids checked on the host first
    const __nv_bfloat16* table = nullptr;  // [n_vocab, n_embd]
    float* out = nullptr;                  // [n_tokens, out_stride]
    int64_t out_stride = 0;
};

// An id outside [0, n_vocab) gives a row of NaN, so that a host-side check that was skipped shows.
Status launchEmbedding(const EmbeddingParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
