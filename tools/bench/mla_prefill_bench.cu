// Standalone bench + check of MLA prefill attention (one layer) on DeepSeek-V2-Lite shapes (16
// heads, qk 128 + 64, v 128): the GEMM form of mlaAttentionExpanded (two batched cuBLAS score
// GEMMs, the causal softmax kernel, the P·V GEMM, per query slice within the 288 MiB score
// scratch) against the flash kernels of mla_prefill.h (tensor cores, CUDA cores). The keys are
// already expanded (kv [ctx, H, 256], k_pe inside a [ctx, 576] latent row), as after the kv_b
// GEMM that both forms share. Not part of the CMake build; on a GPU machine, from the repo root:
//   nvcc -std=c++20 -O3 -arch=sm_90 -I engine -I engine/include tools/bench/mla_prefill_bench.cu \
//        engine/cuda/mla_prefill.cu engine/cuda/mla_prefill_mma.cu engine/cuda/cublas_gemm.cpp \
//        engine/core/status.cpp -lcublas -o /tmp/mla_prefill_bench && /tmp/mla_prefill_bench
// Shapes: 1K and 2K prompts in one chunk; a 16K prompt as 4 chunks of 4096 (the backend's chunk),
// each against all keys before it (per-chunk times and their sum). Times are per layer, CUDA
// events around 20 back-to-back runs after 3 warm-ups, GPU's own clocks; L2 is warm as in the
// model (the kv_b GEMM has just written the keys). Each shape also checks the tensor-core output
// against the GEMM form (max abs difference; outputs are ~±1, bf16).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench_check.h"
#include "bench_util.cuh"
#include "cuda/cublas_gemm.h"
#include "cuda/device_utils.cuh"
#include "cuda/mla_prefill.h"

namespace {
using namespace dsv2;
using namespace dsv2::cuda;

constexpr int kHeads = 16, kNope = 128, kRope = 64, kDv = 128, kLora = 512;
constexpr int kDqk = kNope + kRope, kEntry = kLora + kRope, kKvRow = kHeads * (kNope + kDv);
constexpr float kScale = 0.11472f;                        // 192^-0.5 · m² (V2-Lite)
constexpr int64_t kMaxScoreElements = int64_t{48} << 20;  // as mla_attention.cpp

__global__ void maxDiffKernel(const bf16* a, const bf16* b, int64_t n, float* out) {
    float m = 0.0f;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float d = fabsf(__bfloat162float(a[i]) - __bfloat162float(b[i]));
        m = fmaxf(m, d != d ? INFINITY : d);  // NaN counts as infinitely wrong
    }
    atomicMax(reinterpret_cast<int*>(out), __float_as_int(m));  // non-negative floats order as ints
}

template <typename T>
T* alloc(int64_t n) {
    T* p = nullptr;
    CK(cudaMalloc(&p, std::max<int64_t>(n, 8) * sizeof(T)));
    return p;
}

struct Buffers {
    bf16 *q, *kv, *latent, *out, *outRef, *probs;
    float* scores;
    float* diff;
};

struct Chunk {
    int nq;
    int64_t pos0;
};

