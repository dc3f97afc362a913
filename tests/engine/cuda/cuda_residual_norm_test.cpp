// The residual add + RMSNorm folded into the next decode launch (residual_norm.h): the q/kv_a GEMV
// pair and the fused router computing x from the residual stream, against the exact norm, the
// rmsnorm.cu kernel and the same launches given x; plus the refusals of bad parameters.
// And the small work done by a kernel's last block instead of a launch of its own (grid_tail.h):
// the norm after a GEMV, the attention prologue after the q/kv_a pair. (The MoE down kernel's
// tail: cuda_moe_test; the whole decode step with and without tails: cuda_backend_test.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#include "compare.h"
#include "cuda/attention_prologue_fused.h"
#include "cuda/cublas_gemm.h"
#include "cuda/gemv.h"
#include "cuda/grid_tail.h"
#include "cuda/moe_router_fused.h"
#include "cuda/residual_norm.h"
#include "cuda/rmsnorm.h"
#include "cuda_test_util.h"
#include "gpu_skip.h"

using namespace dsv2;
using namespace dsv2::test;

namespace {

struct GpuGuard {
    GpuGuard() { requireGpuOrSkip("cuda_residual_norm_test"); }
};
const GpuGuard kGuard;  // every case below needs the GPU: skip the whole suite without one

}  // namespace

namespace {

// The residual stream of one token and what a folded norm must produce from it (residual_norm.h):
// sum = residual + delta (fp32), x = bf16(sum · rsqrt(mean(sum²) + eps) · weight).
struct NormCase {
    std::vector<float> residual, delta, weight, sum, x;
    float eps = 1e-6f;
};

NormCase makeNormCase(std::mt19937_64& rng, int k, bool withDelta) {
    NormCase c;
    c.residual = randomFloat(rng, static_cast<size_t>(k), 3.0f);
    c.delta = withDelta ? randomFloat(rng, static_cast<size_t>(k), 0.5f) : std::vector<float>{};
    c.weight = randomBf16(rng, static_cast<size_t>(k), 0.3f);
    for (auto& w : c.weight) w = roundBf16(1.0f + w);
    c.sum.resize(static_cast<size_t>(k));
    double sumSq = 0.0;
    for (int i = 0; i < k; ++i) {
        c.sum[i] = c.residual[i] + (withDelta ? c.delta[i] : 0.0f);
        sumSq += static_cast<double>(c.sum[i]) * c.sum[i];
    }
    const double rstd = 1.0 / std::sqrt(sumSq / k + c.eps);
    c.x.resize(static_cast<size_t>(k));
    for (int i = 0; i < k; ++i) c.x[i] = roundBf16(static_cast<float>(c.sum[i] * rstd * c.weight[i]));
    return c;
}

}  // namespace

