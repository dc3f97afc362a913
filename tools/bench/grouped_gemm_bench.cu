// Standalone bench of the grouped MoE prefill GEMMs (engine/cuda/moe_grouped_gemm.h): the mma.sync
// kernel against the wgmma kernel on DeepSeek-V2-Lite and V2 shapes with random top-k routing, in
// TFLOP/s of useful work (2 · rows · N · K per GEMM; padding not counted), plus a cross-check of
// the two kernels' outputs. Not part of the CMake build; on a GPU machine, from the repo root:
//   nvcc -std=c++20 -O3 -gencode arch=compute_90a,code=sm_90a -I engine -I engine/include \
//        -c engine/cuda/moe_grouped_gemm_wgmma.cu -o /tmp/gg_wgmma.o &&
//   nvcc -std=c++20 -O3 -arch=sm_90 -I engine -I engine/include tools/bench/grouped_gemm_bench.cu \
//        engine/cuda/moe_grouped_gemm.cu engine/core/status.cpp /tmp/gg_wgmma.o -o /tmp/gg_bench && /tmp/gg_bench
// Times are per launch from a CUDA graph of kReps launches (CUDA events, the GPU's own clocks).
// The wgmma kernel runs with each of its loaders (DSV2_WGMMA_LOADER=cpasync, =down, the default
// TMA); their outputs must be bit-identical. --quick: Lite 2K and 1K only. --profile: Lite 2K and
// 1K, one plain launch per GEMM and wgmma loader, no timing (for ncu -k regex:Wgmma).
// Each shape has one weight set per layer-sized GEMM (Lite's gate|up alone is 738 MB, far past the
// 50 MB L2), so the weights stream from HBM as in a real prefill.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "bench_check.h"
#include "bench_util.cuh"
#include "cuda/moe_grouped_gemm.h"

namespace {
using bf16 = __nv_bfloat16;
using dsv2::cuda::MoeGroupedGemmParams;
using dsv2::cuda::MoeGroupedKernel;

constexpr int kReps = 10;
bool gProfile = false;

bf16* allocFill(int64_t n, uint64_t seed, float scale) {
    bf16* p = nullptr;
    CK(cudaMalloc(&p, std::max<int64_t>(n, 8) * sizeof(bf16)));
    fillKernel<<<1024, 256>>>(p, n, seed, scale);
    CK(cudaGetLastError());
    return p;
}

struct Shape {
    const char* name;
    int hidden, inter, nExperts, topK, tokens;
};

// Random routing: each token picks topK distinct experts uniformly; returns the offsets.
std::vector<int32_t> routeOffsets(const Shape& s, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<int> counts(s.nExperts, 0), perm(s.nExperts);
    for (int t = 0; t < s.tokens; ++t) {
        for (int e = 0; e < s.nExperts; ++e) perm[e] = e;
        for (int k = 0; k < s.topK; ++k) {
            std::uniform_int_distribution<int> d(k, s.nExperts - 1);
            std::swap(perm[k], perm[d(rng)]);
            ++counts[perm[k]];
        }
    }
    std::vector<int32_t> off(s.nExperts + 1, 0);
    for (int e = 0; e < s.nExperts; ++e) off[e + 1] = off[e] + counts[e];
    return off;
}

// Seconds per launch of `launch` (kReps launches captured in one graph, one warm-up replay).
template <typename F>
double timeLaunch(cudaStream_t stream, F&& launch) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < kReps; ++i) launch();
    CK(cudaStreamEndCapture(stream, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaStreamSynchronize(stream));
    cudaEvent_t t0, t1;
    CK(cudaEventCreate(&t0));
    CK(cudaEventCreate(&t1));
    float best = 1e30f;
    for (int rep = 0; rep < 3; ++rep) {
        CK(cudaEventRecord(t0, stream));
        CK(cudaGraphLaunch(exec, stream));
        CK(cudaEventRecord(t1, stream));
        CK(cudaEventSynchronize(t1));
        float ms = 0.0f;
        CK(cudaEventElapsedTime(&ms, t0, t1));
        best = std::min(best, ms);
    }
    CK(cudaEventDestroy(t0));
    CK(cudaEventDestroy(t1));
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    return best * 1e-3 / kReps;
}

