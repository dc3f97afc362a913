#pragma once
// Element-type conversion on the device: checkpoints that are not bf16 (an f16 or f32 tiny model)
// are uploaded as they are and widened/narrowed here, so the host never makes an fp32 copy.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

enum class SourceType : uint8_t { BF16, F16, F32 };

struct ConvertParams {
    int64_t n = 0;
    SourceType src_type = SourceType::BF16;
    const void* src = nullptr;         // [n] of src_type
    __nv_bfloat16* dst = nullptr;      // [n]; may equal src only for BF16
};

Status launchConvertToBf16(const ConvertParams& p, cudaStream_t stream);

// dst[i] = float(src[i]) for bf16 src (tests and host-bound outputs).
Status launchBf16ToFloat(const __nv_bfloat16* src, float* dst, int64_t n, cudaStream_t stream);

}  // namespace dsv2::cuda