TEST_CASE("GEMV with the residual add + RMSNorm folded in = the norm, then the GEMV") {
    auto rng = makeRng("gemv-norm");
    auto handle = cuda::CublasHandle::create();
    REQUIRE_MESSAGE(handle.isOk(), handle.status().toString());
    // (k, rows of the first and second projection, with a delta): Lite's q + kv_a, V2's q_a + kv_a
    // (k 5120), a k that is no multiple of the block, a tiny one.
    for (const auto& [k, n1, n2, withDelta] : std::vector<std::tuple<int, int, int, bool>>{{2048, 3072, 576, true},
                                                                                           {2048, 3072, 576, false},
                                                                                           {5120, 1536, 576, true},
                                                                                           {1000, 37, 5, true},
                                                                                           {8, 3, 1, true}}) {
        CAPTURE(k);
        CAPTURE(n1);
        CAPTURE(withDelta);
        const NormCase c = makeNormCase(rng, k, withDelta);
        const auto w1 = randomBf16(rng, static_cast<size_t>(n1) * k, 0.05f),
                   w2 = randomBf16(rng, static_cast<size_t>(n2) * k, 0.05f);
        auto dRes = upload(c.residual);
        auto dDelta = upload(withDelta ? c.delta : std::vector<float>(1, 0.0f));
        auto dWeight = uploadBf16(c.weight);
        auto dW1 = uploadBf16(w1);
        auto dW2 = uploadBf16(w2);
        auto dOut = deviceZeros<float>(static_cast<size_t>(k));
        auto dY1 = deviceZeros<bf16>(static_cast<size_t>(n1));
        auto dY2 = deviceZeros<bf16>(static_cast<size_t>(n2));
        cuda::ResidualNorm norm;
        norm.residual = dRes.data();
        norm.delta = withDelta ? dDelta.data() : nullptr;
        norm.residual_out = dOut.data();
        norm.weight = dWeight.data();
        norm.eps = c.eps;
        REQUIRE(cuda::gemvPairNormSupported(k, dW1.data(), dW2.data()));
        REQUIRE_OK(cuda::linearFewPair(handle->get(), nullptr, k, 1, k, dW1.data(), dY1.data(), n1, dW2.data(),
                                       dY2.data(), n2, nullptr, &norm));
        CHECK(download(dOut) == c.sum);       // residual + delta, exactly
        CHECK(download(dRes) == c.residual);  // the input residual is not written
        CHECK_TENSORS("norm-pair first", downloadBf16(dY1), referenceLinear(c.x, k, w1, 1, n1, k),
                      (std::vector<int64_t>{1, n1}), (Tolerance{2e-3, 1e-2, 0.999}));
        CHECK_TENSORS("norm-pair second", downloadBf16(dY2), referenceLinear(c.x, k, w2, 1, n2, k),
                      (std::vector<int64_t>{1, n2}), (Tolerance{2e-3, 1e-2, 0.999}));

        // fp32 out with x_out: the normalised vector itself, against the exact one and rmsnorm.cu's.
        auto dX = deviceZeros<bf16>(static_cast<size_t>(k));
        auto dY = deviceZeros<float>(static_cast<size_t>(n1));
        cuda::GemvParams p;
        p.n_rows = n1;
        p.k = k;
        p.w = dW1.data();
        p.out = dY.data();
        p.ldo = n1;
        p.out_type = cuda::GemmType::F32;
        p.norm = norm;
        p.norm.x_out = dX.data();
        REQUIRE_OK(cuda::launchGemv(p, nullptr));
        const auto gotX = downloadBf16(dX);
        checkNormedX(gotX, c.x);
        CHECK_TENSORS("norm-gemv f32", download(dY), referenceLinear(gotX, k, w1, 1, n1, k),
                      (std::vector<int64_t>{1, n1}), (Tolerance{1e-4, 1e-4, 0.99999}));
        auto dResCopy = upload(c.residual);
        auto dXRef = deviceZeros<bf16>(static_cast<size_t>(k));
        cuda::RmsNormParams rn;
        rn.n_rows = 1;
        rn.n_cols = k;
        rn.residual = dResCopy.data();
        rn.residual_stride = k;
        rn.delta = norm.delta;
        rn.delta_stride = k;
        rn.weight = dWeight.data();
        rn.out = dXRef.data();
        rn.out_stride = k;
        rn.eps = c.eps;
        REQUIRE_OK(cuda::launchRmsNorm(rn, nullptr));
        checkNormedX(gotX, downloadBf16(dXRef));
        CHECK(download(dResCopy) == download(dOut));  // the unfused residual add, bit for bit
    }

    // Refused: a residual_out aliasing the residual (other blocks still read it), several tokens.
    auto dRes = deviceZeros<float>(64);
    auto dW = deviceZeros<bf16>(64 * 4);
    auto dY = deviceZeros<float>(4);
    cuda::GemvParams bad;
    bad.n_rows = 4;
    bad.k = 64;
    bad.w = dW.data();
    bad.out = dY.data();
    bad.ldo = 4;
    bad.norm.residual = dRes.data();
    bad.norm.residual_out = dRes.data();
    bad.norm.weight = dW.data();
    CHECK(cuda::launchGemv(bad, nullptr).code() == StatusCode::InvalidArgument);
    auto dOut = deviceZeros<float>(64);
    bad.norm.residual_out = dOut.data();
    bad.n_tokens = 2;
    bad.ldo = 4;
    CHECK(cuda::launchGemv(bad, nullptr).code() == StatusCode::InvalidArgument);
}

