#pragma once
// Device side of grid_tail.h (include from .cu files only).

#include "cuda/attention_prologue.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/grid_tail.h"

namespace dsv2::cuda {

// True in exactly one block of the grid: the last to call it. Every thread of every block calls
// it once, after its block's output stores. The classic threadfence-reduction pattern: each block
// publishes its stores (fence), then counts; the block that counts last fences again before it
// reads the others' outputs. That block resets the counter at once: every other block has counted.
__device__ __forceinline__ bool lastBlockToFinish(unsigned* counter) {
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned blocks = gridDim.x * gridDim.y * gridDim.z;
        last = atomicAdd(counter, 1u) == blocks - 1;
        if (last) *counter = 0;
    }
    __syncthreads();
    if (last) __threadfence();
    return last;
}

// residual += delta (in place) and x_out = bf16(rmsnorm(residual) · weight), by one block.
// Loads of what other blocks wrote go through L2 (__ldcg).
__device__ __forceinline__ void tailResidualNorm(const GridTail& t, float* scratch) {
    float sumSq = 0.0f;
    for (int i = threadIdx.x; i < t.n; i += blockDim.x) {
        const float v = __ldcg(t.residual + i) + __ldcg(t.delta + i);
        sumSq += v * v;
    }
    const float rstd = rsqrtf(blockSum(sumSq, scratch) / static_cast<float>(t.n) + t.eps);
    for (int i = threadIdx.x; i < t.n; i += blockDim.x) {
        const float v = __ldcg(t.residual + i) + __ldcg(t.delta + i);
        t.residual[i] = v;
        t.x_out[i] = toBf16(v * rstd * toFloat(t.norm_weight[i]));
    }
}

// The tail of a kernel: every thread of every block calls it after its block's output stores
// (block-uniform; the kernel must not have returned early in any thread). Nothing when inactive.
__device__ __forceinline__ void runGridTail(const GridTail& t) {
    if (!t.active() || !lastBlockToFinish(t.counter)) return;
    __shared__ float scratch[32];
    if (t.normActive()) tailResidualNorm(t, scratch);
    if (t.prologueActive()) {
        const int roles = attentionPrologueRoles(t.prologue, static_cast<int>(blockDim.x));
        for (int role = 0; role < roles; ++role) {
            attentionPrologueRole(t.prologue, 0, role, scratch);
            __syncthreads();  // q_a's norm reads before it writes, and scratch is reused
        }
    }
}

}  // namespace dsv2::cuda
