#pragma once
// What the standalone CUDA micro-benchmarks (tools/bench/*.cu, one translation unit each) share:
// random bf16 inputs and graph timing.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bench_check.h"

// p[i] = bf16(scale · (sum of 4 uniforms in [-0.5, 0.5])): roughly normal in [-2, 2] · scale, from a
// SplitMix64 hash of (i, seed), so every bench gets the same data for the same seed.
__global__ void fillKernel(__nv_bfloat16* p, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float s = 0.0f;
        for (int k = 0; k < 4; ++k) s += float((z >> (16 * k)) & 0xffff) / 65535.0f - 0.5f;
        p[i] = __float2bfloat16_rn(s * scale);
    }
}

// Timing: the launches of `enqueue`
// for every item (a layer's weights and buffers), `reps` rounds of them captured in one CUDA graph
// so that no item's data is still in L2 when it comes round again, replayed `iters` times with
// events around each replay; the median replay divided by the launches' count.

template <typename Item, typename Enqueue>
double graphMicrosPerItem(const std::vector<Item>& items, Enqueue&& enqueue, int reps, int iters) {
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaGraph_t g;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int r = 0; r < reps; ++r)
        for (const Item& item : items) enqueue(item, st);
    CK(cudaStreamEndCapture(st, &g));
    cudaGraphExec_t ge;
    CK(cudaGraphInstantiate(&ge, g, 0));
    CK(cudaGraphLaunch(ge, st));  // warm-up
    CK(cudaStreamSynchronize(st));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    std::vector<float> ms;
    for (int i = 0; i < iters; ++i) {
        CK(cudaEventRecord(a, st));
        CK(cudaGraphLaunch(ge, st));
        CK(cudaEventRecord(b, st));
        CK(cudaEventSynchronize(b));
        float t;
        CK(cudaEventElapsedTime(&t, a, b));
        ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    CK(cudaStreamDestroy(st));
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return ms[ms.size() / 2] * 1e3 / (static_cast<double>(reps) * static_cast<double>(items.size()));
}
