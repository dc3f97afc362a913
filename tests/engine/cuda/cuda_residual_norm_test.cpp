// The residual add + RMSNorm folded into the next decode launch (residual_norm.h): the q/kv_a GEMV
// pair and the fused router computing x from the residual stream, against the exact norm, the
// rmsnorm.cu kernel and the same launches given x; plus the refusals of bad parameters.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#include "compare.h"
#include "cuda/cublas_gemm.h"
#include "cuda/gemv.h"
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

// x from a folded norm against the exact one: equal but for rare last-bit flips of bf16 rounding
// (the fp32 sum of squares is added in another order than the reference's double).
void checkNormedX(const std::vector<float>& got, const std::vector<float>& want) {
    REQUIRE(got.size() == want.size());
    size_t differ = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] == want[i]) continue;
        ++differ;
        CHECK(std::fabs(got[i] - want[i]) <= std::fabs(want[i]) * (1.0f / 128.0f) + 1e-30f);  // one bf16 step
    }
    CHECK(differ <= got.size() / 100 + 1);
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