// The GEMM form of mlaAttentionExpanded (same calls, same slicing).
void gemmForm(cublasHandle_t blas, const Buffers& b, const Chunk& c, bf16* out, cudaStream_t st) {
    const int64_t ctx = c.pos0 + c.nq;
    const int64_t perRow = int64_t{kHeads} * ctx;
    const int64_t scoreElements = std::min(kMaxScoreElements, int64_t{4096} * kHeads * 16384);
    const int64_t sliceRows = std::min<int64_t>(c.nq, scoreElements / perRow);
    for (int64_t q0 = 0; q0 < c.nq; q0 += sliceRows) {
        const int64_t rows = std::min(sliceRows, c.nq - q0);
        const int64_t keys = c.pos0 + q0 + rows;
        const int64_t qStride = int64_t{kHeads} * kDqk;
        GemmParams s;
        s.m = rows;
        s.n = keys;
        s.k = kNope;
        s.a = b.q + q0 * qStride;
        s.lda = qStride;
        s.stride_a = kDqk;
        s.b = b.kv;
        s.ldb = kKvRow;
        s.trans_b = true;
        s.stride_b = kNope + kDv;
        s.c = b.scores;
        s.c_type = GemmType::F32;
        s.ldc = keys;
        s.stride_c = rows * keys;
        s.batch = kHeads;
        OK(gemm(blas, s, st));
        s.k = kRope;
        s.a = b.q + q0 * qStride + kNope;
        s.b = b.latent + kLora;
        s.ldb = kEntry;
        s.stride_b = 0;
        s.beta = 1.0f;
        OK(gemm(blas, s, st));
        MlaSoftmaxParams sm;
        sm.n_heads = kHeads;
        sm.n_rows = static_cast<int>(rows);
        sm.n_keys = static_cast<int>(keys);
        sm.q_pos0 = c.pos0 + q0;
        sm.scores = b.scores;
        sm.probs = b.probs;
        sm.softmax_scale = kScale;
        OK(launchMlaCausalSoftmax(sm, st));
        GemmParams o;
        o.m = rows;
        o.n = kDv;
        o.k = keys;
        o.a = b.probs;
        o.lda = keys;
        o.stride_a = rows * keys;
        o.b = b.kv + kNope;
        o.ldb = kKvRow;
        o.stride_b = kNope + kDv;
        o.c = out + q0 * kHeads * kDv;
        o.c_type = GemmType::BF16;
        o.ldc = int64_t{kHeads} * kDv;
        o.stride_c = kDv;
        o.batch = kHeads;
        OK(gemm(blas, o, st));
    }
}

void flash(const Buffers& b, const Chunk& c, MlaPrefillKernel kernel, bf16* out, cudaStream_t st, int qTile = 0) {
    MlaPrefillParams p;
    p.n_q = c.nq;
    p.n_kv = static_cast<int>(c.pos0 + c.nq);
    p.q_pos0 = c.pos0;
    p.n_heads = kHeads;
    p.d_nope = kNope;
    p.d_rope = kRope;
    p.d_v = kDv;
    p.q = b.q;
    p.q_token_stride = int64_t{kHeads} * kDqk;
    p.q_head_stride = kDqk;
    p.kv = b.kv;
    p.kv_token_stride = kKvRow;
    p.kv_head_stride = kNope + kDv;
    p.k_pe = b.latent + kLora;
    p.k_pe_token_stride = kEntry;
    p.out = out;
    p.out_token_stride = int64_t{kHeads} * kDv;
    p.out_head_stride = kDv;
    p.softmax_scale = kScale;
    p.kernel = kernel;
    p.mma_q_tile = qTile;
    OK(launchMlaPrefill(p, st));
}

// Milliseconds per run.
double timeIt(const std::function<void(cudaStream_t)>& run, cudaStream_t st, int reps = 20) {
    for (int i = 0; i < 3; ++i) run(st);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CK(cudaEventRecord(e0, st));
    for (int i = 0; i < reps; ++i) run(st);
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return ms / reps;
}

// Causal attention FLOPs of a chunk (scores + P·V, the visible half only).
double flopsOf(const Chunk& c) {
    double pairs = 0;  // (query, key) pairs visible
    pairs = double(c.nq) * double(c.pos0) + double(c.nq) * (c.nq + 1) / 2.0;
    return pairs * kHeads * (kDqk + kDv) * 2.0;
}

}  // namespace

