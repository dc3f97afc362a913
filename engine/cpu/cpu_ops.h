#pragma once
// Plain fp32 building blocks of the CPU reference backend. Weights stay bf16/f16 in the mapped file
// and are widened to fp32 a few rows at a time; activations are fp32 row-major arrays. These are
// also the reference the CUDA kernel tests compare against, so they stay simple and exact-ish:
// reductions that feed a normalisation are summed in double.

#include <cmath>
#include <cstdint>

#include "model/model_weights.h"
#include "model/tensor.h"

namespace dsv2::cpu {

class ThreadPool;

float dot(const float* a, const float* b, int64_t n);

// out (n) = x · rsqrt(mean(x²) + eps) · weight. `out` may alias `x`.
void rmsNorm(const float* x, const float* weight, int64_t n, float eps, float* out);

// In place, numerically safe (max subtracted).
void softmaxInPlace(float* x, int64_t n);

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// y (T, rows) = x (T, in) · W[rowBegin : rowBegin+rows]ᵀ with W a [out, in] tensor (hub layout).
// Output rows are spread over the pool; each weight row is widened once per call.
void linearRows(const TensorView& w, int64_t rowBegin, int64_t rows, const float* x, int64_t nTokens, float* y,
                ThreadPool* pool);
// y (T, out) = x (T, in) · Wᵀ.
void linear(const TensorView& w, const float* x, int64_t nTokens, float* y, ThreadPool* pool);

// The gated MLP of dense layers, experts and shared experts: y (T, hidden) = down(silu(gate x) · up x).
void gatedMlp(const MlpWeights& w, const float* x, int64_t nTokens, float* y, ThreadPool* pool);

}  // namespace dsv2::cpu
