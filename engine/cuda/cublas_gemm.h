#pragma once
// The cuBLAS wrapper for dense GEMMs: bf16 in, fp32 accumulate, bf16 or fp32 out.
// Everything here is row-major, as the tensors are: C[M,N] = alpha·op(A)[M,K]·op(B)[K,N] + beta·C.
// A linear layer with a hub weight W[out, in] is C = X · Wᵀ: trans_b = true (see linear()).

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

enum class GemmType : uint8_t { BF16, F32 };

struct GemmParams {
    int64_t m = 0, n = 0, k = 0;
    const void* a = nullptr;
    GemmType a_type = GemmType::BF16;
    int64_t lda = 0;       // row stride of A as stored (elements)
    bool trans_a = false;  // A stored [K, M] when true
    const void* b = nullptr;
    GemmType b_type = GemmType::BF16;
    int64_t ldb = 0;
    bool trans_b = false;  // B stored [N, K] when true (a hub weight)
    void* c = nullptr;
    GemmType c_type = GemmType::BF16;
    int64_t ldc = 0;
    float alpha = 1.0f;
    float beta = 0.0f;
    // Strided batch (batch > 1): matrix i at a + i·stride_a, etc. (elements).
    int batch = 1;
    int64_t stride_a = 0, stride_b = 0, stride_c = 0;
};

// Owns one cuBLAS handle. Not thread-safe: one per stream/session.
class CublasHandle {
public:
    CublasHandle() = default;
    ~CublasHandle();
    CublasHandle(const CublasHandle&) = delete;
    CublasHandle& operator=(const CublasHandle&) = delete;
    CublasHandle(CublasHandle&& other) noexcept;
    CublasHandle& operator=(CublasHandle&& other) noexcept;

    static Result<CublasHandle> create();
    cublasHandle_t get() const { return m_handle; }

private:
    cublasHandle_t m_handle = nullptr;
    // cuBLAS's workspace, owned here so that calls captured into a CUDA graph never allocate.
    void* m_workspace = nullptr;
};

Status gemm(cublasHandle_t handle, const GemmParams& p, cudaStream_t stream);

// y[T, out] (ldy) = x[T, in] (ldx) · w[out, in]ᵀ + beta·y. y is bf16 or fp32 (y_type).
Status linear(cublasHandle_t handle, const __nv_bfloat16* x, int64_t ldx, const __nv_bfloat16* w, void* y,
              GemmType y_type, int64_t ldy, int64_t n_tokens, int64_t n_out, int64_t n_in, cudaStream_t stream,
              float beta = 0.0f);

}  // namespace dsv2::cuda
