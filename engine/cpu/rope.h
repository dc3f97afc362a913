#pragma once
// Rotary position embedding of MLA's decoupled rope part (q_pe per head, the shared k_pe), with
// DeepSeek-V2's static YaRN frequencies. Layout: interleaved pairs (x[2i], x[2i+1]) rotated as the
// complex number x[2i] + i·x[2i+1] by angle position·invFreq[i], which is what HF transformers'
// deepseek_v2 does (view_as_complex). DeepSeek's own code de-interleaves first and rotates halves;
// the dot products q_pe·k_pe are the same, the cached k_pe layout is this one.

#include <cstdint>
#include <vector>

#include "model/model_config.h"

namespace dsv2::cpu {

// inv_freq (d/2) for d = qk_rope_head_dim: YaRN-blended when rope_scaling is yarn (static: every
// position uses it), plain base^(-2i/d) otherwise. Computed in float32 step by step like the HF
// reference so that angles at long positions agree to the last bits that matter.
std::vector<float> ropeInvFreq(const ModelConfig& config);

// Rotates x (d) in place for `position`. amplitude scales cos/sin (YaRN's attention factor, 1.0 on
// the V2 family).
void applyRope(float* x, int64_t d, int64_t position, const float* invFreq, float amplitude);

}  // namespace dsv2::cpu
