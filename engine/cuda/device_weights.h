#pragma once
// The model's weights on the device, bf16, in one arena: uploaded from the mapped safetensors
// (or RandomWeights) through two pinned staging buffers, so the host never holds an fp32 copy.
// F16/F32 checkpoints are copied as they are and converted on the device. The gate and up
// projections of every MLP are placed back to back so that one GEMM computes both.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "cuda/device_buffer.h"
#include "cuda/moe_layer.h"
#include "dsv2/progress.h"
#include "dsv2/status.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "parallel/rank_slice.h"

namespace dsv2::cuda {

struct DeviceAttentionWeights {
    const __nv_bfloat16* qProj = nullptr;    // [H·dqk, hidden] (no q_lora)
    const __nv_bfloat16* qAProj = nullptr;   // [q_lora, hidden]
    const __nv_bfloat16* qANorm = nullptr;   // [q_lora]
    const __nv_bfloat16* qBProj = nullptr;   // [H·dqk, q_lora]
    const __nv_bfloat16* kvAProj = nullptr;  // [kv_lora + rope, hidden]
    const __nv_bfloat16* kvANorm = nullptr;  // [kv_lora]
    const __nv_bfloat16* kvBProj = nullptr;  // [H·(nope + v), kv_lora]
    const __nv_bfloat16* oProj = nullptr;    // [hidden, H·v]
};

struct DeviceLayerWeights {
    const __nv_bfloat16* inputNorm = nullptr;  // [hidden]
    const __nv_bfloat16* postNorm = nullptr;   // [hidden]
    DeviceAttentionWeights attn;
    MlpDeviceWeights dense;  // gate_up == nullptr on MoE layers
    MoeDeviceWeights moe;    // gate == nullptr on dense layers
};

class DeviceModelWeights {
public:
    // (bytes uploaded so far, bytes in total)
    using Progress = ProgressCallback;  // false cancels the upload

    // `slice` picks this rank's part of the model (parallel/rank_slice.h; wholeModel() on one GPU):
    // experts of other ranks stay null.
    static Result<DeviceModelWeights> upload(const ModelConfig& config, const ModelWeights& weights,
                                             const parallel::RankSlice& slice, const Progress& progress,
                                             cudaStream_t stream);
    // The arena bytes upload() would allocate (for the memory plan).
    static int64_t bytesFor(const ModelConfig& config, const ModelWeights& weights, const parallel::RankSlice& slice);

    const __nv_bfloat16* embed = nullptr;      // [vocab, hidden]
    const __nv_bfloat16* finalNorm = nullptr;  // [hidden]
    const __nv_bfloat16* lmHead = nullptr;     // [vocab slice, hidden]
    std::vector<DeviceLayerWeights> layers;

    int64_t bytes() const { return static_cast<int64_t>(m_arena.bytes()); }

private:
    DeviceBuffer<uint8_t> m_arena;
};

}  // namespace dsv2::cuda