float bfBits(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

void runShape(const Shape& s, cudaStream_t stream, bool haveWgmma) {
    const auto off = routeOffsets(s, 1234 + s.tokens);
    const int rows = off.back();
    int minRows = rows, maxRows = 0;
    for (int e = 0; e < s.nExperts; ++e) {
        minRows = std::min(minRows, off[e + 1] - off[e]);
        maxRows = std::max(maxRows, off[e + 1] - off[e]);
    }
    std::vector<bf16*> gateUp(s.nExperts), down(s.nExperts);
    const float wScale = 1.0f / std::sqrt(float(s.hidden));
    for (int e = 0; e < s.nExperts; ++e) {
        gateUp[e] = allocFill(int64_t(2) * s.inter * s.hidden, 100 + e, wScale);
        down[e] = allocFill(int64_t(s.hidden) * s.inter, 900 + e, 1.0f / std::sqrt(float(s.inter)));
    }
    bf16* x = allocFill(int64_t(rows) * s.hidden, 7, 1.0f);
    bf16* act = nullptr;
    float* y = nullptr;
    int32_t* dOff = nullptr;
    CK(cudaMalloc(&act, std::max<int64_t>(rows, 1) * s.inter * sizeof(bf16)));
    CK(cudaMalloc(&y, std::max<int64_t>(rows, 1) * s.hidden * sizeof(float)));
    CK(cudaMalloc(&dOff, off.size() * sizeof(int32_t)));
    CK(cudaMemcpy(dOff, off.data(), off.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    CK(cudaDeviceSynchronize());
    std::vector<const bf16*> gu(gateUp.begin(), gateUp.end()), dn(down.begin(), down.end());

    auto params = [&](bool isGateUp, MoeGroupedKernel k) {
        MoeGroupedGemmParams p;
        p.max_rows = rows;
        p.n_experts = s.nExperts;
        p.hidden = s.hidden;
        p.inter = s.inter;
        p.expert_offsets = dOff;
        p.kernel = k;
        p.expert_weights = isGateUp ? gu.data() : dn.data();
        p.in = isGateUp ? x : act;
        p.in_stride = isGateUp ? s.hidden : s.inter;
        p.out = isGateUp ? static_cast<void*>(act) : static_cast<void*>(y);
        p.out_stride = isGateUp ? s.inter : s.hidden;
        return p;
    };
    const double flopGateUp = 2.0 * rows * 2.0 * s.inter * s.hidden;
    const double flopDown = 2.0 * rows * double(s.hidden) * s.inter;
    std::printf(
        "\n%s: %d tokens x top-%d of %d experts = %d rows (per expert %d..%d, mean %.0f), hidden %d, "
        "inter %d\n",
        s.name, s.tokens, s.topK, s.nExperts, rows, minRows, maxRows, double(rows) / s.nExperts, s.hidden, s.inter);
    std::printf("  %-9s %12s %10s %12s %10s %12s\n", "kernel", "gate|up us", "TFLOP/s", "down us", "TFLOP/s",
                "pair us");
    struct Variant {
        const char* name;
        MoeGroupedKernel kernel;
        const char* loader;  // DSV2_WGMMA_LOADER, nullptr: unset (TMA)
    };
    std::vector<Variant> kernels{{"mma.sync", MoeGroupedKernel::MmaSync, nullptr}};
    if (haveWgmma) {
        kernels.push_back({"wgmma-cp", MoeGroupedKernel::Wgmma, "cpasync"});
        kernels.push_back({"wgmma-down", MoeGroupedKernel::Wgmma, "down"});  // TMA for down only
        kernels.push_back({"wgmma-tma", MoeGroupedKernel::Wgmma, nullptr});  // the default: TMA for both
    }
    if (gProfile) {
        for (const auto& v : kernels) {
            if (v.kernel != MoeGroupedKernel::Wgmma) continue;
            if (v.loader)
                setenv("DSV2_WGMMA_LOADER", v.loader, 1);
            else
                unsetenv("DSV2_WGMMA_LOADER");
            OK(dsv2::cuda::launchMoeGroupedGateUp(params(true, v.kernel), stream));
            OK(dsv2::cuda::launchMoeGroupedDown(params(false, v.kernel), stream));
            CK(cudaStreamSynchronize(stream));
        }
        unsetenv("DSV2_WGMMA_LOADER");
        kernels.clear();
    }
    std::vector<std::vector<uint16_t>> actOut(kernels.size());
    std::vector<std::vector<float>> yOut(kernels.size());
    for (size_t ki = 0; ki < kernels.size(); ++ki) {
        const auto k = kernels[ki].kernel;
        if (kernels[ki].loader)
            setenv("DSV2_WGMMA_LOADER", kernels[ki].loader, 1);
        else
            unsetenv("DSV2_WGMMA_LOADER");
        const auto pg = params(true, k), pd = params(false, k);
        const double tg = timeLaunch(stream, [&] { OK(dsv2::cuda::launchMoeGroupedGateUp(pg, stream)); });
        const double td = timeLaunch(stream, [&] { OK(dsv2::cuda::launchMoeGroupedDown(pd, stream)); });
        std::printf("  %-9s %12.1f %10.1f %12.1f %10.1f %12.1f\n", kernels[ki].name, tg * 1e6, flopGateUp / tg / 1e12,
                    td * 1e6, flopDown / td / 1e12, (tg + td) * 1e6);
        // Outputs for the cross-check: gate|up, then down on this kernel's own act.
        CK(cudaMemset(act, 0xFF, std::max<int64_t>(rows, 1) * s.inter * sizeof(bf16)));
        CK(cudaMemset(y, 0xFF, std::max<int64_t>(rows, 1) * s.hidden * sizeof(float)));
        OK(dsv2::cuda::launchMoeGroupedGateUp(pg, stream));
        OK(dsv2::cuda::launchMoeGroupedDown(pd, stream));
        CK(cudaStreamSynchronize(stream));
        actOut[ki].resize(size_t(rows) * s.inter);
        yOut[ki].resize(size_t(rows) * s.hidden);
        CK(cudaMemcpy(actOut[ki].data(), act, actOut[ki].size() * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(yOut[ki].data(), y, yOut[ki].size() * 4, cudaMemcpyDeviceToHost));
    }
    unsetenv("DSV2_WGMMA_LOADER");
    if (kernels.size() == 4) {
        const bool same = actOut[1] == actOut[3] && actOut[2] == actOut[3] &&
                          std::memcmp(yOut[1].data(), yOut[3].data(), yOut[1].size() * 4) == 0 &&
                          std::memcmp(yOut[2].data(), yOut[3].data(), yOut[1].size() * 4) == 0;
        std::printf("  check wgmma loaders (cp.async, down-only TMA, TMA): %s\n", same ? "bit-identical" : "DIFFERENT");
        if (!same) std::exit(2);
    }
    for (size_t kv = 1; kv < kernels.size(); ++kv) {
        int64_t actDiff = 0, actFar = 0, yFar = 0, nonFinite = 0;
        double y2 = 0.0, d2 = 0.0;
        for (size_t i = 0; i < actOut[0].size(); ++i) {
            const float a = bfBits(actOut[0][i]), b = bfBits(actOut[kv][i]);
            if (!std::isfinite(b)) ++nonFinite;
            if (a != b) ++actDiff;
            if (!(std::fabs(a - b) <= 0.03f * std::fabs(a) + 1e-2f)) ++actFar;
        }
        for (size_t i = 0; i < yOut[0].size(); ++i) {
            const double a = yOut[0][i], b = yOut[kv][i];
            if (!std::isfinite(b)) ++nonFinite;
            y2 += a * a;
            d2 += (a - b) * (a - b);
        }
        const double yRms = std::sqrt(y2 / std::max<size_t>(yOut[0].size(), 1));
        for (size_t i = 0; i < yOut[0].size(); ++i)
            if (!(std::fabs(yOut[0][i] - yOut[kv][i]) <= 2e-2 * yRms)) ++yFar;
        const bool ok = actFar == 0 && yFar == 0 && nonFinite == 0 &&
                        actDiff <= int64_t(0.01 * double(actOut[0].size())) &&
                        std::sqrt(d2 / std::max(y2, 1e-30)) < 1e-2;
        std::printf(
            "  check %s vs mma.sync: act %lld/%zu differ (%lld far), y relRMS %.2e (%lld far, RMS %.3g), "
            "%lld non-finite: %s\n",
            kernels[kv].name, (long long)actDiff, actOut[0].size(), (long long)actFar,
            std::sqrt(d2 / std::max(y2, 1e-30)), (long long)yFar, yRms, (long long)nonFinite, ok ? "OK" : "MISMATCH");
        if (!ok) std::exit(2);
    }
    for (int e = 0; e < s.nExperts; ++e) {
        CK(cudaFree(gateUp[e]));
        CK(cudaFree(down[e]));
    }
    CK(cudaFree(x));
    CK(cudaFree(act));
    CK(cudaFree(y));
    CK(cudaFree(dOff));
}

}  // namespace

int main(int argc, char** argv) {
    cudaDeviceProp prop{};
    CK(cudaGetDeviceProperties(&prop, 0));
    const bool haveWgmma = dsv2::cuda::moeGroupedWgmmaAvailable();
    std::printf("%s, %d SMs; wgmma kernel %s\n", prop.name, prop.multiProcessorCount,
                haveWgmma ? "available" : "NOT available");
    cudaStream_t stream;
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    std::vector<Shape> shapes{
        {"Lite 2K", 2048, 1408, 64, 6, 2048},
        {"Lite 1K", 2048, 1408, 64, 6, 1024},
        {"Lite 16-token chunk", 2048, 1408, 64, 6, 16},
        {"Lite 8K", 2048, 1408, 64, 6, 8192},
        {"V2 2K", 5120, 1536, 160, 6, 2048},
        {"V2 8K", 5120, 1536, 160, 6, 8192},
    };
    gProfile = argc > 1 && std::strcmp(argv[1], "--profile") == 0;
    const bool quick = gProfile || (argc > 1 && std::strcmp(argv[1], "--quick") == 0);  // Lite 2K and 1K only
    for (const auto& s : shapes) {
        if (quick && std::strcmp(s.name, "Lite 2K") != 0 && std::strcmp(s.name, "Lite 1K") != 0) continue;
        runShape(s, stream, haveWgmma);
    }
    CK(cudaStreamDestroy(stream));
    return 0;
}
