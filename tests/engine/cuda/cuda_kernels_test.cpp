// GPU kernels of the dense path against the CPU reference (engine/cpu) or plain loops, on fresh
// random inputs of awkward sizes: embedding gather, RMSNorm (+ residual add), YaRN RoPE, SwiGLU,
// dtype conversion and the cuBLAS wrapper; the fused attention prologue (bit-identical to the
// separate norm/RoPE/cache-write kernels) and the absorbed-MLA GEMVs (vs a host loop and cuBLAS).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>
#include <vector>

#include "compare.h"
#include "cpu/cpu_ops.h"
#include "cpu/rope.h"
#include "cuda/attention_prologue_fused.h"
#include "cuda/convert.h"
#include "cuda/cublas_gemm.h"
#include "cuda/embedding.h"
#include "cuda/gemv.h"
#include "cuda/latent_cache_ops.h"
#include "cuda/mla_absorb_gemv.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope.h"
#include "cuda/swiglu.h"
#include "cuda_test_util.h"
#include "gpu_skip.h"
#include "model/model_config.h"

using namespace dsv2;
using namespace dsv2::test;

namespace {

struct GpuGuard {
    GpuGuard() { requireGpuOrSkip("cuda_kernels_test"); }
};
const GpuGuard kGuard;  // every case below needs the GPU: skip the whole suite without one

// DeepSeek-V2's YaRN settings (factor 40, mscale 0.707, 4K original context), for the RoPE cases.
ModelConfig yarnConfig() {
    ModelConfig config;
    config.ropeTheta = 10000.0;
    config.ropeScaling.yarn = true;
    config.ropeScaling.factor = 40.0;
    config.ropeScaling.mscale = 0.707;
    config.ropeScaling.mscaleAllDim = 0.707;
    config.ropeScaling.originalMaxPositionEmbeddings = 4096;
    return config;
}

}  // namespace

TEST_CASE("embedding gather widens the token's row, NaN for an id out of range") {
    auto rng = makeRng("embedding");
    for (const auto& [vocab, hidden, nTok] :
         std::vector<std::tuple<int, int, int>>{{1000, 72, 1}, {1000, 2048, 7}, {513, 33, 65}}) {
        CAPTURE(hidden);
        CAPTURE(nTok);
        const auto table = randomBf16(rng, static_cast<size_t>(vocab) * hidden);
        std::vector<int32_t> tokens(static_cast<size_t>(nTok));
        std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
        for (auto& t : tokens) t = pick(rng);
        tokens.back() = vocab;  // out of range
        const int64_t stride = hidden + 3;
        auto dTable = uploadBf16(table);
        auto dTokens = upload(tokens);
        auto dOut = deviceZeros<float>(static_cast<size_t>(nTok * stride));
        cuda::EmbeddingParams p;
        p.n_tokens = nTok;
        p.n_embd = hidden;
        p.n_vocab = vocab;
        p.tokens = dTokens.data();
        p.table = dTable.data();
        p.out = dOut.data();
        p.out_stride = stride;
        REQUIRE_OK(cuda::launchEmbedding(p, nullptr));
        const auto out = download(dOut);
        for (int t = 0; t + 1 < nTok; ++t)
            for (int i = 0; i < hidden; ++i)
                REQUIRE(out[t * stride + i] == table[static_cast<size_t>(tokens[t]) * hidden + i]);
        for (int i = 0; i < hidden; ++i) CHECK(std::isnan(out[(nTok - 1) * stride + i]));
        CHECK(out[stride - 1] == 0.0f);  // padding untouched
    }
}

TEST_CASE("rmsnorm fused with the residual add matches cpu::rmsNorm") {
    auto rng = makeRng("rmsnorm-residual");
    // Packed rows of a multiple of 4 (up to 8192) take the 16-byte register path, the rest the scalar kernel.
    for (const auto& [rows, cols, packed] : std::vector<std::tuple<int, int, bool>>{{1, 64, false},
                                                                                    {3, 2048, false},
                                                                                    {65, 100, false},
                                                                                    {7, 5120, false},
                                                                                    {2, 31, false},
                                                                                    {1, 2048, true},
                                                                                    {70, 2048, true},
                                                                                    {3, 5120, true},
                                                                                    {2, 8192, true},
                                                                                    {2, 8196, true},
                                                                                    {65, 100, true},
                                                                                    {1, 31, true}}) {
        CAPTURE(rows);
        CAPTURE(cols);
        CAPTURE(packed);
        const int64_t rs = packed ? cols : cols + 5, ds = packed ? cols : cols + 1, os = packed ? cols : cols + 2;
        auto residual = randomFloat(rng, static_cast<size_t>(rows * rs), 3.0f);
        const auto delta = randomFloat(rng, static_cast<size_t>(rows * ds), 1.0f);
        auto weight = randomBf16(rng, static_cast<size_t>(cols), 0.5f);
        for (auto& w : weight) w = roundBf16(w + 1.0f);
        auto dRes = upload(residual);
        auto dDelta = upload(delta);
        auto dW = uploadBf16(weight);
        auto dOut = deviceZeros<bf16>(static_cast<size_t>(rows * os));
        cuda::RmsNormParams p;
        p.n_rows = rows;
        p.n_cols = cols;
        p.residual = dRes.data();
        p.residual_stride = rs;
        p.delta = dDelta.data();
        p.delta_stride = ds;
        p.weight = dW.data();
        p.out = dOut.data();
        p.out_stride = os;
        p.eps = 1e-6f;
        REQUIRE_OK(cuda::launchRmsNorm(p, nullptr));
        const auto gotRes = download(dRes);
        const auto gotOut = downloadBf16(dOut);
        std::vector<float> wantRes(static_cast<size_t>(rows * cols)), wantOut(static_cast<size_t>(rows * cols)),
            gotResC(wantRes.size()), gotOutC(wantOut.size());
        for (int r = 0; r < rows; ++r) {
            for (int i = 0; i < cols; ++i) {
                wantRes[r * cols + i] = residual[r * rs + i] + delta[r * ds + i];
                gotResC[r * cols + i] = gotRes[r * rs + i];
                gotOutC[r * cols + i] = gotOut[r * os + i];
            }
            cpu::rmsNorm(wantRes.data() + r * cols, weight.data(), cols, 1e-6f, wantOut.data() + r * cols);
        }
        CHECK_TENSORS("residual", gotResC, wantRes, (std::vector<int64_t>{rows, cols}),
                      (Tolerance{1e-6, 1e-6, 0.99999}));
        CHECK_TENSORS("normed", gotOutC, wantOut, (std::vector<int64_t>{rows, cols}), (Tolerance{1e-2, 8e-3, 0.9999}));
    }
}

