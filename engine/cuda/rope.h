#pragma once
// YaRN rotary embedding on the rope part of q (every head) and of k_pe (one shared head).
// Layout: interleaved pairs (x[2i], x[2i+1]) rotated in place by angle pos·inv_freq[i] (GPT-J style,
// what transformers' complex-number form computes). DeepSeek's own code de-interleaves first; the
// dot products q_pe·k_pe are the same as long as q and k use one layout, which is all attention sees.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

struct RopeParams {
    int n_tokens = 0;
    int n_heads = 0;        // 1 for k_pe
    int rope_dim = 0;       // qk_rope_head_dim, even
    __nv_bfloat16* x = nullptr;  // first rope element of head 0 of token 0; element (t, h, i) at
    int64_t token_stride = 0;    //   x[t·token_stride + h·head_stride + i]
    int64_t head_stride = 0;
    const int32_t* positions = nullptr;  // [n_tokens] absolute positions
    const float* inv_freq = nullptr;     // [rope_dim / 2], from cpu::ropeInvFreq() (shared with the CPU engine)
    float amplitude = 1.0f;              // YaRN cos/sin factor (ModelConfig::ropeAmplitude(), 1 for V2)
};

Status launchRope(const RopeParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
