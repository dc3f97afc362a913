// Standalone bench of the one-token MLA decode chain (issue 9) on DeepSeek-V2-Lite shapes:
// attention prologue (kv norm + RoPE + cache write, RoPE of q_pe), q_lat GEMV, the tensor-core
// decode kernel with its in-kernel split merge, v up-projection GEMV. Then every compiled shape of
// the sliced tensor-core kernel (mla_decode_sliced.cu) at the default and forced split counts,
// the engine's chain since session 9 (launchChainNow),
// each checked against the CUDA-core kernel, and the chain with the best of them. Not part of the
// CMake build; on a GPU machine, from the repo root:
//   nvcc -std=c++20 -O3 -arch=sm_90 -I engine -I engine/include -I .carry/include \
//        tools/bench/mla_decode_bench.cu engine/cuda/{pdl,mla_decode,mla_decode_mma,mla_decode_sliced,\
//        mla_absorb_gemv,attention_prologue_fused}.cu engine/cuda/cluster_launch.cpp engine/core/status.cpp \
//        -o /tmp/mla_bench && /tmp/mla_bench
// DSV2_PDL=0 in the environment times the kernels without programmatic dependent launch.
// Times are per layer, from CUDA graphs replaying kLayers distinct layers (own cache, weights,
// activations), at the GPU's own clocks. A check compares the tensor-core o_lat with the CUDA-core
// kernel's at every configuration timed (they share no code but the split arithmetic).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_check.h"
#include "bench_util.cuh"
#include "cuda/attention_prologue_fused.h"
#include "cuda/mla_absorb_gemv.h"
#include "cuda/mla_decode.h"
#include "cuda/mla_decode_common.cuh"
#include "cuda/pdl.cuh"

namespace mlabench {
// MlaDecodeParams::tiles_before_wait of the decode launches (timed both ways below).
bool g_earlyTiles = false;
// The decode kernel of the chain and of L.decode()'s default, and the sliced shape (-1: default).
dsv2::cuda::MlaDecodeKernel g_chainKernel = dsv2::cuda::MlaDecodeKernel::Auto;
int g_slicedVariant = -1;
using namespace dsv2;
using namespace dsv2::cuda;
using dsv2::cuda::mla_decode_detail::mlaDecodeSlicedVariantName;
using bf16 = __nv_bfloat16;

constexpr int kH = 16, kNope = 128, kRopeDim = 64, kV = 128, kLora = 512, kEntry = kLora + kRopeDim;
constexpr int kDqk = kNope + kRopeDim;
constexpr int kBlock = 64;
constexpr int kMaxSplits = 132;
constexpr float kScale = 0.11472f;
constexpr int kDefaultSlicedVariant = 3;  // mla_decode_sliced.cu's default shape (r4 t64 w8 s4)

// The launch floor: a kernel with the decode kernel's launch shape that only waits and leaves.
__global__ void emptyKernel(int* sink) {
    pdlWaitForPrevious();
    pdlLaunchNext();
    if (sink && threadIdx.x == 1023) *sink = 1;
}

bf16* allocFill(int64_t n, uint64_t seed, float scale) {
    bf16* p = nullptr;
    CK(cudaMalloc(&p, std::max<int64_t>(n, 8) * sizeof(bf16)));
    fillKernel<<<512, 256>>>(p, n, seed, scale);
    CK(cudaGetLastError());
    return p;
}
template <typename T>
T* allocZero(int64_t n) {
    T* p = nullptr;
    CK(cudaMalloc(&p, std::max<int64_t>(n, 1) * sizeof(T)));
    CK(cudaMemset(p, 0, std::max<int64_t>(n, 1) * sizeof(T)));
    return p;
}

struct Layer {
    int64_t ctx = 0;
    bf16 *kvb = nullptr, *cache = nullptr, *q = nullptr, *kvA = nullptr, *kvNorm = nullptr, *oLat = nullptr,
         *out = nullptr, *oLatRef = nullptr;
    int32_t *table = nullptr, *counters = nullptr, *pos = nullptr;
    float *qLat = nullptr, *partialO = nullptr, *partialMl = nullptr;
    const float* invFreq = nullptr;

