#pragma once
// Error checks of the standalone CUDA micro-benchmarks (tools/bench/*.cu, built by nvcc on the GPU
// machine): a failed CUDA call or engine Status prints what failed and where, and exits 1.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define CK(call)                                                                                                \
    do {                                                                                                        \
        cudaError_t e_ = (call);                                                                                \
        if (e_ != cudaSuccess) {                                                                                \
            std::fprintf(stderr, "%s failed: %s (%s:%d)\n", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
            std::exit(1);                                                                                       \
        }                                                                                                       \
    } while (0)

#define OK(status)                                                                                        \
    do {                                                                                                  \
        const dsv2::Status s_ = (status);                                                                 \
        if (!s_.isOk()) {                                                                                 \
            std::fprintf(stderr, "%s: %s (%s:%d)\n", #status, s_.toString().c_str(), __FILE__, __LINE__); \
            std::exit(1);                                                                                 \
        }                                                                                                 \
    } while (0)