TEST_CASE("fused router with the post-attention norm folded in: x, residual and routing of the unfused path") {
    auto rng = makeRng("router-norm");
    for (const auto& [nExperts, k] : std::vector<std::pair<int, int>>{{64, 2048}, {160, 5120}, {8, 64}}) {
        CAPTURE(nExperts);
        CAPTURE(k);
        const NormCase c = makeNormCase(rng, k, true);
        const auto gate = randomBf16(rng, static_cast<size_t>(nExperts) * k, 0.05f);
        auto dRes = upload(c.residual);
        auto dDelta = upload(c.delta);
        auto dWeight = uploadBf16(c.weight);
        auto dGate = uploadBf16(gate);
        auto dOut = deviceZeros<float>(static_cast<size_t>(k));
        auto dX = deviceZeros<bf16>(static_cast<size_t>(k));
        auto dLogits = deviceZeros<float>(static_cast<size_t>(nExperts));
        auto dIds = deviceZeros<int32_t>(6);
        auto dW = deviceZeros<float>(6);
        cuda::MoeRouterGemvParams fp;
        fp.route.n_tokens = 1;
        fp.route.n_experts = nExperts;
        fp.route.top_k = std::min(6, nExperts);
        fp.route.n_group = 1;
        fp.route.topk_group = 1;
        fp.route.routed_scaling_factor = 1.0f;
        fp.route.topk_ids = dIds.data();
        fp.route.topk_weights = dW.data();
        fp.hidden = k;
        fp.gate = dGate.data();
        fp.logits_out = dLogits.data();
        fp.norm.residual = dRes.data();
        fp.norm.delta = dDelta.data();
        fp.norm.residual_out = dOut.data();
        fp.norm.weight = dWeight.data();
        fp.norm.eps = c.eps;
        fp.norm.x_out = dX.data();
        if (!cuda::moeRouterGemvSupported(fp)) {
            MESSAGE("this GPU cannot run the fused router (no sm_90 cluster launch)");
            return;
        }
        REQUIRE_OK(cuda::launchMoeRouterGemv(fp, nullptr));
        CHECK(download(dOut) == c.sum);
        const auto gotX = downloadBf16(dX);
        checkNormedX(gotX, c.x);
        CHECK_TENSORS("router-norm logits", download(dLogits), referenceLinear(gotX, k, gate, 1, nExperts, k),
                      (std::vector<int64_t>{1, nExperts}), (Tolerance{1e-4, 1e-4, 0.99999}));
        // The same router on x given (the unfused path's input): the same logits, bit for bit.
        auto dLogits2 = deviceZeros<float>(static_cast<size_t>(nExperts));
        auto dIds2 = deviceZeros<int32_t>(6);
        auto dW2 = deviceZeros<float>(6);
        cuda::MoeRouterGemvParams plain = fp;
        plain.norm = cuda::ResidualNorm{};
        plain.x = dX.data();
        plain.logits_out = dLogits2.data();
        plain.route.topk_ids = dIds2.data();
        plain.route.topk_weights = dW2.data();
        REQUIRE_OK(cuda::launchMoeRouterGemv(plain, nullptr));
        CHECK(download(dLogits2) == download(dLogits));
        CHECK(download(dIds2) == download(dIds));
        CHECK(download(dW2) == download(dW));
    }
}

