#include "cuda/cublas_gemm.h"

#include <climits>
#include <string>
#include <utility>

#include "cuda/cuda_check.h"

namespace dsv2::cuda {
namespace {

cudaDataType_t toCuda(GemmType t) { return t == GemmType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

bool fitsInt(int64_t v) { return v >= 0 && v <= INT_MAX; }

}  // namespace

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // NVIDIA's recommendation for Hopper

CublasHandle::~CublasHandle() {
    if (m_handle) cublasDestroy(m_handle);
    if (m_workspace) cudaFree(m_workspace);
}

CublasHandle::CublasHandle(CublasHandle&& other) noexcept
    : m_handle(std::exchange(other.m_handle, nullptr)), m_workspace(std::exchange(other.m_workspace, nullptr)) {}

CublasHandle& CublasHandle::operator=(CublasHandle&& other) noexcept {
    if (this != &other) {
        if (m_handle) cublasDestroy(m_handle);
        if (m_workspace) cudaFree(m_workspace);
        m_handle = std::exchange(other.m_handle, nullptr);
        m_workspace = std::exchange(other.m_workspace, nullptr);
    }
    return *this;
}

Result<CublasHandle> CublasHandle::create() {
    CublasHandle h;
    DSV2_CUBLAS_CHECK(cublasCreate(&h.m_handle));
    // fp32 GEMMs (the router) stay true fp32: no TF32 shortcut.
    DSV2_CUBLAS_CHECK(cublasSetMathMode(h.m_handle, CUBLAS_DEFAULT_MATH));
    DSV2_CUDA_CHECK(cudaMalloc(&h.m_workspace, kWorkspaceBytes));
    DSV2_CUBLAS_CHECK(cublasSetWorkspace(h.m_handle, h.m_workspace, kWorkspaceBytes));
    return h;
}

Status gemm(cublasHandle_t handle, const GemmParams& p, cudaStream_t stream) {
    if (p.m == 0 || p.n == 0) return Status::ok();
    if (!handle || !p.a || !p.b || !p.c || p.batch < 1)
        return Status(StatusCode::InvalidArgument, "gemm: missing handle or operand");
    if (!fitsInt(p.m) || !fitsInt(p.n) || !fitsInt(p.k) || !fitsInt(p.lda) || !fitsInt(p.ldb) || !fitsInt(p.ldc))
        return Status(StatusCode::InvalidArgument, "gemm: a size or stride exceeds the 32-bit cuBLAS API");
    // Row-major leading-dimension sanity: each stored row must hold its columns.
    const int64_t aCols = p.trans_a ? p.m : p.k;
    const int64_t bCols = p.trans_b ? p.k : p.n;
    if (p.lda < aCols || p.ldb < bCols || p.ldc < p.n)
        return Status(StatusCode::InvalidArgument, "gemm: leading dimension too small (lda " + std::to_string(p.lda) +
                                                       " ldb " + std::to_string(p.ldb) + " ldc " +
                                                       std::to_string(p.ldc) + ")");
    if (p.a_type != p.b_type) return Status(StatusCode::InvalidArgument, "gemm: A and B must have the same type");
    DSV2_CUBLAS_CHECK(cublasSetStream(handle, stream));
    // cuBLAS is column-major: a row-major X is a column-major Xᵀ. C = op(A)·op(B) becomes
    // Cᵀ = op(B)ᵀ·op(A)ᵀ, i.e. cuBLAS with the operands swapped and the same transpose flags.
    const cublasOperation_t opB = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t opA = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m = static_cast<int>(p.n), n = static_cast<int>(p.m), k = static_cast<int>(p.k);
    if (p.batch == 1) {
        DSV2_CUBLAS_CHECK(cublasGemmEx(handle, opB, opA, m, n, k, &p.alpha, p.b, toCuda(p.b_type),
                                       static_cast<int>(p.ldb), p.a, toCuda(p.a_type), static_cast<int>(p.lda), &p.beta,
                                       p.c, toCuda(p.c_type), static_cast<int>(p.ldc), CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
    } else {
        DSV2_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            handle, opB, opA, m, n, k, &p.alpha, p.b, toCuda(p.b_type), static_cast<int>(p.ldb), p.stride_b, p.a,
            toCuda(p.a_type), static_cast<int>(p.lda), p.stride_a, &p.beta, p.c, toCuda(p.c_type),
            static_cast<int>(p.ldc), p.stride_c, p.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    return Status::ok();
}

Status linear(cublasHandle_t handle, const __nv_bfloat16* x, int64_t ldx, const __nv_bfloat16* w, void* y,
              GemmType y_type, int64_t ldy, int64_t n_tokens, int64_t n_out, int64_t n_in, cudaStream_t stream,
              float beta) {
    GemmParams p;
    p.m = n_tokens;
    p.n = n_out;
    p.k = n_in;
    p.a = x;
    p.lda = ldx;
    p.b = w;
    p.ldb = n_in;
    p.trans_b = true;
    p.c = y;
    p.c_type = y_type;
    p.ldc = ldy;
    p.beta = beta;
    return gemm(handle, p, stream);
}

}  // namespace dsv2::cuda