int main(int argc, char** argv) {
    const bool withSimt = !(argc > 1 && std::string(argv[1]) == "nosimt");
    const int64_t maxCtx = 16384, maxQ = 4096;
    Buffers b{};
    b.q = alloc<bf16>(maxQ * kHeads * kDqk);
    b.kv = alloc<bf16>(maxCtx * kKvRow);
    b.latent = alloc<bf16>(maxCtx * kEntry);
    b.out = alloc<bf16>(maxQ * kHeads * kDv);
    b.outRef = alloc<bf16>(maxQ * kHeads * kDv);
    b.scores = alloc<float>(kMaxScoreElements);
    b.probs = alloc<bf16>(kMaxScoreElements);
    b.diff = alloc<float>(1);
    // q, k ~ ±1 (the model's post-norm scale), kv_b outputs ~ ±1.
    fillKernel<<<1024, 256>>>(b.q, maxQ * kHeads * kDqk, 1, 1.7f);
    fillKernel<<<1024, 256>>>(b.kv, maxCtx * kKvRow, 2, 1.7f);
    fillKernel<<<1024, 256>>>(b.latent, maxCtx * kEntry, 3, 1.7f);
    CK(cudaGetLastError());
    auto blas = CublasHandle::create();
    if (!blas.isOk()) {
        std::fprintf(stderr, "cublas: %s\n", blas.status().toString().c_str());
        return 1;
    }
    cudaStream_t st;
    CK(cudaStreamCreate(&st));

    struct Shape {
        const char* name;
        std::vector<Chunk> chunks;
    };
    const std::vector<Shape> shapes{
        {"1K", {{1024, 0}}},
        {"2K", {{2048, 0}}},
        {"16K (4 x 4096)", {{4096, 0}, {4096, 4096}, {4096, 8192}, {4096, 12288}}},
    };
    int failures = 0;
    // Compares b.out with the GEMM form's b.outRef; prints and counts a mismatch.
    auto check = [&](const char* what, const Chunk& c) {
        CK(cudaMemsetAsync(b.diff, 0, sizeof(float), st));
        maxDiffKernel<<<264, 256, 0, st>>>(b.out, b.outRef, int64_t{c.nq} * kHeads * kDv, b.diff);
        float diff = 0;
        CK(cudaMemcpyAsync(&diff, b.diff, sizeof(float), cudaMemcpyDeviceToHost, st));
        CK(cudaStreamSynchronize(st));
        if (!(diff <= 3e-2f)) {
            ++failures;
            std::printf("  MISMATCH %s at %d @ %lld: max |diff| %.4f\n", what, c.nq, static_cast<long long>(c.pos0),
                        diff);
        }
        return diff;
    };
    std::printf("MLA prefill attention, one layer, V2-Lite (16 heads): ms per layer (causal TFLOP/s)\n");
    std::printf("%-15s %-12s %16s %16s %16s %16s %10s  %s\n", "shape", "chunk", "gemm", "mma q64", "mma q128",
                "mma auto", "simt", "max|mma-gemm|");
    for (const auto& sh : shapes) {
        double tot[5] = {0, 0, 0, 0, 0}, fl = 0;
        for (const auto& c : sh.chunks) {
            double t[5] = {0, 0, 0, 0, 0};
            t[0] = timeIt([&](cudaStream_t s) { gemmForm(blas->get(), b, c, b.outRef, s); }, st);
            float diff = 0;
            const int tiles[3] = {64, 128, 0};
            for (int v = 0; v < 3; ++v) {
                t[1 + v] =
                    timeIt([&](cudaStream_t s) { flash(b, c, MlaPrefillKernel::TensorCore, b.out, s, tiles[v]); }, st);
                diff = std::max(diff, check(v == 0 ? "mma q64" : v == 1 ? "mma q128" : "mma auto", c));
            }
            if (withSimt && sh.chunks.size() == 1) {
                t[4] = timeIt([&](cudaStream_t x) { flash(b, c, MlaPrefillKernel::Simt, b.out, x); }, st, 5);
                check("simt", c);
            }
            const double f = flopsOf(c);
            std::printf("%-15s %5d @%-6lld", sh.name, c.nq, static_cast<long long>(c.pos0));
            for (int i = 0; i < 4; ++i) std::printf(" %8.3f (%5.0f)", t[i], f / t[i] / 1e9);
            std::printf(" %10.3f  %.4f\n", t[4], diff);
            for (int i = 0; i < 5; ++i) tot[i] += t[i];
            fl += f;
        }
        if (sh.chunks.size() > 1) {
            std::printf("%-15s %-12s", sh.name, "sum");
            for (int i = 0; i < 4; ++i) std::printf(" %8.3f (%5.0f)", tot[i], fl / tot[i] / 1e9);
            std::printf("\n");
        }
        std::printf("%-15s x27 layers: gemm %.2f ms, mma auto %.2f ms\n", sh.name, 27 * tot[0], 27 * tot[3]);
    }
    CK(cudaDeviceSynchronize());
    std::printf("%s\n", failures ? "FAILURES" : "all checks passed");
    return failures ? 1 : 0;
}
