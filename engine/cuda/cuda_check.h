#pragma once
// DSV2_CUDA_CHECK / DSV2_CUBLAS_CHECK: turn a failed CUDA or cuBLAS call into a Status that names
// the call, the file and the line. Usable in functions returning Status or Result<T>.
// No spdlog/fmt here: this header is included from .cu files.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "dsv2/status.h"

namespace dsv2::cuda {

inline Status cudaStatus(cudaError_t err, const char* call, const char* file, int line) {
    if (err == cudaSuccess) return Status::ok();
    const StatusCode code = err == cudaErrorMemoryAllocation ? StatusCode::ResourceExhausted : StatusCode::Internal;
    return Status(code, std::string(call) + " failed: " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
                            ") at " + file + ":" + std::to_string(line));
}

inline Status cublasStatus(cublasStatus_t err, const char* call, const char* file, int line) {
    if (err == CUBLAS_STATUS_SUCCESS) return Status::ok();
    const StatusCode code = err == CUBLAS_STATUS_ALLOC_FAILED ? StatusCode::ResourceExhausted : StatusCode::Internal;
    return Status(code, std::string(call) + " failed: " + cublasGetStatusName(err) + " (" + cublasGetStatusString(err) +
                            ") at " + file + ":" + std::to_string(line));
}

}  // namespace dsv2::cuda

#define DSV2_CUDA_CHECK(call)                                                                                \
    do {                                                                                                     \
        const cudaError_t dsv2_err_ = (call);                                                                \
        if (dsv2_err_ != cudaSuccess) return ::dsv2::cuda::cudaStatus(dsv2_err_, #call, __FILE__, __LINE__); \
    } while (0)

// After a kernel launch: catches bad launch configurations immediately.
#define DSV2_CUDA_CHECK_LAUNCH() DSV2_CUDA_CHECK(cudaGetLastError())

#define DSV2_CUBLAS_CHECK(call)                                                             \
    do {                                                                                    \
        const cublasStatus_t dsv2_cublas_err_ = (call);                                     \
        if (dsv2_cublas_err_ != CUBLAS_STATUS_SUCCESS)                                      \
            return ::dsv2::cuda::cublasStatus(dsv2_cublas_err_, #call, __FILE__, __LINE__); \
    } while (0)
