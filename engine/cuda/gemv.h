#pragma once
// Weight-streaming matrix-vector products for decode: out[t, n] = Σ_k W[n, k] · x[t, k] for a
// handful of tokens t. At batch 1 a linear layer is bound by reading W once; cuBLAS picks GEMM
// tilings for these shapes that leave bandwidth unused, so this kernel streams each weight row
// with 16-byte loads (one warp per row, several loads in flight per lane) and reduces in fp32.
// Numerics match `linear()` (bf16 × bf16, fp32 accumulate, bf16 or fp32 out); only the order of
// the fp32 summation differs.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/cublas_gemm.h"
#include "cuda/residual_norm.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

constexpr int kGemvMaxTokens = 4;
constexpr int kGemvMaxNormK = 24 * 1024;  // the fused norm's x in 48 KB of shared memory

struct GemvParams {
    int n_rows = 0;                    // N: output features = weight rows
    int k = 0;                         // K: input features (a multiple of 8)
    int n_tokens = 1;                  // 1 .. kGemvMaxTokens
    const __nv_bfloat16* w = nullptr;  // [N, K] row-major, 16-byte aligned
    const __nv_bfloat16* x = nullptr;  // [n_tokens, ldx], 16-byte aligned rows
    int64_t ldx = 0;
    void* out = nullptr;  // [n_tokens, ldo] of out_type
    int64_t ldo = 0;
    GemmType out_type = GemmType::F32;
    float beta = 0.0f;  // F32 only: out = beta · out + W·x
    // Optional second projection of the same x in the same launch (q and kv_a): rows
    // [n_rows, n_rows + n_rows2) come from w2 [n_rows2, K] and go to out2 (ldo2), same out_type.
    const __nv_bfloat16* w2 = nullptr;
    int n_rows2 = 0;
    void* out2 = nullptr;
    int64_t ldo2 = 0;
    // Optional (one token): x is not read but computed in every block from the residual stream
    // (residual_norm.h); x_out of it, if set, receives the normalised vector.
    ResidualNorm norm;
    // PDL: let the next kernel launch before this one waits (pdl.cuh, the exception to rule 3).
    // Only when that kernel reads nothing but weights before its own wait and does not rely on
    // this one's rule 3.
    bool launch_next_early = false;
};

// True when the shapes and pointers suit launchGemv (else use linear()).
bool gemvSupported(int k, int n_tokens, const void* w, const void* x, int64_t ldx);

Status launchGemv(const GemvParams& p, cudaStream_t stream);

// linear() for few tokens: the GEMV kernel where it applies, cuBLAS otherwise. Same arguments as
// linear() (w: [n_out, n_in] row-major). launch_next_early: GemvParams (ignored on cuBLAS).
// Two linear layers of the same input (w1 [n_out1, n_in] -> out1, w2 [n_out2, n_in] -> out2, both
// bf16) in one GEMV launch where it applies, two linear() calls otherwise.
// With `norm` (one token, gemvPairNormSupported): x is not read but computed from the residual
// stream in the launch (residual_norm.h).
Status linearFewPair(cublasHandle_t blas, const __nv_bfloat16* x, int64_t ldx, int64_t n_tokens, int64_t n_in,
                     const __nv_bfloat16* w1, __nv_bfloat16* out1, int64_t n_out1, const __nv_bfloat16* w2,
                     __nv_bfloat16* out2, int64_t n_out2, cudaStream_t stream, const ResidualNorm* norm = nullptr,
                     bool launch_next_early = false);

// Whether linearFewPair can fold a residual norm for these weights (k = n_in).
bool gemvPairNormSupported(int k, const void* w1, const void* w2);

Status linearFew(cublasHandle_t blas, const __nv_bfloat16* x, int64_t ldx, const __nv_bfloat16* w, void* out,
                 GemmType out_type, int64_t ldo, int64_t n_tokens, int64_t n_out, int64_t n_in, cudaStream_t stream,
                 float beta = 0.0f, bool launch_next_early = false);

}  // namespace dsv2::cuda
