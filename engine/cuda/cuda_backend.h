#pragma once
// The CUDA backend behind the Backend seam (core/backend.h): bf16 weights on one GPU, the paged
// latent cache, prefill in chunks through the expanded (flash) MLA form, decode through the
// absorbed form, MoE on the GPU, fp32 logits and routing copied to the host.
//
// createCudaBackend (declared in core/backend.h) is the factory the engine calls; the variant
// here also reports upload progress and hands back the memory plan (dsv2 bench, the GUI).

#include <functional>
#include <memory>

#include "core/backend.h"
#include "cuda/memory_plan.h"
#include "parallel/rank_slice.h"

namespace dsv2::cuda {

class NcclGroup;

// The fp32 residual stream of one chunk after `stage` sublayers (0 = the embeddings, 2l+1 = after
// layer l's attention, 2l+2 = after its FFN), for the sublayer-by-sublayer test
// (tests/engine/cuda/layer_check.h). `residual` is a host copy, valid during the call.
struct ResidualTap {
    int64_t pos0 = 0;  // position of the chunk's first token
    int nTokens = 0;
    int stage = 0;
    bool expandedAttention = false;   // the MLA form this chunk ran
    const float* residual = nullptr;  // [nTokens, hidden]
};

struct CudaBackendExtras {
    ProgressCallback loadProgress;  // bytes uploaded / total; false cancels
    RuntimeShape shape;             // chunk size etc.; cacheTokens is decided by the plan
    MemoryPlan* planOut = nullptr;  // receives the plan when not null (also on a refusal: numbers)
    // Tests only: called after every sublayer of every chunk (a device-to-host copy and a stream
    // sync each time; never set it outside tests).
    std::function<void(const ResidualTap&)> residualTap;

    // One rank of a multi-GPU run (multi_gpu_backend.h): the backend's config is then the rank's
    // (its heads and dense width, parallel::rankConfig), `model` the whole model's (what the
    // weights are checked against), `slice` what it holds, and `nccl` completes each sublayer's
    // partial sums. All null: the whole model on one GPU.
    const ModelConfig* model = nullptr;
    const parallel::RankSlice* slice = nullptr;
    const NcclGroup* nccl = nullptr;
};

Result<std::unique_ptr<Backend>> createCudaBackendWithExtras(const ModelConfig& config, const ModelWeights& weights,
                                                             const BackendOptions& options,
                                                             const CudaBackendExtras& extras);

// Device memory in use right now (total - free) on the current device / on `device`, for benchmarks.
int64_t deviceMemoryInUse();
int64_t deviceMemoryInUse(int device);

}  // namespace dsv2::cuda