TEST_CASE("rmsnorm in place on a strided bf16 slice (kv_a_layernorm) leaves the rest alone") {
    auto rng = makeRng("rmsnorm-plain");
    for (const auto& [rows, cols, stride] :
         std::vector<std::tuple<int, int, int>>{{1, 512, 576}, {65, 512, 576}, {5, 32, 40}}) {
        CAPTURE(rows);
        const auto x = randomBf16(rng, static_cast<size_t>(rows * stride), 2.0f);
        const auto weight = randomBf16(rng, static_cast<size_t>(cols), 1.0f);
        auto dX = uploadBf16(x);
        auto dW = uploadBf16(weight);
        cuda::RmsNormParams p;
        p.n_rows = rows;
        p.n_cols = cols;
        p.x = dX.data();
        p.x_stride = stride;
        p.weight = dW.data();
        p.out = dX.data();
        p.out_stride = stride;
        p.eps = 1e-6f;
        REQUIRE_OK(cuda::launchRmsNorm(p, nullptr));
        const auto got = downloadBf16(dX);
        std::vector<float> want(static_cast<size_t>(rows * cols)), gotC(want.size());
        for (int r = 0; r < rows; ++r) {
            cpu::rmsNorm(x.data() + r * stride, weight.data(), cols, 1e-6f, want.data() + r * cols);
            for (int i = 0; i < cols; ++i) gotC[r * cols + i] = got[r * stride + i];
            for (int i = cols; i < stride; ++i) REQUIRE(got[r * stride + i] == x[r * stride + i]);
        }
        CHECK_TENSORS("kv_a_layernorm", gotC, want, (std::vector<int64_t>{rows, cols}),
                      (Tolerance{2e-2, 8e-3, 0.9999}));
    }
}

TEST_CASE("YaRN rope matches cpu::applyRope at short and long positions") {
    auto rng = makeRng("rope");
    ModelConfig config = yarnConfig();
    for (const auto& [heads, ropeDim, qDim] :
         std::vector<std::tuple<int, int, int>>{{16, 64, 192}, {1, 64, 576}, {4, 8, 24}, {3, 2, 2}}) {
        CAPTURE(heads);
        CAPTURE(ropeDim);
        config.qkRopeHeadDim = ropeDim;
        const auto invFreq = cpu::ropeInvFreq(config);
        const std::vector<int32_t> positions{0, 1, 2, 63, 64, 4095, 4096, 4097, 32767, 163839, 7};
        const int n = static_cast<int>(positions.size());
        const int64_t headStride = qDim, tokenStride = static_cast<int64_t>(heads) * qDim;
        const int64_t offset = qDim - ropeDim;  // the rope part sits at the end of each head
        const auto x = randomBf16(rng, static_cast<size_t>(n * tokenStride));
        auto dX = uploadBf16(x);
        auto dPos = upload(positions);
        auto dInv = upload(invFreq);
        cuda::RopeParams p;
        p.n_tokens = n;
        p.n_heads = heads;
        p.rope_dim = ropeDim;
        p.x = dX.data() + offset;
        p.token_stride = tokenStride;
        p.head_stride = headStride;
        p.positions = dPos.data();
        p.inv_freq = dInv.data();
        p.amplitude = 1.0f;
        REQUIRE_OK(cuda::launchRope(p, nullptr));
        const auto got = downloadBf16(dX);
        auto want = x;
        for (int t = 0; t < n; ++t)
            for (int h = 0; h < heads; ++h)
                cpu::applyRope(want.data() + t * tokenStride + h * headStride + offset, ropeDim, positions[t],
                               invFreq.data(), 1.0f);
        CHECK_TENSORS("rope", got, want, (std::vector<int64_t>{n, heads, qDim}), (Tolerance{1.5e-2, 8e-3, 0.9999}));
    }
}