// Grid tails (grid_tail.h): the residual add + norm after a kernel, done by its last block.
TEST_CASE("GEMV with a grid-tail norm: the same output, then residual += out and x = the exact norm") {
    auto rng = makeRng("gemv-tail-norm");
    // (rows = hidden, k): o_proj of Lite and of V2, rows that leave the last block's warps partly
    // idle, a single block.
    for (const auto& [n, k] : std::vector<std::pair<int, int>>{{2048, 2048}, {5120, 16384}, {1003, 264}, {5, 8}}) {
        CAPTURE(n);
        CAPTURE(k);
        const auto w = randomBf16(rng, static_cast<size_t>(n) * k, 0.05f);
        const auto x = randomBf16(rng, static_cast<size_t>(k));
        const auto residual = randomFloat(rng, static_cast<size_t>(n), 3.0f);
        auto weight = randomBf16(rng, static_cast<size_t>(n), 0.3f);
        for (auto& v : weight) v = roundBf16(1.0f + v);
        auto dW = uploadBf16(w);
        auto dX = uploadBf16(x);
        auto dWeight = uploadBf16(weight);
        auto dCounter = deviceZeros<unsigned>(1);

        cuda::GemvParams p;
        p.n_rows = n;
        p.k = k;
        p.w = dW.data();
        p.x = dX.data();
        p.ldx = k;
        p.ldo = n;
        p.out_type = cuda::GemmType::F32;
        auto dPlain = deviceZeros<float>(static_cast<size_t>(n));
        p.out = dPlain.data();
        REQUIRE_OK(cuda::launchGemv(p, nullptr));
        const auto plain = download(dPlain);

        // Twice in a row on one counter: the last block must leave it at zero for the next launch.
        for (int launch = 0; launch < 2; ++launch) {
            CAPTURE(launch);
            auto dOut = deviceZeros<float>(static_cast<size_t>(n));
            auto dRes = upload(residual);
            auto dXOut = deviceZeros<bf16>(static_cast<size_t>(n));
            cuda::GemvParams t = p;
            t.out = dOut.data();
            t.tail.counter = dCounter.data();
            t.tail.residual = dRes.data();
            t.tail.delta = dOut.data();
            t.tail.norm_weight = dWeight.data();
            t.tail.x_out = dXOut.data();
            t.tail.n = n;
            t.tail.eps = 1e-6f;
            REQUIRE_OK(cuda::launchGemv(t, nullptr));
            requireDeviceOk();
            const auto out = download(dOut);
            CHECK(out == plain);  // the tail changes nothing the blocks compute
            std::vector<float> sum(static_cast<size_t>(n));
            for (size_t i = 0; i < sum.size(); ++i) sum[i] = residual[i] + out[i];
            CHECK(download(dRes) == sum);  // the residual add, exactly
            checkNormedX(downloadBf16(dXOut), referenceRmsNormBf16(sum, weight, 1e-6f));
            CHECK(download(dCounter) == std::vector<unsigned>{0u});
        }
    }

    // Refused: a tail norm over bf16 output, over another buffer than out, of another length; no counter.
    auto dW = deviceZeros<bf16>(64 * 8);
    auto dX = deviceZeros<bf16>(64);
    auto dOut = deviceZeros<float>(8);
    auto dCounter = deviceZeros<unsigned>(1);
    auto dRes = deviceZeros<float>(8);
    auto dXOut = deviceZeros<bf16>(8);
    cuda::GemvParams ok;
    ok.n_rows = 8;
    ok.k = 64;
    ok.w = dW.data();
    ok.x = dX.data();
    ok.ldx = 64;
    ok.out = dOut.data();
    ok.ldo = 8;
    ok.tail.counter = dCounter.data();
    ok.tail.residual = dRes.data();
    ok.tail.delta = dOut.data();
    ok.tail.norm_weight = dW.data();
    ok.tail.x_out = dXOut.data();
    ok.tail.n = 8;
    REQUIRE_OK(cuda::launchGemv(ok, nullptr));
    auto bad = ok;
    bad.out_type = cuda::GemmType::BF16;
    CHECK(cuda::launchGemv(bad, nullptr).code() == StatusCode::InvalidArgument);
    bad = ok;
    bad.tail.delta = dOut.data() + 4;
    CHECK(cuda::launchGemv(bad, nullptr).code() == StatusCode::InvalidArgument);
    bad = ok;
    bad.tail.n = 7;
    CHECK(cuda::launchGemv(bad, nullptr).code() == StatusCode::InvalidArgument);
    bad = ok;
    bad.tail.counter = nullptr;
    CHECK(cuda::launchGemv(bad, nullptr).code() == StatusCode::InvalidArgument);
    bad = ok;
    bad.n_tokens = 2;
    CHECK(cuda::launchGemv(bad, nullptr).code() == StatusCode::InvalidArgument);
    requireDeviceOk();
}