    PagedCacheRef ref() const { return PagedCacheRef{cache, table, kBlock, kEntry}; }
    AttentionPrologueParams prologue() const {
        AttentionPrologueParams p;
        p.n_tokens = 1;
        p.positions = pos;
        p.eps = 1e-6f;
        p.kv_a = kvA;
        p.kv_stride = kEntry;
        p.kv_lora = kLora;
        p.kv_weight = kvNorm;
        p.cache = ref();
        p.q_pe = q + kNope;
        p.n_heads = kH;
        p.q_token_stride = kH * kDqk;
        p.q_head_stride = kDqk;
        p.rope_dim = kRopeDim;
        p.inv_freq = invFreq;
        p.amplitude = 1.0f;
        return p;
    }
    MlaAbsorbGemvParams gemv() const {
        MlaAbsorbGemvParams p;
        p.n_q = 1;
        p.n_heads = kH;
        p.d_nope = kNope;
        p.d_v = kV;
        p.kv_lora = kLora;
        p.kv_b = kvb;
        p.q = q;
        p.q_token_stride = kH * kDqk;
        p.q_head_stride = kDqk;
        p.q_lat = qLat;
        p.lat_token_stride = kH * kLora;
        p.lat_head_stride = kLora;
        p.o_lat = oLat;
        p.o_token_stride = kH * kLora;
        p.o_head_stride = kLora;
        p.out = out;
        p.out_token_stride = kH * kV;
        p.out_head_stride = kV;
        return p;
    }
    // Device position (as the decode graph runs it) unless splitLen > 0: host position, forced split.
    // Device position with `deviceSplits` (0: the engine's count) unless splitLen > 0.
    MlaDecodeParams decode(int64_t splitLen = 0, MlaDecodeKernel k = g_chainKernel, int deviceSplits = 0) const {
        MlaDecodeParams p;
        p.tiles_before_wait = g_earlyTiles;
        p.sliced_variant = g_slicedVariant;
        p.n_q = 1;
        p.n_heads = kH;
        p.d_latent = kLora;
        p.d_rope = kRopeDim;
        p.q_pos0 = ctx - 1;
        p.q_lat = qLat;
        p.q_lat_token_stride = kH * kLora;
        p.q_lat_head_stride = kLora;
        p.q_pe = q + kNope;
        p.q_pe_token_stride = kH * kDqk;
        p.q_pe_head_stride = kDqk;
        p.cache = ref();
        if (splitLen > 0) {
            p.split_len = splitLen;
            p.n_splits = static_cast<int>((ctx + splitLen - 1) / splitLen);
        } else {
            p.q_pos0_device = pos;
            p.n_splits = deviceSplits > 0 ? deviceSplits : mlaDecodeSplitsForDevice(kH, 132);
        }
        p.partial_o = partialO;
        p.partial_ml = partialMl;
        p.merge_counters = counters;
        p.out = oLat;
        p.out_token_stride = kH * kLora;
        p.out_head_stride = kLora;
        p.softmax_scale = kScale;
        p.kernel = k;
        return p;
    }
};

Layer makeLayer(int64_t ctx, uint64_t seed, const float* invFreq) {
    Layer L;
    L.ctx = ctx;
    L.invFreq = invFreq;
    const int64_t blocks = (ctx + kBlock - 1) / kBlock + 1;
    L.kvb = allocFill(int64_t(kH) * (kNope + kV) * kLora, seed * 3 + 1, 0.1f);
    L.cache = allocFill(blocks * kBlock * kEntry, seed * 3 + 2, 1.0f);
    L.q = allocFill(kH * kDqk, seed * 3 + 3, 1.0f);
    L.kvA = allocFill(kEntry, seed * 5 + 1, 1.0f);
    L.kvNorm = allocFill(kLora, seed * 5 + 2, 1.0f);
    L.oLat = allocZero<bf16>(kH * kLora);
    L.oLatRef = allocZero<bf16>(kH * kLora);
    L.out = allocZero<bf16>(kH * kV);
    std::vector<int32_t> table(blocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937_64(seed));
    L.table = allocZero<int32_t>(blocks);
    CK(cudaMemcpy(L.table, table.data(), blocks * 4, cudaMemcpyHostToDevice));
    L.counters = allocZero<int32_t>(mlaDecodeMergeCounterCount(1, kH));
    L.pos = allocZero<int32_t>(1);
    const int32_t p = static_cast<int32_t>(ctx - 1);
    CK(cudaMemcpy(L.pos, &p, 4, cudaMemcpyHostToDevice));
    L.qLat = allocZero<float>(kH * kLora);
    L.partialO = allocZero<float>(int64_t(kH) * kMaxSplits * kLora);
    L.partialMl = allocZero<float>(int64_t(kH) * kMaxSplits * 2);
    return L;
}

// Per-layer µs of `f` over all layers, from a graph of `reps` rounds replayed `iters` times.
double timeGraph(const std::vector<Layer>& layers, const std::function<void(const Layer&, cudaStream_t)>& f,
                 int reps = 8, int iters = 15) {
    return graphMicrosPerItem(layers, f, reps, iters);
}

float bf(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// max |a − b| / max |b| of two bf16 arrays (a: the kernel under test, b: the reference); inf when a
// has a non-finite value.
double relMaxError(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
    double err = 0, mag = 0;
    bool finite = true;
    for (size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(bf(a[i]))) finite = false;
        err = std::max(err, double(std::fabs(bf(a[i]) - bf(b[i]))));
        mag = std::max(mag, double(std::fabs(bf(b[i]))));
    }
    return finite ? err / mag : INFINITY;
}

// The same over o_lat of the layer (a: the kernel under test, b: the CUDA cores).
double compareOLat(const Layer& L) {
    std::vector<uint16_t> a(kH * kLora), b(kH * kLora);
    CK(cudaMemcpy(a.data(), L.oLat, a.size() * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(b.data(), L.oLatRef, b.size() * 2, cudaMemcpyDeviceToHost));
    return relMaxError(a, b);
}

// o_lat of the CUDA-core kernel (+ combine) into oLatRef.
void referenceOLat(const Layer& L) {
    MlaDecodeParams p = L.decode(0, MlaDecodeKernel::Simt);
    p.sliced_variant = -1;
    p.out = L.oLatRef;
    OK(launchMlaDecode(p, nullptr));
    CK(cudaDeviceSynchronize());
}

// The engine's chain since session 9: the prologue inside the q_lat launch, the decode kernel
// leaving its split merge to the v GEMV (sliced kernel) and the v GEMV letting the next launch
// through before its wait.
void launchChainNow(const Layer& L, cudaStream_t s) {
    MlaAbsorbGemvParams g = L.gemv();
    const AttentionPrologueParams pro = L.prologue();
    OK(launchMlaQLatGemv(g, s, &pro));
    MlaDecodeParams p = L.decode();
    p.tiles_before_wait = true;
    p.new_entries_one_back = true;
    p.defer_merge_max_splits = kMlaDecodeMaxDeferredSplits;
    MlaDecodeLaunched launched;
    OK(launchMlaDecode(p, s, &launched));
    takeDeferredMerge(g, p, launched);
    g.launch_next_early = true;
    OK(launchMlaVUpGemv(g, s));
}

int failures = 0;
// Recomputes the reference first: the timed chains re-run the prologue, which rotates q_pe and
// re-norms kv_a in place.
void check(const char* what, const Layer& L) {
    referenceOLat(L);
    const double e = compareOLat(L);
    const bool ok = e <= 2e-2;  // bf16 outputs of two summation orders: ~4e-3 expected
    if (!ok) ++failures;
    std::printf("    check %-34s max|Δ|/max %.2e %s\n", what, e, ok ? "ok" : "FAIL");
}

// v of launchChainNow (o_lat merged inside the v GEMV, never stored) against the v GEMV over the
// CUDA-core kernel's o_lat of the same state.
void checkChainNow(const Layer& L) {
    launchChainNow(L, nullptr);
    CK(cudaDeviceSynchronize());
    std::vector<uint16_t> got(kH * kV), want(kH * kV);
    CK(cudaMemcpy(got.data(), L.out, got.size() * 2, cudaMemcpyDeviceToHost));
    referenceOLat(L);
    MlaAbsorbGemvParams g = L.gemv();
    g.o_lat = L.oLatRef;
    OK(launchMlaVUpGemv(g, nullptr));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(want.data(), L.out, want.size() * 2, cudaMemcpyDeviceToHost));
    const double e = relMaxError(got, want);
    const bool ok = e <= 2e-2;
    if (!ok) ++failures;
    std::printf("    check %-34s max|Δ|/max %.2e %s\n", "chain now (v)", e, ok ? "ok" : "FAIL");
}

}  // namespace mlabench