TEST_CASE("swiglu: silu(gate) * up per row") {
    auto rng = makeRng("swiglu");
    // Packed rows of a multiple of 8 take the 16-byte path; padded rows and odd widths one element at a time.
    for (const auto& [rows, inter, packed] : std::vector<std::tuple<int, int, bool>>{{1, 1408, false},
                                                                                     {65, 32, false},
                                                                                     {3, 10944, false},
                                                                                     {129, 33, false},
                                                                                     {1, 1408, true},
                                                                                     {65, 32, true},
                                                                                     {2048, 2816, true},
                                                                                     {129, 33, true}}) {
        CAPTURE(rows);
        CAPTURE(inter);
        CAPTURE(packed);
        const int64_t inStride = packed ? 2 * inter : 2 * inter + 4, outStride = packed ? inter : inter + 1;
        const auto gu = randomBf16(rng, static_cast<size_t>(rows * inStride), 2.0f);
        auto dIn = uploadBf16(gu);
        auto dOut = deviceZeros<bf16>(static_cast<size_t>(rows * outStride));
        cuda::SwigluParams p;
        p.n_rows = rows;
        p.n_inter = inter;
        p.gate_up = dIn.data();
        p.in_stride = inStride;
        p.out = dOut.data();
        p.out_stride = outStride;
        REQUIRE_OK(cuda::launchSwiglu(p, nullptr));
        const auto got = downloadBf16(dOut);
        std::vector<float> want(static_cast<size_t>(rows * inter)), gotC(want.size());
        for (int r = 0; r < rows; ++r)
            for (int i = 0; i < inter; ++i) {
                want[r * inter + i] = cpu::silu(gu[r * inStride + i]) * gu[r * inStride + inter + i];
                gotC[r * inter + i] = got[r * outStride + i];
            }
        CHECK_TENSORS("swiglu", gotC, want, (std::vector<int64_t>{rows, inter}), (Tolerance{1e-3, 8e-3, 0.9999}));
    }
}

TEST_CASE("convert f32 and f16 to bf16 on the device") {
    auto rng = makeRng("convert");
    const auto values = randomFloat(rng, 1001, 10.0f);
    auto dSrc = upload(values);
    auto dDst = deviceZeros<bf16>(values.size());
    cuda::ConvertParams p;
    p.n = static_cast<int64_t>(values.size());
    p.src_type = cuda::SourceType::F32;
    p.src = dSrc.data();
    p.dst = dDst.data();
    REQUIRE_OK(cuda::launchConvertToBf16(p, nullptr));
    auto got = downloadBf16(dDst);
    for (size_t i = 0; i < values.size(); ++i) REQUIRE(got[i] == roundBf16(values[i]));  // round to nearest even

    std::vector<uint16_t> halfBits(values.size());
    for (size_t i = 0; i < values.size(); ++i) halfBits[i] = floatToF16(values[i]);
    auto dHalf = upload(halfBits);
    p.src_type = cuda::SourceType::F16;
    p.src = dHalf.data();
    REQUIRE_OK(cuda::launchConvertToBf16(p, nullptr));
    got = downloadBf16(dDst);
    for (size_t i = 0; i < values.size(); ++i) REQUIRE(got[i] == roundBf16(f16ToFloat(halfBits[i])));
}

TEST_CASE("cuBLAS linear: bf16 in, fp32 accumulate, fp32 or bf16 out, awkward sizes") {
    auto rng = makeRng("linear");
    auto handle = cuda::CublasHandle::create();
    REQUIRE_MESSAGE(handle.isOk(), handle.status().toString());
    for (const auto& [m, n, k] : std::vector<std::tuple<int, int, int>>{
             {1, 7, 64}, {3, 129, 200}, {65, 576, 2048}, {64, 1, 8}, {130, 102, 512}}) {
        CAPTURE(m);
        CAPTURE(n);
        CAPTURE(k);
        const int64_t lda = k + 8;  // activations inside a wider buffer
        const auto a = randomBf16(rng, static_cast<size_t>(m * lda));
        const auto w = randomBf16(rng, static_cast<size_t>(n * k), 0.05f);
        auto dA = uploadBf16(a);
        auto dW = uploadBf16(w);
        const auto want = referenceLinear(a, lda, w, m, n, k);
        const std::vector<int64_t> shape{m, n};

        auto dY = deviceZeros<float>(static_cast<size_t>(m * n));
        REQUIRE_OK(cuda::linear(handle->get(), dA.data(), lda, dW.data(), dY.data(), cuda::GemmType::F32, n, m, n, k,
                                nullptr));
        CHECK_TENSORS("linear f32", download(dY), want, shape, (Tolerance{1e-4, 1e-4, 0.99999}));

        // beta = 1 accumulates onto what is there.
        REQUIRE_OK(cuda::linear(handle->get(), dA.data(), lda, dW.data(), dY.data(), cuda::GemmType::F32, n, m, n, k,
                                nullptr, 1.0f));
        auto twice = want;
        for (auto& v : twice) v *= 2.0f;
        CHECK_TENSORS("linear beta=1", download(dY), twice, shape, (Tolerance{2e-4, 1e-4, 0.99999}));

        auto dYb = deviceZeros<bf16>(static_cast<size_t>(m * n));
        REQUIRE_OK(cuda::linear(handle->get(), dA.data(), lda, dW.data(), dYb.data(), cuda::GemmType::BF16, n, m, n, k,
                                nullptr));
        CHECK_TENSORS("linear bf16", downloadBf16(dYb), want, shape, (Tolerance{1e-3, 8e-3, 0.9999}));
    }
}

