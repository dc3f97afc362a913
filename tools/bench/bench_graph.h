#pragma once
// Timing of the standalone CUDA micro-benchmarks (tools/bench/*.cu): the launches of `enqueue`
// for every item (a layer's weights and buffers), `reps` rounds of them captured in one CUDA graph
// so that no item's data is still in L2 when it comes round again, replayed `iters` times with
// events around each replay; the median replay divided by the launches' count.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "bench_check.h"

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