int main(int argc, char** argv) {
    using namespace mlabench;
    const std::string mode = argc > 1 ? argv[1] : "time";
    int dev = 0;
    CK(cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    CK(cudaGetDeviceProperties(&prop, dev));
    std::printf("%s, %d SMs, PDL %s\n", prop.name, prop.multiProcessorCount,
                pdlEnabledOnCurrentDevice() ? "on" : "off");
    float* invFreq = nullptr;
    {
        std::vector<float> f(kRopeDim / 2);
        for (int i = 0; i < kRopeDim / 2; ++i) f[i] = std::pow(10000.0f, -2.0f * i / kRopeDim);
        CK(cudaMalloc(&invFreq, f.size() * 4));
        CK(cudaMemcpy(invFreq, f.data(), f.size() * 4, cudaMemcpyHostToDevice));
    }
    int* sink = allocZero<int>(1);
    CK(cudaFuncSetAttribute(emptyKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 170 * 1024));
    if (mode == "ncu") {  // a few plain launches of the chain at 1K and 16K for ncu (DSV2_MLA_DECODE picks the kernel)
        for (int64_t ctx : {1024, 16384}) {
            const Layer L = makeLayer(ctx, 7, invFreq);
            for (int i = 0; i < 3; ++i) {
                OK(launchAttentionPrologue(L.prologue(), nullptr));
                OK(launchMlaQLatGemv(L.gemv(), nullptr));
                OK(launchMlaDecode(L.decode(), nullptr));
                OK(launchMlaVUpGemv(L.gemv(), nullptr));
            }
        }
        CK(cudaDeviceSynchronize());
        return 0;
    }
    constexpr int kLayers = 27;
    std::string slicedSummary;
    // Every shape at 1K, 4K and 16K; the default shape (and r8 t64/t128 w8 s4) at the others, for
    // the context threshold between the kernels. MLA_BENCH_MMA_SPLITS=1 adds the tensor-core
    // kernel's forced split lengths.
    const bool mmaSplits =
        std::getenv("MLA_BENCH_MMA_SPLITS") && std::string(std::getenv("MLA_BENCH_MMA_SPLITS")) == "1";
    bool firstContext = true;
    for (int64_t ctx : {1024, 2048, 4096, 8192, 16384, 32768}) {
        const bool sweep = ctx == 1024 || ctx == 4096 || ctx == 16384;
        std::vector<Layer> layers;
        for (int l = 0; l < kLayers; ++l) layers.push_back(makeLayer(ctx, 100 * ctx + l, invFreq));
        CK(cudaDeviceSynchronize());
        std::printf("context %lld (%d layers, %.1f MB of cache each)\n", (long long)ctx, kLayers,
                    ctx * kEntry * 2 / 1e6);
        // The chain once (the prologue writes the last entry), then the check of the decode kernel.
        const Layer& L0 = layers[0];
        OK(launchAttentionPrologue(L0.prologue(), nullptr));
        OK(launchMlaQLatGemv(L0.gemv(), nullptr));
        OK(launchMlaDecode(L0.decode(), nullptr));
        OK(launchMlaVUpGemv(L0.gemv(), nullptr));
        CK(cudaDeviceSynchronize());
        check("chain (device splits)", L0);

        const double tPro =
            timeGraph(layers, [](const Layer& L, cudaStream_t s) { OK(launchAttentionPrologue(L.prologue(), s)); });
        const double tQ = timeGraph(layers, [](const Layer& L, cudaStream_t s) { OK(launchMlaQLatGemv(L.gemv(), s)); });
        const double tM = timeGraph(layers, [](const Layer& L, cudaStream_t s) { OK(launchMlaDecode(L.decode(), s)); });
        const double tV = timeGraph(layers, [](const Layer& L, cudaStream_t s) { OK(launchMlaVUpGemv(L.gemv(), s)); });
        const double tChain = timeGraph(layers, [](const Layer& L, cudaStream_t s) {
            OK(launchAttentionPrologue(L.prologue(), s));
            OK(launchMlaQLatGemv(L.gemv(), s));
            OK(launchMlaDecode(L.decode(), s));
            OK(launchMlaVUpGemv(L.gemv(), s));
        });
        std::printf("  alone: prologue %6.2f  q_lat %6.2f  decode %6.2f  v_up %6.2f  (sum %6.2f)   chain %6.2f µs\n",
                    tPro, tQ, tM, tV, tPro + tQ + tM + tV, tChain);
        g_earlyTiles = true;  // the first tiles loaded before the PDL wait for q_lat
        const double tChainEarly = timeGraph(layers, [](const Layer& L, cudaStream_t s) {
            OK(launchAttentionPrologue(L.prologue(), s));
            OK(launchMlaQLatGemv(L.gemv(), s));
            OK(launchMlaDecode(L.decode(), s));
            OK(launchMlaVUpGemv(L.gemv(), s));
        });
        OK(launchAttentionPrologue(L0.prologue(), nullptr));
        OK(launchMlaQLatGemv(L0.gemv(), nullptr));
        OK(launchMlaDecode(L0.decode(), nullptr));
        CK(cudaDeviceSynchronize());
        check("chain, tiles before the wait", L0);
        g_earlyTiles = false;
        std::printf("  chain with the decode's first tiles before its PDL wait: %6.2f µs (%+.2f)\n", tChainEarly,
                    tChainEarly - tChain);
        const double tChainNow = timeGraph(layers, [](const Layer& L, cudaStream_t s) { launchChainNow(L, s); });
        checkChainNow(L0);
        std::printf("  chain now (prologue in q_lat, merge in v, early trigger): %6.2f µs (%+.2f)\n", tChainNow,
                    tChainNow - tChain);
        // Launch floors (once): a plain 2-block launch, and the decode kernel's shape without its work.
        if (firstContext) {
            const double tEmpty = timeGraph(layers, [&](const Layer&, cudaStream_t s) {
                CK(launchPdl(emptyKernel, dim3(2), dim3(1024), 0, s, sink));
            });
            const double tEmpty128 = timeGraph(layers, [&](const Layer&, cudaStream_t s) {
                CK(launchPdl(emptyKernel, dim3(128), dim3(256), 0, s, sink));
            });
            std::printf("  floors: empty launch (2 blocks) %5.2f µs, 128 blocks %5.2f µs\n", tEmpty, tEmpty128);
            for (int cl : {1, 8})
                for (int smem : {0, 170 * 1024}) {
                    cudaLaunchAttribute a{};
                    a.id = cudaLaunchAttributeClusterDimension;
                    a.val.clusterDim.x = cl;
                    a.val.clusterDim.y = a.val.clusterDim.z = 1;
                    const double t = timeGraph(layers, [&](const Layer&, cudaStream_t s) {
                        CK(launchPdlWith(&a, 1u, emptyKernel, dim3(128), dim3(256), smem, s, sink));
                    });
                    std::printf("  floor: empty 128 blocks × 256, cluster %d, %6d B shared: %5.2f µs\n", cl, smem, t);
                }
        }
        firstContext = false;
        // The decode kernel at forced split lengths (host position): tiles per block vs clusters.
        for (int64_t len : {32, 64, 128, 256, 512, 1024, 2048}) {
            if (!mmaSplits) break;
            const int64_t splits = (ctx + len - 1) / len;
            if (splits > 128 || (splits == 1 && len > ctx + 64)) continue;
            const double t = timeGraph(layers, [len](const Layer& L, cudaStream_t s) {
                OK(launchMlaDecode(L.decode(len, MlaDecodeKernel::TensorCore), s));
            });
            OK(launchMlaDecode(L0.decode(len, MlaDecodeKernel::TensorCore), nullptr));
            std::printf("  decode split %5lld: %3lld splits (%2lld clusters, %2lld tiles each) %6.2f µs\n",
                        (long long)len, (long long)splits, (long long)((splits + 7) / 8), (long long)(len / 64), t);
            check("forced split", L0);
        }

        // The sliced kernel: every compiled shape at the engine's split count (capped by the
        // launch at one wave of clusters and 64 splits) and at forced device split counts.
        const double tMma = tM;
        double best = 1e30, tDefault = 0;
        int bestVariant = 0, bestSplits = 0;
        g_chainKernel = MlaDecodeKernel::TensorCoreSliced;
        for (int v = 0; v < kMlaDecodeSlicedVariants; ++v) {
            if (!sweep && v != kDefaultSlicedVariant && v != 2 && v != 5) continue;  // 2, 5: r8 t64/t128 w8 s4
            g_slicedVariant = v;
            for (int splits : {0, 8, 16, 32, 64}) {
                if (!sweep && splits != 0) continue;
                const double t = timeGraph(layers, [splits](const Layer& L, cudaStream_t s) {
                    OK(launchMlaDecode(L.decode(0, g_chainKernel, splits), s));
                });
                OK(launchMlaDecode(L0.decode(0, g_chainKernel, splits), nullptr));
                CK(cudaDeviceSynchronize());
                const auto used = mlaDecodeDeviceSplits(ctx, splits > 0 ? splits : mlaDecodeSplitsForDevice(kH, 132));
                std::printf(
                    "  sliced %-14s device splits %3d (uncapped plan %3d × %4lld): %6.2f µs (mma kernel %6.2f)\n",
                    mlaDecodeSlicedVariantName(v), splits, used.active, (long long)used.split_len, t, tMma);
                check("sliced", L0);
                if (v == kDefaultSlicedVariant && splits == 0) tDefault = t;
                if (t < best) {
                    best = t;
                    bestVariant = v;
                    bestSplits = splits;
                }
            }
        }
        // The whole chain with the best shape, tiles after and before the PDL wait.
        g_slicedVariant = bestVariant;
        for (bool early : {false, true}) {
            g_earlyTiles = early;
            const double t = timeGraph(layers, [bestSplits](const Layer& L, cudaStream_t s) {
                OK(launchAttentionPrologue(L.prologue(), s));
                OK(launchMlaQLatGemv(L.gemv(), s));
                OK(launchMlaDecode(L.decode(0, g_chainKernel, bestSplits), s));
                OK(launchMlaVUpGemv(L.gemv(), s));
            });
            OK(launchAttentionPrologue(L0.prologue(), nullptr));
            OK(launchMlaQLatGemv(L0.gemv(), nullptr));
            OK(launchMlaDecode(L0.decode(0, g_chainKernel, bestSplits), nullptr));
            CK(cudaDeviceSynchronize());
            check(early ? "sliced chain, tiles before the wait" : "sliced chain", L0);
            std::printf("  chain with sliced %s, splits %d%s: %6.2f µs (mma chain %6.2f)\n",
                        mlaDecodeSlicedVariantName(bestVariant), bestSplits, early ? ", tiles before the wait" : "", t,
                        early ? tChainEarly : tChain);
        }
        g_earlyTiles = false;
        g_slicedVariant = -1;
        g_chainKernel = MlaDecodeKernel::Auto;
        char line[256];
        std::snprintf(
            line, sizeof line,
            "summary %5lld: mma %6.2f µs, sliced default %6.2f µs, best sliced %6.2f µs (variant %d %s, splits %d)\n",
            (long long)ctx, tMma, tDefault, best, bestVariant, mlaDecodeSlicedVariantName(bestVariant), bestSplits);
        slicedSummary += line;
    }
    std::printf("%s\n", failures ? "FAILURES" : "all checks passed");
    std::printf("%s\n", slicedSummary.c_str());
    return failures ? 1 : 0;
}