TEST_CASE("GEMV for decode (linearFew): the linear layer of 1-4 tokens, fp32 or bf16 out, beta; cuBLAS beyond") {
    auto rng = makeRng("gemv");
    auto handle = cuda::CublasHandle::create();
    REQUIRE_MESSAGE(handle.isOk(), handle.status().toString());
    // (tokens, N, K): one row per warp, remainders of the 4-deep unrolled loop, the Lite shapes,
    // several tokens in a wider buffer, and 5 tokens (cuBLAS fallback).
    for (const auto& [m, n, k] : std::vector<std::tuple<int, int, int>>{{1, 7, 64},
                                                                        {1, 576, 2048},
                                                                        {1, 3, 1408},
                                                                        {1, 64, 2048},
                                                                        {2, 129, 200},
                                                                        {3, 1000, 8},
                                                                        {4, 300, 2816},
                                                                        {5, 33, 64}}) {
        CAPTURE(m);
        CAPTURE(n);
        CAPTURE(k);
        const int64_t lda = k + 8;
        const auto a = randomBf16(rng, static_cast<size_t>(m * lda));
        const auto w = randomBf16(rng, static_cast<size_t>(n) * k, 0.05f);
        auto dA = uploadBf16(a);
        auto dW = uploadBf16(w);
        const auto want = referenceLinear(a, lda, w, m, n, k);
        const std::vector<int64_t> shape{m, n};
        CHECK(cuda::gemvSupported(k, m, dW.data(), dA.data(), lda) == (m <= cuda::kGemvMaxTokens));

        auto dY = deviceZeros<float>(static_cast<size_t>(m * n));
        REQUIRE_OK(cuda::linearFew(handle->get(), dA.data(), lda, dW.data(), dY.data(), cuda::GemmType::F32, n, m, n, k,
                                   nullptr));
        CHECK_TENSORS("gemv f32", download(dY), want, shape, (Tolerance{1e-4, 1e-4, 0.99999}));
        REQUIRE_OK(cuda::linearFew(handle->get(), dA.data(), lda, dW.data(), dY.data(), cuda::GemmType::F32, n, m, n, k,
                                   nullptr, 1.0f));
        auto twice = want;
        for (auto& v : twice) v *= 2.0f;
        CHECK_TENSORS("gemv beta=1", download(dY), twice, shape, (Tolerance{2e-4, 1e-4, 0.99999}));
        auto dYb = deviceZeros<bf16>(static_cast<size_t>(m * n));
        REQUIRE_OK(cuda::linearFew(handle->get(), dA.data(), lda, dW.data(), dYb.data(), cuda::GemmType::BF16, n, m, n,
                                   k, nullptr));
        CHECK_TENSORS("gemv bf16", downloadBf16(dYb), want, shape, (Tolerance{1e-3, 8e-3, 0.9999}));
    }
    // Two projections of the same input in one launch (q and kv_a), and the cuBLAS fallback.
    for (int m : {1, 3, 6}) {
        CAPTURE(m);
        const int k = 256, n1 = 96, n2 = 40;
        const auto a = randomBf16(rng, static_cast<size_t>(m * k));
        const auto w1 = randomBf16(rng, static_cast<size_t>(n1 * k), 0.05f),
                   w2 = randomBf16(rng, static_cast<size_t>(n2 * k), 0.05f);
        auto dA = uploadBf16(a);
        auto dW1 = uploadBf16(w1);
        auto dW2 = uploadBf16(w2);
        auto dY1 = deviceZeros<bf16>(static_cast<size_t>(m * n1));
        auto dY2 = deviceZeros<bf16>(static_cast<size_t>(m * n2));
        REQUIRE_OK(cuda::linearFewPair(handle->get(), dA.data(), k, m, k, dW1.data(), dY1.data(), n1, dW2.data(),
                                       dY2.data(), n2, nullptr));
        CHECK_TENSORS("pair first", downloadBf16(dY1), referenceLinear(a, k, w1, m, n1, k),
                      (std::vector<int64_t>{m, n1}), (Tolerance{1e-3, 8e-3, 0.9999}));
        CHECK_TENSORS("pair second", downloadBf16(dY2), referenceLinear(a, k, w2, m, n2, k),
                      (std::vector<int64_t>{m, n2}), (Tolerance{1e-3, 8e-3, 0.9999}));
    }

    // A K that is not a multiple of 8 is not the kernel's: linearFew uses cuBLAS, launchGemv refuses.
    const auto a = randomBf16(rng, 12), w = randomBf16(rng, 5 * 12);
    auto dA = uploadBf16(a);
    auto dW = uploadBf16(w);
    auto dY = deviceZeros<float>(5);
    REQUIRE_OK(
        cuda::linearFew(handle->get(), dA.data(), 12, dW.data(), dY.data(), cuda::GemmType::F32, 5, 1, 5, 12, nullptr));
    CHECK_TENSORS("k=12 via cuBLAS", download(dY), referenceLinear(a, 12, w, 1, 5, 12), (std::vector<int64_t>{1, 5}),
                  (Tolerance{1e-4, 1e-4, 0.99999}));
    cuda::GemvParams bad;
    bad.n_rows = 5;
    bad.k = 12;
    bad.w = dW.data();
    bad.x = dA.data();
    bad.out = dY.data();
    CHECK(cuda::launchGemv(bad, nullptr).code() == StatusCode::InvalidArgument);
}

