// Standalone bench + check of the one-token MoE kernels (engine/cuda/moe_decode.cu) on
// DeepSeek-V2-Lite shapes, against an fp32 host reference and, optionally, against another
// version of the kernels. Not part of the CMake build; on a GPU machine, from the repo root:
//   nvcc -std=c++20 -O3 -arch=sm_90 -I engine -I engine/include tools/bench/moe_decode_bench.cu \
//        engine/cuda/pdl.cu engine/core/status.cpp -o /tmp/moe_bench && /tmp/moe_bench
// (-DMOE_BENCH_OLD='"path/to/old_moe_decode.cu"' adds a copy of older kernels whose namespace was
// renamed dsv2::cuda::old and launch function launchMoeDecodeOld.)
// Times are per launch, from CUDA graphs replaying kLayers distinct weight sets (138 MB each at
// Lite shapes, so L2 holds nothing of the next launch), at the GPU's own clocks.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/moe_decode.cu"  // the kernel templates live in its anonymous namespace
#ifdef MOE_BENCH_OLD
#include MOE_BENCH_OLD
#endif
#include "bench_check.h"
#include "bench_util.cuh"

namespace moebench {
using namespace dsv2;
using namespace dsv2::cuda;

// The ceiling: a plain streaming read of n 16-byte vectors, U loads in flight per thread.
template <int U>
__global__ void readKernel(const uint4* p, int64_t n, unsigned* sink) {
    unsigned acc = 0;
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    for (; i + (U - 1) * stride < n; i += U * stride) {
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; ++u) v[u] = __ldcs(p + i + u * stride);
        unsigned dep = 0;  // all loads before the first use (see opaqueZero in moe_decode.cu)
#pragma unroll
        for (int u = 0; u < U; ++u) dep |= v[u].x;
        dep &= static_cast<unsigned>(n >> 62);
#pragma unroll
        for (int u = 0; u < U; ++u) acc ^= (v[u].x | dep) ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    for (; i < n; i += stride) acc ^= __ldcs(p + i).x;
    if (acc == 0x12345678u) *sink = acc;
}

bf16* allocFill(int64_t n, uint64_t seed, float scale) {
    bf16* p = nullptr;
    CK(cudaMalloc(&p, std::max<int64_t>(n, 8) * sizeof(bf16)));
    fillKernel<<<1024, 256>>>(p, n, seed, scale);
    CK(cudaGetLastError());
    return p;
}

float bf(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
float rbf(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

std::vector<uint16_t> download(const bf16* p, int64_t n) {
    std::vector<uint16_t> h(n);
    CK(cudaMemcpy(h.data(), p, n * 2, cudaMemcpyDeviceToHost));
    return h;
}

struct Shape {
    int hidden, inter, topK, shared, nExperts;
};

// One layer's device data: expert tables (nullptr where `missing`), routing, x, act, out.
struct Layer {
    Shape s;
    std::vector<bf16*> gateUp, down;  // per expert (only chosen ones allocated; others nullptr or a dummy)
    bf16 *sharedGateUp = nullptr, *sharedDown = nullptr, *x = nullptr, *act = nullptr;
    const bf16 **dGateUp = nullptr, **dDown = nullptr;
    int32_t* dIds = nullptr;
    float *dW = nullptr, *out = nullptr;
    std::vector<int32_t> ids;
    std::vector<float> w;
    std::vector<bool> held;

    MoeDecodeParams params() const {
        MoeDecodeParams p;
        p.hidden = s.hidden;
        p.top_k = s.topK;
        p.inter = s.inter;
        p.shared_inter = s.shared;
        p.x = x;
        p.topk_ids = dIds;
        p.topk_weights = dW;
        p.expert_gate_up = dGateUp;
        p.expert_down = dDown;
        p.shared_gate_up = sharedGateUp;
        p.shared_down = sharedDown;
        p.act = act;
        p.out = out;
        return p;
    }
};

Layer makeLayer(const Shape& s, uint64_t seed, const std::vector<bool>& heldMask) {
    Layer L;
    L.s = s;
    std::mt19937_64 rng(seed);
    std::vector<int32_t> perm(s.nExperts);
    for (int e = 0; e < s.nExperts; ++e) perm[e] = e;
    std::shuffle(perm.begin(), perm.end(), rng);
    L.ids.assign(perm.begin(), perm.begin() + s.topK);
    std::uniform_real_distribution<float> u(0.05f, 0.4f);
    for (int k = 0; k < s.topK; ++k) L.w.push_back(u(rng));
    L.held = heldMask.empty() ? std::vector<bool>(s.topK, true) : heldMask;
    L.gateUp.assign(s.nExperts, nullptr);
    L.down.assign(s.nExperts, nullptr);
    for (int k = 0; k < s.topK; ++k) {
        if (!L.held[k]) continue;
        L.gateUp[L.ids[k]] = allocFill(int64_t(2) * s.inter * s.hidden, seed * 131 + k, 0.2f);
        L.down[L.ids[k]] = allocFill(int64_t(s.hidden) * s.inter, seed * 137 + k, 0.2f);
    }
    if (s.shared) {
        L.sharedGateUp = allocFill(int64_t(2) * s.shared * s.hidden, seed * 139, 0.2f);
        L.sharedDown = allocFill(int64_t(s.hidden) * s.shared, seed * 149, 0.2f);
    }
    L.x = allocFill(s.hidden, seed * 151, 2.0f);
    CK(cudaMalloc(&L.act, moeDecodeActElements(s.topK, s.inter, s.shared) * 2));
    CK(cudaMemset(L.act, 0xff, moeDecodeActElements(s.topK, s.inter, s.shared) * 2));  // NaN: unwritten reads show
    CK(cudaMalloc(&L.out, s.hidden * 4));
    CK(cudaMalloc(&L.dGateUp, s.nExperts * sizeof(bf16*)));
    CK(cudaMalloc(&L.dDown, s.nExperts * sizeof(bf16*)));
    CK(cudaMemcpy(L.dGateUp, L.gateUp.data(), s.nExperts * sizeof(bf16*), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(L.dDown, L.down.data(), s.nExperts * sizeof(bf16*), cudaMemcpyHostToDevice));
    CK(cudaMalloc(&L.dIds, s.topK * 4));
    CK(cudaMalloc(&L.dW, s.topK * 4));
    CK(cudaMemcpy(L.dIds, L.ids.data(), s.topK * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(L.dW, L.w.data(), s.topK * 4, cudaMemcpyHostToDevice));
    return L;
}

// fp32 host reference at the GPU's bf16 rounding points (double sums: order-free).
std::vector<float> reference(const Layer& L) {
    const Shape& s = L.s;
    const auto x = download(L.x, s.hidden);
    std::vector<double> out(s.hidden, 0.0);
    auto mlp = [&](const bf16* gu, const bf16* dn, int inter, double scale) {
        const auto g = download(gu, int64_t(2) * inter * s.hidden);
        const auto d = download(dn, int64_t(s.hidden) * inter);
        std::vector<float> act(inter);
        for (int r = 0; r < inter; ++r) {
            double gs = 0, us = 0;
            for (int c = 0; c < s.hidden; ++c) {
                gs += double(bf(g[int64_t(r) * s.hidden + c])) * bf(x[c]);
                us += double(bf(g[int64_t(inter + r) * s.hidden + c])) * bf(x[c]);
            }
            const float gr = rbf(float(gs));
            act[r] = rbf((gr / (1.0f + std::exp(-gr))) * rbf(float(us)));
        }
        for (int j = 0; j < s.hidden; ++j) {
            double acc = 0;
            for (int r = 0; r < inter; ++r) acc += double(bf(d[int64_t(j) * inter + r])) * act[r];
            out[j] += scale * acc;
        }
    };
    for (int k = 0; k < s.topK; ++k)
        if (L.held[k]) mlp(L.gateUp[L.ids[k]], L.down[L.ids[k]], s.inter, L.w[k]);
    if (s.shared) mlp(L.sharedGateUp, L.sharedDown, s.shared, 1.0);
    return std::vector<float>(out.begin(), out.end());
}

bool compare(const char* what, const std::vector<float>& got, const std::vector<float>& want) {
    double d2 = 0, w2 = 0, maxErr = 0;
    bool finite = true;
    for (size_t i = 0; i < want.size(); ++i) {
        if (!std::isfinite(got[i])) finite = false;
        const double d = double(got[i]) - want[i];
        d2 += d * d;
        w2 += double(want[i]) * want[i];
        maxErr = std::max(maxErr, std::fabs(d));
    }
    const double rms = std::sqrt(w2 / want.size()), relRms = std::sqrt(d2 / w2);
    const bool ok = finite && relRms <= 1e-3 && maxErr <= 2.5e-2 * rms;
    std::printf("  %-44s relRMS %.2e  max|err|/RMS %.2e  %s\n", what, relRms, maxErr / rms, ok ? "ok" : "FAIL");
    return ok;
}

std::vector<float> downloadOut(const Layer& L) {
    std::vector<float> h(L.s.hidden);
    CK(cudaMemcpy(h.data(), L.out, L.s.hidden * 4, cudaMemcpyDeviceToHost));
    return h;
}

using Launch = std::function<void(const MoeDecodeParams&, cudaStream_t)>;

template <int R, int U>
void gateUpVariant(const MoeDecodeParams& p, cudaStream_t st) {
    const int64_t nAct = moeDecodeActElements(p.top_k, p.inter, p.shared_inter);
    CK(launchPdl(moeDecodeGateUpKernel<R, U>, dim3(unsigned(ceilDiv(nAct, int64_t(kWarps) * R))), dim3(kThreads), 0, st,
                 p));
}
template <int R, int U>
void downVariant(const MoeDecodeParams& p, cudaStream_t st) {
    CK(launchPdl(moeDecodeDownKernel<R, U>, dim3(unsigned(p.hidden / R)), dim3(kThreads), 0, st, p));
}

struct Variant {
    std::string name;
    Launch gateUp, down;
};

// Per-launch µs of `f` over all layers, from a graph of `reps` rounds replayed `iters` times.
double timeGraph(const std::vector<Layer>& layers, const std::function<void(const Layer&, cudaStream_t)>& f,
                 int reps = 4, int iters = 10) {
    return graphMicrosPerItem(layers, f, reps, iters);
}

}  // namespace moebench

int main(int argc, char** argv) {
    using namespace moebench;
    const std::string mode = argc > 1 ? argv[1] : "all";
    std::vector<Variant> variants;
    variants.push_back({"new (launchMoeDecode)", nullptr, nullptr});
// Other launch geometries to compare with launchMoeDecode's (gate|up <rows, unroll>, down <rows, unroll>).
#define V(GR, GU, DR, DU) \
    variants.push_back({"gu<" #GR "," #GU "> dn<" #DR "," #DU ">", gateUpVariant<GR, GU>, downVariant<DR, DU>})
    V(1, 2, 4, 2);
    V(1, 8, 8, 1);
    V(2, 4, 2, 1);
#undef V
#ifdef MOE_BENCH_OLD
    variants.push_back({"old (launchMoeDecodeOld)", nullptr, nullptr});
#endif
    auto run = [&](const Variant& v, const Layer& L, cudaStream_t st) {
        const auto p = L.params();
        if (v.gateUp) {
            v.gateUp(p, st);
            v.down(p, st);
            return;
        }
#ifdef MOE_BENCH_OLD
        if (v.name.rfind("old", 0) == 0) {
            const Status s = old::launchMoeDecodeOld(p, st);
            if (!s.isOk()) std::exit(2);
            return;
        }
#endif
        const Status s = launchMoeDecode(p, st);
        if (!s.isOk()) {
            std::fprintf(stderr, "launchMoeDecode: %s\n", s.message().c_str());
            std::exit(2);
        }
    };

    int failures = 0;
    if (mode == "all" || mode == "check") {
        struct Case {
            const char* name;
            Shape s;
            std::vector<bool> held;
        };
        const std::vector<Case> cases{
            {"Lite (2048, 1408, top-6, shared 2816)", {2048, 1408, 6, 2816, 64}, {}},
            {"odd (1032, 200, top-3, shared 88)", {1032, 200, 3, 88, 16}, {}},
            {"top-1, no shared (264, 8)", {264, 8, 1, 0, 4}, {}},
            {"null experts (2048, 1408, 3 of 6 held)",
             {2048, 1408, 6, 2816, 64},
             {true, false, true, false, false, true}},
            {"nothing held, no shared", {128, 64, 2, 0, 8}, {false, false}},
            {"V2 (5120, 1536, top-6, shared 3072)", {5120, 1536, 6, 3072, 160}, {}},
        };
        for (const auto& c : cases) {
            std::printf("check %s\n", c.name);
            const Layer L = makeLayer(c.s, 7, c.held);
            const auto want = reference(L);
            for (const auto& v : variants) {
                run(v, L, nullptr);
                CK(cudaDeviceSynchronize());
                const auto got = downloadOut(L);
                run(v, L, nullptr);  // again: bit-identical
                CK(cudaDeviceSynchronize());
                const bool same = got == downloadOut(L);
                bool ok;
                if (c.s.shared == 0 && !c.held.empty() &&
                    std::none_of(c.held.begin(), c.held.end(), [](bool b) { return b; })) {
                    ok = std::all_of(got.begin(), got.end(), [](float f) { return f == 0.0f; });
                    std::printf("  %-44s all zero %s\n", v.name.c_str(), ok ? "ok" : "FAIL");
                } else {
                    ok = compare(v.name.c_str(), got, want);
                }
                if (!same) std::printf("  %s: NOT deterministic\n", v.name.c_str());
                failures += !ok || !same;
            }
        }
    }
    if (mode == "all" || mode == "time") {
        const Shape lite{2048, 1408, 6, 2816, 64};
        std::vector<Layer> layers;
        for (int l = 0; l < 8; ++l) layers.push_back(makeLayer(lite, 1000 + l, {}));
        CK(cudaDeviceSynchronize());
        const double guBytes = 2.0 * 2 * lite.hidden * (double(lite.topK) * lite.inter + lite.shared);
        const double dnBytes = guBytes / 2;
        std::printf(
            "timing (Lite, 8 distinct layers, graph replay; PDL %s); ideal at 4.26 TB/s: gate|up %.1f µs, "
            "down %.1f µs\n",
            pdlEnabledOnCurrentDevice() ? "on" : "off", guBytes / 4.26e6, dnBytes / 4.26e6);
        {  // ceilings: plain streaming reads of the same byte counts
            std::vector<bf16*> gu, dn;
            unsigned* sink;
            CK(cudaMalloc(&sink, 4));
            for (int l = 0; l < 8; ++l) {
                gu.push_back(allocFill(int64_t(guBytes / 2), 77 + l, 1.0f));
                dn.push_back(allocFill(int64_t(dnBytes / 2), 99 + l, 1.0f));
            }
            CK(cudaDeviceSynchronize());
            auto ceiling = [&](const char* name, auto kernel, int blocks) {
                const double tg = timeGraph(layers, [&](const Layer& L, cudaStream_t st) {
                    const auto l = &L - layers.data();
                    kernel<<<blocks, 256, 0, st>>>(reinterpret_cast<const uint4*>(gu[l]), int64_t(guBytes / 16), sink);
                });
                const double td = timeGraph(layers, [&](const Layer& L, cudaStream_t st) {
                    const auto l = &L - layers.data();
                    kernel<<<blocks, 256, 0, st>>>(reinterpret_cast<const uint4*>(dn[l]), int64_t(dnBytes / 16), sink);
                });
                std::printf(
                    "  ceiling %-20s %4d blocks: %6.2f µs (%.2f TB/s) for gate|up bytes, %6.2f µs (%.2f TB/s) for down "
                    "bytes\n",
                    name, blocks, tg, guBytes / tg / 1e6, td, dnBytes / td / 1e6);
            };
            for (int b : {132 * 4, 132 * 8, 132 * 16}) {
                ceiling("read<4>", readKernel<4>, b);
                ceiling("read<8>", readKernel<8>, b);
            }
        }
#ifdef MOE_BENCH_OLD
        {
            const double gu = timeGraph(layers, [&](const Layer& L, cudaStream_t st) {
                const auto p = L.params();
                old::moeDecodeGateUpKernel<<<
                    unsigned(ceilDiv(moeDecodeActElements(p.top_k, p.inter, p.shared_inter), 8)), 256, 0, st>>>(p);
            });
            const double dn = timeGraph(layers, [&](const Layer& L, cudaStream_t st) {
                const auto p = L.params();
                old::moeDecodeDownKernel<<<unsigned(p.hidden / 8), 256, 0, st>>>(p);
            });
            std::printf("  old kernels alone: gate|up %6.2f µs (%.2f TB/s)   down %6.2f µs (%.2f TB/s)\n", gu,
                        guBytes / gu / 1e6, dn, dnBytes / dn / 1e6);
        }
#endif
        for (const auto& v : variants) {
            const double pair = timeGraph(layers, [&](const Layer& L, cudaStream_t st) { run(v, L, st); });
            double gu = 0, dn = 0;
            if (v.gateUp) {
                gu = timeGraph(layers, [&](const Layer& L, cudaStream_t st) { v.gateUp(L.params(), st); });
                dn = timeGraph(layers, [&](const Layer& L, cudaStream_t st) { v.down(L.params(), st); });
            }
            std::printf(
                "  %-28s pair %6.2f µs (%.2f TB/s)   gate|up %6.2f µs (%.2f TB/s)   down %6.2f µs (%.2f TB/s)\n",
                v.name.c_str(), pair, (guBytes + dnBytes) / pair / 1e6, gu, gu ? guBytes / gu / 1e6 : 0.0, dn,
                dn ? dnBytes / dn / 1e6 : 0.0);
        }
    }
    if (mode == "ncu") {  // a few launches of launchMoeDecode for ncu
        const Shape lite{2048, 1408, 6, 2816, 64};
        std::vector<Layer> layers;
        for (int l = 0; l < 3; ++l) layers.push_back(makeLayer(lite, 1000 + l, {}));
        for (const auto& v : variants)
            for (const auto& L : layers) run(v, L, nullptr);
        CK(cudaDeviceSynchronize());
    }
    std::printf("%s\n", failures ? "FAILURES" : "all checks passed");
    return failures ? 1 : 0;
}
