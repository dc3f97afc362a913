#include "cuda/embedding.h"

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/pdl.cuh"

namespace dsv2::cuda {
namespace {

// grid: n_tokens blocks; each block copies one row.
__global__ void embeddingKernel(EmbeddingParams p) {
    pdlWaitForPrevious();  // PDL (pdl.cuh): the token ids and the residual are the stream's
    pdlLaunchNext();
    const int t = blockIdx.x;
    const int32_t id = p.tokens[t];
    float* out = p.out + static_cast<int64_t>(t) * p.out_stride;
    if (id < 0 || id >= p.n_vocab) {
        for (int i = threadIdx.x; i < p.n_embd; i += blockDim.x) out[i] = __int_as_float(0x7fc00000);
        return;
    }
    const bf16* row = p.table + static_cast<int64_t>(id) * p.n_embd;
    for (int i = threadIdx.x; i < p.n_embd; i += blockDim.x) out[i] = toFloat(row[i]);
}

}  // namespace

Status launchEmbedding(const EmbeddingParams& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return Status::ok();
    if (p.n_tokens < 0 || p.n_embd <= 0 || p.n_vocab <= 0 || !p.tokens || !p.table || !p.out || p.out_stride < p.n_embd)
        return Status(StatusCode::InvalidArgument, "launchEmbedding: bad parameters");
    DSV2_CUDA_CHECK(launchPdl(embeddingKernel, dim3(static_cast<unsigned>(p.n_tokens)), dim3(256), 0, stream, p));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