TEST_CASE("cuBLAS strided batch without transposes (the absorbed q_nope·W_UK shape)") {
    auto rng = makeRng("gemm-batched");
    auto handle = cuda::CublasHandle::create();
    REQUIRE_MESSAGE(handle.isOk(), handle.status().toString());
    // Per head h: C_h[T, L] = A_h[T, D] · B_h[D, L], A_h inside rows of width H·(D+extra).
    const int H = 3, T = 5, D = 16, L = 40, extra = 8;
    const int64_t aRow = H * (D + extra);
    const auto a = randomBf16(rng, static_cast<size_t>(T * aRow));
    const int64_t bStride = (D + 24) * L;  // B_h rows are inside a bigger per-head block
    const auto b = randomBf16(rng, static_cast<size_t>(H * bStride));
    auto dA = uploadBf16(a);
    auto dB = uploadBf16(b);
    auto dC = deviceZeros<float>(static_cast<size_t>(T * H * L));
    cuda::GemmParams p;
    p.m = T;
    p.n = L;
    p.k = D;
    p.a = dA.data();
    p.lda = aRow;
    p.stride_a = D + extra;
    p.b = dB.data();
    p.ldb = L;
    p.stride_b = bStride;
    p.c = dC.data();
    p.c_type = cuda::GemmType::F32;
    p.ldc = static_cast<int64_t>(H) * L;
    p.stride_c = L;
    p.batch = H;
    REQUIRE_OK(cuda::gemm(handle->get(), p, nullptr));
    std::vector<float> want(static_cast<size_t>(T * H * L));
    for (int h = 0; h < H; ++h)
        for (int t = 0; t < T; ++t)
            for (int c = 0; c < L; ++c) {
                double s = 0.0;
                for (int d = 0; d < D; ++d)
                    s += static_cast<double>(a[t * aRow + h * (D + extra) + d]) * b[h * bStride + d * L + c];
                want[(t * H + h) * L + c] = static_cast<float>(s);
            }
    CHECK_TENSORS("batched", download(dC), want, (std::vector<int64_t>{T, H, L}), (Tolerance{1e-4, 1e-4, 0.99999}));
}

namespace {

struct PrologueCase {
    int T, H, nope, rope, kvLora, qLora;
    float amplitude;
    bool longPositions;
};

// Bitwise equality of two bf16 buffers downloaded as floats (bf16 -> float is exact); NaNs equal.
int64_t countDifferent(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    int64_t diff = 0;
    for (size_t i = 0; i < a.size(); ++i)
        if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) ++diff;
    return diff;
}

}  // namespace