TEST_CASE("q/kv_a GEMV pair with the attention prologue as its grid tail = the pair, then the prologue launch") {
    auto rng = makeRng("gemv-tail-prologue");
    struct Shape {
        int hidden, heads, nope, rope, kvLora, position;
    };
    // Lite; V2's head count; an odd small shape whose q_pe pairs do not fill a block.
    for (const auto& s :
         std::vector<Shape>{{2048, 16, 128, 64, 512, 1000}, {2048, 128, 128, 64, 512, 70}, {264, 3, 8, 4, 24, 5}}) {
        CAPTURE(s.hidden);
        CAPTURE(s.heads);
        const int dqk = s.nope + s.rope, entry = s.kvLora + s.rope, qRows = s.heads * dqk;
        constexpr int kBlock = 64;
        const std::vector<int32_t> table{3, 0, 5, 1, 4, 2, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14};
        REQUIRE(s.position / kBlock < static_cast<int>(table.size()));
        const auto wq = randomBf16(rng, static_cast<size_t>(qRows) * s.hidden, 0.05f);
        const auto wkv = randomBf16(rng, static_cast<size_t>(entry) * s.hidden, 0.05f);
        const auto x = randomBf16(rng, static_cast<size_t>(s.hidden));
        auto kvWeight = randomBf16(rng, static_cast<size_t>(s.kvLora), 0.3f);
        for (auto& v : kvWeight) v = roundBf16(1.0f + v);
        const auto cache0 = randomBf16(rng, table.size() * kBlock * entry);
        std::vector<float> invFreq(static_cast<size_t>(s.rope / 2));
        for (size_t i = 0; i < invFreq.size(); ++i)
            invFreq[i] = static_cast<float>(std::pow(10000.0, -2.0 * static_cast<double>(i) / s.rope));
        auto dWq = uploadBf16(wq);
        auto dWkv = uploadBf16(wkv);
        auto dX = uploadBf16(x);
        auto dKvW = uploadBf16(kvWeight);
        auto dTable = upload(table);
        auto dPos = upload(std::vector<int32_t>{s.position});
        auto dInv = upload(invFreq);
        auto dCounter = deviceZeros<unsigned>(1);
        auto handle = cuda::CublasHandle::create();
        REQUIRE_MESSAGE(handle.isOk(), handle.status().toString());

        auto prologueFor = [&](DeviceBuffer<bf16>& kv, DeviceBuffer<bf16>& q, DeviceBuffer<bf16>& cache) {
            cuda::AttentionPrologueParams pro;
            pro.n_tokens = 1;
            pro.positions = dPos.data();
            pro.eps = 1e-6f;
            pro.kv_a = kv.data();
            pro.kv_stride = entry;
            pro.kv_lora = s.kvLora;
            pro.kv_weight = dKvW.data();
            pro.cache = {cache.data(), dTable.data(), kBlock, entry};
            pro.q_pe = q.data() + s.nope;
            pro.n_heads = s.heads;
            pro.q_token_stride = qRows;
            pro.q_head_stride = dqk;
            pro.rope_dim = s.rope;
            pro.inv_freq = dInv.data();
            pro.amplitude = 1.0f;
            return pro;
        };
        // The reference: the pair GEMV, then the prologue's own launch.
        auto rQ = deviceZeros<bf16>(static_cast<size_t>(qRows));
        auto rKv = deviceZeros<bf16>(static_cast<size_t>(entry));
        auto rCache = uploadBf16(cache0);
        REQUIRE_OK(cuda::linearFewPair(handle->get(), dX.data(), s.hidden, 1, s.hidden, dWq.data(), rQ.data(), qRows,
                                       dWkv.data(), rKv.data(), entry, nullptr));
        REQUIRE_OK(cuda::launchAttentionPrologue(prologueFor(rKv, rQ, rCache), nullptr));
        // The pair with the prologue as its tail.
        auto fQ = deviceZeros<bf16>(static_cast<size_t>(qRows));
        auto fKv = deviceZeros<bf16>(static_cast<size_t>(entry));
        auto fCache = uploadBf16(cache0);
        cuda::GridTail tail;
        tail.counter = dCounter.data();
        tail.prologue = prologueFor(fKv, fQ, fCache);
        REQUIRE(cuda::gemvPairSupported(s.hidden, 1, dWq.data(), dX.data(), s.hidden, dWkv.data()));
        REQUIRE_OK(cuda::linearFewPair(handle->get(), dX.data(), s.hidden, 1, s.hidden, dWq.data(), fQ.data(), qRows,
                                       dWkv.data(), fKv.data(), entry, nullptr, nullptr, &tail));
        requireDeviceOk();

        CHECK(downloadBf16(fQ) == downloadBf16(rQ));  // q_nope as computed, q_pe rotated by the same code
        const auto gotKv = downloadBf16(fKv), wantKv = downloadBf16(rKv);
        // c_kv: the norm's fp32 sum runs over 256 threads here, 1024 in the prologue's launch.
        checkNormedX(std::vector<float>(gotKv.begin(), gotKv.begin() + s.kvLora),
                     std::vector<float>(wantKv.begin(), wantKv.begin() + s.kvLora));
        CHECK(std::equal(gotKv.begin() + s.kvLora, gotKv.end(), wantKv.begin() + s.kvLora));  // k_pe
        // The cache: this position's slot holds the entry, every other slot is untouched.
        const auto gotCache = downloadBf16(fCache);
        const int64_t slot =
            static_cast<int64_t>(table[static_cast<size_t>(s.position / kBlock)]) * kBlock + s.position % kBlock;
        for (size_t i = 0; i < gotCache.size(); ++i) {
            const auto e = static_cast<int64_t>(i) / entry;
            const float want = e == slot ? gotKv[i % static_cast<size_t>(entry)] : cache0[i];
            if (gotCache[i] != want) FAIL_CHECK("cache element " << i << " (slot " << e << ") " << gotCache[i]);
        }
        CHECK(download(dCounter) == std::vector<unsigned>{0u});
    }
}
