#pragma once
// One model across several GPUs of one host (docs/multi-gpu.md): each GPU is a CudaBackend
// holding its slice of the model (parallel/rank_slice.h: a share of the query heads, of the dense
// MLP's and shared experts' width, of lm_head's vocabulary, and whole routing groups of routed
// experts), and NCCL sums the partial outputs after every attention and FFN sublayer. A forward
// call runs on all GPUs at once, one host thread each, so every GPU streams only its weights; the
// decode step is still one CUDA graph per GPU, the all-reduces captured inside it.

#include <memory>

#include "core/backend.h"
#include "cuda/cuda_backend.h"

namespace dsv2::cuda {

// options.devices lists at least two distinct CUDA devices. The load progress sums all GPUs'
// uploads (they run in parallel; the callback is called from one of the loading threads at a time).
Result<std::unique_ptr<Backend>> createMultiGpuBackend(const ModelConfig& config, const ModelWeights& weights,
                                                       const BackendOptions& options, const CudaBackendExtras& extras);

}  // namespace dsv2::cuda