TEST_CASE("fused attention prologue = rmsnorm + rope (k_pe, q_pe) + cache write, bit for bit") {
    auto rng = makeRng("attention-prologue");
    ModelConfig config = yarnConfig();
    const std::vector<PrologueCase> cases{
        {1, 16, 128, 64, 512, 0, 1.0f, false},     // V2-Lite decode
        {1, 128, 128, 64, 512, 1536, 1.0f, true},  // V2 decode (q_lora, 4 blocks of q_pe pairs)
        {3, 20, 128, 64, 512, 0, 1.0f, true},     {4, 16, 128, 64, 512, 1536, 1.0f, false},
        {70, 16, 128, 64, 512, 0, 1.0f, false},  // 256-thread blocks, as launchRmsNorm for >= 64 rows
        {2, 3, 8, 8, 32, 24, 1.3f, false},       // tiny dims, YaRN amplitude
        {65, 5, 6, 2, 10, 40, 0.9f, true},
    };
    for (const auto& c : cases) {
        CAPTURE(c.T);
        CAPTURE(c.H);
        CAPTURE(c.qLora);
        config.qkRopeHeadDim = c.rope;
        const auto invFreq = cpu::ropeInvFreq(config);
        const int T = c.T, H = c.H, dqk = c.nope + c.rope, entry = c.kvLora + c.rope, bs = 64;
        // Distinct positions, each token's logical block on its own physical block (scrambled).
        const int32_t maxPos = c.longPositions ? 163839 : 4095;
        std::vector<int32_t> positions;
        std::uniform_int_distribution<int32_t> pick(0, maxPos);
        positions.push_back(c.longPositions ? maxPos : 0);
        while (static_cast<int>(positions.size()) < T) {
            const int32_t pos = pick(rng);
            if (std::find(positions.begin(), positions.end(), pos) == positions.end()) positions.push_back(pos);
        }
        const int nLogical = maxPos / bs + 1;
        const int nPhysical = T + 3;
        std::vector<int32_t> physical(static_cast<size_t>(nPhysical));
        std::iota(physical.begin(), physical.end(), 0);
        std::shuffle(physical.begin(), physical.end(), rng);
        std::vector<int32_t> table(static_cast<size_t>(nLogical), -1);
        int next = 0;
        for (const int32_t pos : positions)
            if (table[static_cast<size_t>(pos / bs)] < 0)
                table[static_cast<size_t>(pos / bs)] = physical[static_cast<size_t>(next++)];
        for (auto& e : table)
            if (e < 0) e = physical.back();  // never written

        const auto kvA = randomBf16(rng, static_cast<size_t>(T) * entry, 2.0f);
        const auto q = randomBf16(rng, static_cast<size_t>(T) * H * dqk);
        const auto qA = randomBf16(rng, static_cast<size_t>(T) * std::max(c.qLora, 1), 1.5f);
        const auto kvW = randomBf16(rng, static_cast<size_t>(c.kvLora), 0.5f);
        const auto qaW = randomBf16(rng, static_cast<size_t>(std::max(c.qLora, 1)), 0.5f);
        const auto cache0 = randomBf16(rng, static_cast<size_t>(nPhysical) * bs * entry);
        auto dPos = upload(positions);
        auto dTable = upload(table);
        auto dInv = upload(invFreq);
        auto dKvW = uploadBf16(kvW);
        auto dQaW = uploadBf16(qaW);

        // The separate kernels, as attention() launched them before the fusion.
        auto rKv = uploadBf16(kvA);
        auto rQ = uploadBf16(q);
        auto rQa = uploadBf16(qA);
        auto rCache = uploadBf16(cache0);
        {
            if (c.qLora) {
                cuda::RmsNormParams n;
                n.n_rows = T;
                n.n_cols = c.qLora;
                n.x = rQa.data();
                n.x_stride = c.qLora;
                n.weight = dQaW.data();
                n.out = rQa.data();
                n.out_stride = c.qLora;
                n.eps = 1e-6f;
                REQUIRE_OK(cuda::launchRmsNorm(n, nullptr));
            }
            cuda::RmsNormParams n;
            n.n_rows = T;
            n.n_cols = c.kvLora;
            n.x = rKv.data();
            n.x_stride = entry;
            n.weight = dKvW.data();
            n.out = rKv.data();
            n.out_stride = entry;
            n.eps = 1e-6f;
            REQUIRE_OK(cuda::launchRmsNorm(n, nullptr));
            cuda::RopeParams rk;
            rk.n_tokens = T;
            rk.n_heads = 1;
            rk.rope_dim = c.rope;
            rk.x = rKv.data() + c.kvLora;
            rk.token_stride = entry;
            rk.head_stride = entry;
            rk.positions = dPos.data();
            rk.inv_freq = dInv.data();
            rk.amplitude = c.amplitude;
            REQUIRE_OK(cuda::launchRope(rk, nullptr));
            cuda::RopeParams rq = rk;
            rq.n_heads = H;
            rq.x = rQ.data() + c.nope;
            rq.token_stride = static_cast<int64_t>(H) * dqk;
            rq.head_stride = dqk;
            REQUIRE_OK(cuda::launchRope(rq, nullptr));
            cuda::LatentCacheWriteParams w;
            w.cache = {rCache.data(), dTable.data(), bs, entry};
            w.n_tokens = T;
            w.positions = dPos.data();
            w.src = rKv.data();
            w.src_stride = entry;
            REQUIRE_OK(cuda::launchLatentCacheWrite(w, nullptr));
        }

        // The fused launches, as attention() makes them now.
        auto fKv = uploadBf16(kvA);
        auto fQ = uploadBf16(q);
        auto fQa = uploadBf16(qA);
        auto fCache = uploadBf16(cache0);
        cuda::AttentionPrologueParams pro;
        pro.n_tokens = T;
        pro.positions = dPos.data();
        pro.eps = 1e-6f;
        pro.kv_a = fKv.data();
        pro.kv_stride = entry;
        pro.kv_lora = c.kvLora;
        pro.kv_weight = dKvW.data();
        pro.cache = {fCache.data(), dTable.data(), bs, entry};
        pro.n_heads = H;
        pro.q_token_stride = static_cast<int64_t>(H) * dqk;
        pro.q_head_stride = dqk;
        pro.rope_dim = c.rope;
        pro.inv_freq = dInv.data();
        pro.amplitude = c.amplitude;
        if (c.qLora) {
            cuda::AttentionPrologueParams norms = pro;
            norms.q_a = fQa.data();
            norms.qa_cols = c.qLora;
            norms.qa_stride = c.qLora;
            norms.qa_weight = dQaW.data();
            REQUIRE_OK(cuda::launchAttentionPrologue(norms, nullptr));
            pro.kv_a = nullptr;
        }
        pro.q_pe = fQ.data() + c.nope;
        REQUIRE_OK(cuda::launchAttentionPrologue(pro, nullptr));
        requireDeviceOk();

        CHECK(countDifferent(downloadBf16(fKv), downloadBf16(rKv)) == 0);
        CHECK(countDifferent(downloadBf16(fQ), downloadBf16(rQ)) == 0);
        CHECK(countDifferent(downloadBf16(fQa), downloadBf16(rQa)) == 0);
        const auto gotCache = downloadBf16(fCache);
        CHECK(countDifferent(gotCache, downloadBf16(rCache)) == 0);
        // And the entries did change (the fused kernel wrote them): token 0's slot holds kv_a's result.
        const int64_t slot0 =
            static_cast<int64_t>(table[static_cast<size_t>(positions[0] / bs)]) * bs + positions[0] % bs;
        const auto gotKv = downloadBf16(fKv);
        for (int i = 0; i < entry; ++i)
            REQUIRE(gotCache[static_cast<size_t>(slot0 * entry + i)] == gotKv[static_cast<size_t>(i)]);

        // The prologue inside the q_lat GEMV's launch (mla_absorb_gemv.h), as the absorbed form of
        // a few tokens runs it: its 256-thread blocks must still add the norm as the 1024-thread
        // block does, so every value is again the separate kernels' bit for bit, and q_lat is the
        // plain GEMV's.
        if (T > cuda::kMlaAbsorbGemvMaxTokens || c.kvLora % 8 != 0) continue;
        const int dv = c.nope;
        const auto kvb = randomBf16(rng, static_cast<size_t>(H) * (c.nope + dv) * c.kvLora, 0.05f);
        auto dKvb = uploadBf16(kvb);
        auto gKv = uploadBf16(kvA);
        auto gQ = uploadBf16(q);
        auto gQa = uploadBf16(qA);
        auto gCache = uploadBf16(cache0);
        auto plainLat = deviceZeros<float>(static_cast<size_t>(T) * H * c.kvLora);
        auto fusedLat = deviceZeros<float>(static_cast<size_t>(T) * H * c.kvLora);
        cuda::MlaAbsorbGemvParams ab;
        ab.n_q = T;
        ab.n_heads = H;
        ab.d_nope = c.nope;
        ab.d_v = dv;
        ab.kv_lora = c.kvLora;
        ab.kv_b = dKvb.data();
        ab.q = rQ.data();
        ab.q_token_stride = static_cast<int64_t>(H) * dqk;
        ab.q_head_stride = dqk;
        ab.q_lat = plainLat.data();
        ab.lat_token_stride = static_cast<int64_t>(H) * c.kvLora;
        ab.lat_head_stride = c.kvLora;
        REQUIRE_OK(cuda::launchMlaQLatGemv(ab, nullptr));
        cuda::AttentionPrologueParams inGemv = pro;
        inGemv.cache.layer_base = gCache.data();
        if (c.qLora) {
            cuda::AttentionPrologueParams norms = inGemv;
            norms.kv_a = gKv.data();
            norms.q_a = gQa.data();
            norms.qa_cols = c.qLora;
            norms.qa_stride = c.qLora;
            norms.qa_weight = dQaW.data();
            norms.q_pe = nullptr;
            REQUIRE_OK(cuda::launchAttentionPrologue(norms, nullptr));
            // q_a's norm precedes q_b_proj: it cannot ride in the q_lat launch.
            CHECK(cuda::launchMlaQLatGemv(ab, nullptr, &norms).code() == StatusCode::InvalidArgument);
        } else {
            inGemv.kv_a = gKv.data();
        }
        inGemv.q_pe = gQ.data() + c.nope;
        ab.q = gQ.data();
        ab.q_lat = fusedLat.data();
        REQUIRE_OK(cuda::launchMlaQLatGemv(ab, nullptr, &inGemv));
        requireDeviceOk();
        CHECK(countDifferent(downloadBf16(gKv), downloadBf16(rKv)) == 0);
        CHECK(countDifferent(downloadBf16(gQ), downloadBf16(rQ)) == 0);
        CHECK(countDifferent(downloadBf16(gQa), downloadBf16(rQa)) == 0);
        CHECK(countDifferent(downloadBf16(gCache), downloadBf16(rCache)) == 0);
        CHECK(countDifferent(download(fusedLat), download(plainLat)) == 0);
        cuda::AttentionPrologueParams otherTokens = inGemv;
        otherTokens.n_tokens = T + 1;
        CHECK(cuda::launchMlaQLatGemv(ab, nullptr, &otherTokens).code() == StatusCode::InvalidArgument);
    }
}

namespace {

struct AbsorbCase {
    int nq, H, nope, rope, dv, kvLora;
};

}  // namespace

TEST_CASE("absorbed-MLA GEMVs (q_nope·W_UK fp32, o_lat·W_UVᵀ bf16) match a host loop and the cuBLAS batches") {
    auto rng = makeRng("mla-absorb-gemv");
    auto handle = cuda::CublasHandle::create();
    REQUIRE_MESSAGE(handle.isOk(), handle.status().toString());
    const std::vector<AbsorbCase> cases{{1, 16, 128, 64, 128, 512},  {2, 16, 128, 64, 128, 512},
                                        {3, 128, 128, 64, 128, 512}, {4, 16, 128, 64, 128, 512},
                                        {3, 5, 24, 8, 40, 72},       {1, 2, 3, 2, 5, 8}};
    for (const auto& c : cases) {
        CAPTURE(c.nq);
        CAPTURE(c.H);
        CAPTURE(c.kvLora);
        const int nq = c.nq, H = c.H, dqk = c.nope + c.rope, rowsPerHead = c.nope + c.dv, L = c.kvLora;
        const auto q = randomBf16(rng, static_cast<size_t>(nq) * H * dqk);
        const auto kvb = randomBf16(rng, static_cast<size_t>(H) * rowsPerHead * L, 0.05f);
        const auto oLat = randomBf16(rng, static_cast<size_t>(nq) * H * L);
        auto dQ = uploadBf16(q);
        auto dKvb = uploadBf16(kvb);
        auto dOLat = uploadBf16(oLat);
        auto dQLat = deviceZeros<float>(static_cast<size_t>(nq) * H * L);
        auto dV = deviceZeros<bf16>(static_cast<size_t>(nq) * H * c.dv);
        REQUIRE(cuda::mlaAbsorbGemvSupported(nq, L, dKvb.data()));
        cuda::MlaAbsorbGemvParams p;
        p.n_q = nq;
        p.n_heads = H;
        p.d_nope = c.nope;
        p.d_v = c.dv;
        p.kv_lora = L;
        p.kv_b = dKvb.data();
        p.q = dQ.data();
        p.q_token_stride = static_cast<int64_t>(H) * dqk;
        p.q_head_stride = dqk;
        p.q_lat = dQLat.data();
        p.lat_token_stride = static_cast<int64_t>(H) * L;
        p.lat_head_stride = L;
        p.o_lat = dOLat.data();
        p.o_token_stride = static_cast<int64_t>(H) * L;
        p.o_head_stride = L;
        p.out = dV.data();
        p.out_token_stride = static_cast<int64_t>(H) * c.dv;
        p.out_head_stride = c.dv;
        REQUIRE_OK(cuda::launchMlaQLatGemv(p, nullptr));
        REQUIRE_OK(cuda::launchMlaVUpGemv(p, nullptr));

        // The cuBLAS batches mla_attention.cpp uses for more tokens.
        auto bQLat = deviceZeros<float>(static_cast<size_t>(nq) * H * L);
        auto bV = deviceZeros<bf16>(static_cast<size_t>(nq) * H * c.dv);
        const int64_t kvbHead = static_cast<int64_t>(rowsPerHead) * L;
        cuda::GemmParams g;
        g.m = nq;
        g.n = L;
        g.k = c.nope;
        g.a = dQ.data();
        g.lda = static_cast<int64_t>(H) * dqk;
        g.stride_a = dqk;
        g.b = dKvb.data();
        g.ldb = L;
        g.stride_b = kvbHead;
        g.c = bQLat.data();
        g.c_type = cuda::GemmType::F32;
        g.ldc = static_cast<int64_t>(H) * L;
        g.stride_c = L;
        g.batch = H;
        REQUIRE_OK(cuda::gemm(handle->get(), g, nullptr));
        cuda::GemmParams v;
        v.m = nq;
        v.n = c.dv;
        v.k = L;
        v.a = dOLat.data();
        v.lda = static_cast<int64_t>(H) * L;
        v.stride_a = L;
        v.b = dKvb.data() + static_cast<int64_t>(c.nope) * L;
        v.ldb = L;
        v.trans_b = true;
        v.stride_b = kvbHead;
        v.c = bV.data();
        v.c_type = cuda::GemmType::BF16;
        v.ldc = static_cast<int64_t>(H) * c.dv;
        v.stride_c = c.dv;
        v.batch = H;
        REQUIRE_OK(cuda::gemm(handle->get(), v, nullptr));

        std::vector<float> wantLat(static_cast<size_t>(nq) * H * L), wantV(static_cast<size_t>(nq) * H * c.dv);
        for (int t = 0; t < nq; ++t)
            for (int h = 0; h < H; ++h) {
                const size_t w0 = static_cast<size_t>(h) * rowsPerHead * L;
                for (int j = 0; j < L; ++j) {
                    double s = 0.0;
                    for (int d = 0; d < c.nope; ++d)
                        s += static_cast<double>(q[(static_cast<size_t>(t) * H + h) * dqk + d]) *
                             kvb[w0 + static_cast<size_t>(d) * L + j];
                    wantLat[(static_cast<size_t>(t) * H + h) * L + j] = static_cast<float>(s);
                }
                for (int j = 0; j < c.dv; ++j) {
                    double s = 0.0;
                    for (int k = 0; k < L; ++k)
                        s += static_cast<double>(oLat[(static_cast<size_t>(t) * H + h) * L + k]) *
                             kvb[w0 + static_cast<size_t>(c.nope + j) * L + k];
                    wantV[(static_cast<size_t>(t) * H + h) * c.dv + j] = roundBf16(static_cast<float>(s));
                }
            }
        const std::vector<int64_t> latShape{nq, H, L}, vShape{nq, H, c.dv};
        const auto gotLat = download(dQLat);
        const auto gotV = downloadBf16(dV);
        CHECK_TENSORS("q_lat vs host", gotLat, wantLat, latShape, (Tolerance{1e-5, 1e-5, 0.999999}));
        CHECK_TENSORS("q_lat vs cuBLAS", gotLat, download(bQLat), latShape, (Tolerance{1e-5, 1e-5, 0.999999}));
        // bf16 out: one rounding of an fp32 sum, so at most one bf16 step from the rounded exact value.
        CHECK_TENSORS("v vs host", gotV, wantV, vShape, (Tolerance{1e-6, 8e-3, 0.9999}));
        CHECK_TENSORS("v vs cuBLAS", gotV, downloadBf16(bV), vShape, (Tolerance{1e-6, 8e-3, 0.9999}));
    }
}

TEST_CASE("launchers reject bad parameters with a Status instead of launching") {
    cuda::RmsNormParams norm;
    norm.n_rows = 2;
    norm.n_cols = 8;
    CHECK(cuda::launchRmsNorm(norm, nullptr).code() == StatusCode::InvalidArgument);
    cuda::RopeParams rope;
    rope.n_tokens = 1;
    rope.n_heads = 1;
    rope.rope_dim = 7;
    CHECK(cuda::launchRope(rope, nullptr).code() == StatusCode::InvalidArgument);
    cuda::GemmParams g;
    g.m = 2;
    g.n = 2;
    g.k = 2;
    CHECK_FALSE(cuda::gemm(nullptr, g, nullptr).isOk());
    cuda::AttentionPrologueParams pro;
    pro.n_tokens = 1;
    CHECK(cuda::launchAttentionPrologue(pro, nullptr).code() == StatusCode::InvalidArgument);  // no positions
    cuda::MlaAbsorbGemvParams ab;
    ab.n_q = 5;  // beyond the GEMVs: the caller uses cuBLAS
    ab.kv_lora = 512;
    CHECK_FALSE(cuda::mlaAbsorbGemvSupported(ab.n_q, ab.kv_lora, nullptr));
    CHECK(cuda::launchMlaQLatGemv(ab, nullptr).code() == StatusCode::InvalidArgument);
    CHECK(cuda::launchMlaVUpGemv(ab, nullptr).code() == StatusCode::InvalidArgument);
}
