// MoE on the GPU against the CPU reference: routing (greedy and group-limited, with and without
// norm_topk_prob and scaling, exact ties), the token->expert permutation, gather/combine, and the
// whole composed FFN (router -> permute -> expert GEMMs -> SwiGLU -> combine + shared experts)
// against cpu::routeToken + the MLP evaluated at the GPU's bf16 rounding points (tight), and
// against plain fp32 cpu::gatedMlp (within what those roundings cost). The fused one-token router
// (logits GEMV + selection in one launch) must equal the GEMV + router kernel pair exactly.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <tuple>
#include <vector>

#include "compare.h"
#include "cpu/cpu_ops.h"
#include "cpu/router.h"
#include "cuda/cublas_gemm.h"
#include "cuda/gemv.h"
#include "cuda/moe_decode.h"
#include "cuda/moe_layer.h"
#include "cuda/moe_permute.h"
#include "cuda/moe_router.h"
#include "cuda/moe_router_fused.h"
#include "cuda_test_util.h"
#include "gpu_skip.h"

using namespace dsv2;
using namespace dsv2::test;

namespace {

struct GpuGuard {
    GpuGuard() { requireGpuOrSkip("cuda_moe_test"); }
};
const GpuGuard kGuard;

struct RouteCase {
    int nExperts, topK;
    bool grouped;
    int nGroup, topkGroup;
    bool norm;
    float scale;
    int nTokens;
};

cpu::RouterParams cpuParams(const RouteCase& c) {
    cpu::RouterParams p;
    p.nExperts = c.nExperts;
    p.topK = c.topK;
    p.method = c.grouped ? TopkMethod::GroupLimitedGreedy : TopkMethod::Greedy;
    p.nGroup = c.nGroup;
    p.topkGroup = c.topkGroup;
    p.normTopkProb = c.norm;
    p.routedScalingFactor = c.scale;
    return p;
}

// Runs the GPU router on `logits` [T, E]; returns ids and weights [T, k].
void gpuRoute(const RouteCase& c, const std::vector<float>& logits, std::vector<int32_t>& ids, std::vector<float>& w) {
    auto dLogits = upload(logits);
    auto dIds = deviceZeros<int32_t>(static_cast<size_t>(c.nTokens * c.topK));
    auto dW = deviceZeros<float>(static_cast<size_t>(c.nTokens * c.topK));
    cuda::MoeRouterParams p;
    p.n_tokens = c.nTokens;
    p.n_experts = c.nExperts;
    p.top_k = c.topK;
    p.group_limited = c.grouped;
    p.n_group = c.nGroup;
    p.topk_group = c.topkGroup;
    p.norm_topk_prob = c.norm;
    p.routed_scaling_factor = c.scale;
    p.logits = dLogits.data();
    p.logits_stride = c.nExperts;
    p.topk_ids = dIds.data();
    p.topk_weights = dW.data();
    REQUIRE_OK(cuda::launchMoeRouter(p, nullptr));
    ids = download(dIds);
    w = download(dW);
}

}  // namespace

TEST_CASE("router top-k matches cpu::routeToken in every routing mode") {
    auto rng = makeRng("router");
    const std::vector<RouteCase> cases{
        {64, 6, false, 1, 1, false, 1.0f, 1},   {64, 6, false, 1, 1, false, 1.0f, 257},  // V2-Lite
        {160, 6, true, 8, 3, false, 16.0f, 33},                                          // V2 / V2.5
        {160, 6, true, 8, 3, true, 16.0f, 7},   {8, 2, false, 1, 1, true, 1.0f, 65},     // tiny
        {256, 8, true, 8, 4, true, 2.5f, 19},   {64, 6, true, 1, 1, false, 1.0f, 5},     // grouped, one group
        {33, 32, false, 1, 1, false, 1.0f, 3},  {96, 4, true, 32, 2, false, 1.0f, 9},
        {16, 1, false, 1, 1, true, 2.0f, 9},  // top-1 with norm_topk_prob: no renormalisation
    };
    for (const auto& c : cases) {
        CAPTURE(c.nExperts);
        CAPTURE(c.topK);
        CAPTURE(c.grouped);
        CAPTURE(c.norm);
        CAPTURE(c.nTokens);
        const auto logits = randomFloat(rng, static_cast<size_t>(c.nTokens * c.nExperts), 2.0f);
        std::vector<int32_t> ids;
        std::vector<float> w;
        gpuRoute(c, logits, ids, w);
        const auto params = cpuParams(c);
        std::vector<int32_t> wantIds(static_cast<size_t>(c.topK));
        std::vector<float> wantW(static_cast<size_t>(c.topK)), scratch(static_cast<size_t>(c.nExperts));
        int nearTies = 0;
        for (int t = 0; t < c.nTokens; ++t) {
            cpu::routeToken(logits.data() + t * c.nExperts, params, wantIds.data(), wantW.data(), scratch.data());
            for (int k = 0; k < c.topK; ++k) {
                const int32_t got = ids[t * c.topK + k];
                const float gotW = w[t * c.topK + k];
                if (got != wantIds[k]) {
                    // Allowed only between (near-)equal weights: the two engines round differently.
                    const bool tie = std::fabs(gotW - wantW[k]) <= 1e-5f * std::max(1.0f, std::fabs(wantW[k]));
                    if (tie) ++nearTies;
                    CHECK_MESSAGE(tie, "token " << t << " slot " << k << ": gpu expert " << got << " (" << gotW
                                                << ") vs cpu expert " << wantIds[k] << " (" << wantW[k] << ")");
                    continue;
                }
                CHECK(gotW == doctest::Approx(wantW[k]).epsilon(2e-5));
            }
        }
        CHECK(nearTies <= 1);
    }
}

TEST_CASE("router breaks exact ties to the lower expert id, groups too") {
    // All logits equal: every probability ties; the first k experts win, in id order.
    RouteCase c{64, 6, false, 1, 1, false, 1.0f, 2};
    std::vector<float> logits(static_cast<size_t>(2 * 64), 0.5f);
    std::vector<int32_t> ids;
    std::vector<float> w;
    gpuRoute(c, logits, ids, w);
    for (int t = 0; t < 2; ++t)
        for (int k = 0; k < 6; ++k) {
            CHECK(ids[t * 6 + k] == k);
            CHECK(w[t * 6 + k] == doctest::Approx(1.0f / 64));
        }
    // Grouped: groups 1 and 3 hold the two best experts; within the kept groups, ties to lower ids.
    RouteCase g{32, 4, true, 4, 2, true, 1.0f, 1};
    std::vector<float> gl(32, 0.0f);
    gl[12] = 3.0f;  // group 1
    gl[30] = 3.0f;  // group 3
    gpuRoute(g, gl, ids, w);
    CHECK(ids[0] == 12);
    CHECK(ids[1] == 30);
    CHECK(ids[2] == 8);  // group 1's first zero-logit expert
    CHECK(ids[3] == 9);
    float sum = 0.0f;
    for (int k = 0; k < 4; ++k) sum += w[k];
    CHECK(sum == doctest::Approx(1.0f));  // norm_topk_prob
}

TEST_CASE("fused one-token router (gate GEMV + top-k, one cluster launch) = linearFew + launchMoeRouter, exactly") {
    auto rng = makeRng("router-fused");
    auto handle = cuda::CublasHandle::create();
    REQUIRE_MESSAGE(handle.isOk(), handle.status().toString());
    struct FusedCase {
        RouteCase route;
        int hidden;
        bool tiedRows;  // every gate row equal: all logits tie, ids must go in order
    };
    const std::vector<FusedCase> cases{
        {{64, 6, false, 1, 1, false, 1.0f, 1}, 2048, false},   // V2-Lite
        {{160, 6, true, 8, 3, false, 16.0f, 1}, 5120, false},  // V2 / V2.5 (20 rows per block, 16 warps)
        {{160, 6, true, 8, 3, true, 16.0f, 1}, 5120, false},  {{256, 8, true, 8, 4, true, 2.5f, 1}, 7168, false},
        {{8, 2, false, 1, 1, true, 1.0f, 1}, 64, false},      // tiny: 1 row per block
        {{33, 32, false, 1, 1, false, 1.0f, 1}, 200, false},  // rows not a multiple of 8, hidden % 32 != 0
        {{5, 2, false, 1, 1, false, 1.0f, 1}, 24, false},     // fewer experts than blocks
        {{16, 1, false, 1, 1, true, 2.0f, 1}, 2048, false},   {{64, 6, false, 1, 1, false, 1.0f, 1}, 2048, true},
        {{32, 4, true, 4, 2, true, 1.0f, 1}, 512, true},
    };
    bool ran = false;
    for (const auto& fc : cases) {
        const RouteCase& c = fc.route;
        CAPTURE(c.nExperts);
        CAPTURE(c.topK);
        CAPTURE(c.grouped);
        CAPTURE(fc.hidden);
        CAPTURE(fc.tiedRows);
        const auto x = randomBf16(rng, static_cast<size_t>(fc.hidden));
        auto gate = randomBf16(rng, static_cast<size_t>(c.nExperts) * fc.hidden, 0.05f);
        if (fc.tiedRows)
            for (int e = 1; e < c.nExperts; ++e)
                std::copy(gate.begin(), gate.begin() + fc.hidden, gate.begin() + static_cast<int64_t>(e) * fc.hidden);
        auto dX = uploadBf16(x);
        auto dGate = uploadBf16(gate);
        cuda::MoeRouterParams r;
        r.n_tokens = 1;
        r.n_experts = c.nExperts;
        r.top_k = c.topK;
        r.group_limited = c.grouped;
        r.n_group = c.nGroup;
        r.topk_group = c.topkGroup;
        r.norm_topk_prob = c.norm;
        r.routed_scaling_factor = c.scale;

        // The two-launch path feedForward() takes without the fused kernel.
        auto sLogits = deviceZeros<float>(static_cast<size_t>(c.nExperts));
        auto sIds = deviceZeros<int32_t>(static_cast<size_t>(c.topK));
        auto sW = deviceZeros<float>(static_cast<size_t>(c.topK));
        REQUIRE_OK(cuda::linearFew(handle->get(), dX.data(), fc.hidden, dGate.data(), sLogits.data(),
                                   cuda::GemmType::F32, c.nExperts, 1, c.nExperts, fc.hidden, nullptr));
        cuda::MoeRouterParams sr = r;
        sr.logits = sLogits.data();
        sr.logits_stride = c.nExperts;
        sr.topk_ids = sIds.data();
        sr.topk_weights = sW.data();
        REQUIRE_OK(cuda::launchMoeRouter(sr, nullptr));

        auto fLogits = deviceZeros<float>(static_cast<size_t>(c.nExperts));
        auto fIds = deviceZeros<int32_t>(static_cast<size_t>(c.topK));
        auto fW = deviceZeros<float>(static_cast<size_t>(c.topK));
        cuda::MoeRouterGemvParams fp;
        fp.route = r;
        fp.route.topk_ids = fIds.data();
        fp.route.topk_weights = fW.data();
        fp.hidden = fc.hidden;
        fp.x = dX.data();
        fp.gate = dGate.data();
        fp.logits_out = fLogits.data();
        if (!cuda::moeRouterGemvSupported(fp)) {
            MESSAGE(
                "this GPU cannot run the fused router (no sm_90 cluster launch): the backend uses the two launches");
            CHECK(cuda::launchMoeRouterGemv(fp, nullptr).code() == StatusCode::Unsupported);
            return;
        }
        ran = true;
        REQUIRE_OK(cuda::launchMoeRouterGemv(fp, nullptr));
        requireDeviceOk();
        const auto wantLogits = download(sLogits), gotLogits = download(fLogits);
        for (int e = 0; e < c.nExperts; ++e) REQUIRE(gotLogits[e] == wantLogits[e]);  // bit-identical GEMV
        const auto wantIds = download(sIds), gotIds = download(fIds);
        const auto wantW = download(sW), gotW = download(fW);
        for (int k = 0; k < c.topK; ++k) {
            CHECK(gotIds[k] == wantIds[k]);
            CHECK(gotW[k] == wantW[k]);
        }
        if (fc.tiedRows && !c.grouped)
            for (int k = 0; k < c.topK; ++k) CHECK(gotIds[k] == k);
        // And against the CPU router on the GPU's logits.
        std::vector<int32_t> cpuIds(static_cast<size_t>(c.topK));
        std::vector<float> cpuW(static_cast<size_t>(c.topK)), scratch(static_cast<size_t>(c.nExperts));
        cpu::routeToken(gotLogits.data(), cpuParams(c), cpuIds.data(), cpuW.data(), scratch.data());
        for (int k = 0; k < c.topK; ++k) CHECK(gotW[k] == doctest::Approx(cpuW[k]).epsilon(2e-5));
    }
    CHECK(ran);
    // Rejections: more than one token, a hidden size the 16-byte loads cannot take.
    cuda::MoeRouterGemvParams bad;
    bad.route.n_tokens = 2;
    bad.route.n_experts = 64;
    bad.route.top_k = 6;
    CHECK_FALSE(cuda::moeRouterGemvSupported(bad));
}

TEST_CASE("permutation groups entries by expert in entry order; gather and combine invert it") {
    auto rng = makeRng("permute");
    for (const auto& [T, K, E] :
         std::vector<std::tuple<int, int, int>>{{1, 6, 64}, {257, 6, 64}, {33, 2, 8}, {1000, 6, 160}}) {
        CAPTURE(T);
        CAPTURE(E);
        std::vector<int32_t> ids(static_cast<size_t>(T * K));
        std::vector<int32_t> experts(static_cast<size_t>(E));
        std::iota(experts.begin(), experts.end(), 0);
        for (int t = 0; t < T; ++t) {  // k distinct experts per token, like the router
            std::shuffle(experts.begin(), experts.end(), rng);
            for (int k = 0; k < K; ++k) ids[t * K + k] = experts[k];
        }
        auto dIds = upload(ids);
        auto dCounts = deviceZeros<int32_t>(static_cast<size_t>(E));
        auto dOffsets = deviceZeros<int32_t>(static_cast<size_t>(E + 1));
        auto dPerm = deviceZeros<int32_t>(ids.size());
        auto dEntry = deviceZeros<int32_t>(ids.size());
        cuda::MoePermuteParams p;
        p.n_tokens = T;
        p.top_k = K;
        p.n_experts = E;
        p.topk_ids = dIds.data();
        p.expert_counts = dCounts.data();
        p.expert_offsets = dOffsets.data();
        p.perm_src = dPerm.data();
        p.entry_row = dEntry.data();
        REQUIRE_OK(cuda::launchMoePermute(p, nullptr));
        const auto counts = download(dCounts);
        const auto offsets = download(dOffsets);
        const auto perm = download(dPerm);
        const auto entry = download(dEntry);
        std::vector<int32_t> wantCounts(static_cast<size_t>(E), 0);
        for (int32_t e : ids) ++wantCounts[e];
        CHECK(counts == wantCounts);
        REQUIRE(offsets[0] == 0);
        for (int e = 0; e < E; ++e) REQUIRE(offsets[e + 1] - offsets[e] == wantCounts[e]);
        // Rows of expert e: its entries in increasing entry order; entry_row is the inverse.
        for (int e = 0; e < E; ++e)
            for (int r = offsets[e]; r < offsets[e + 1]; ++r) {
                REQUIRE(ids[perm[r]] == e);
                if (r > offsets[e]) REQUIRE(perm[r] > perm[r - 1]);
            }
        for (size_t i = 0; i < ids.size(); ++i) REQUIRE(perm[entry[i]] == static_cast<int32_t>(i));

        // Gather + combine with known expert outputs: 16-byte vectors (72) and single elements (70).
        for (const int hidden : {72, 70}) {
            CAPTURE(hidden);
            const auto x = randomBf16(rng, static_cast<size_t>(T * hidden));
            auto dX = uploadBf16(x);
            auto dXp = deviceZeros<bf16>(ids.size() * hidden);
            cuda::MoeGatherParams gp;
            gp.n_rows = T * K;
            gp.n_cols = hidden;
            gp.top_k = K;
            gp.perm_src = dPerm.data();
            gp.x = dX.data();
            gp.x_stride = hidden;
            gp.out = dXp.data();
            gp.out_stride = hidden;
            REQUIRE_OK(cuda::launchMoeGather(gp, nullptr));
            const auto xp = downloadBf16(dXp);
            for (int r = 0; r < T * K; ++r)
                for (int c = 0; c < hidden; ++c) REQUIRE(xp[r * hidden + c] == x[(perm[r] / K) * hidden + c]);

            const auto y = randomFloat(rng, ids.size() * hidden);
            const auto weights = randomFloat(rng, ids.size());
            const auto shared = randomFloat(rng, static_cast<size_t>(T * hidden));
            auto dY = upload(y);
            auto dW = upload(weights);
            auto dOut = upload(shared);  // combine in place over the shared experts' output
            cuda::MoeCombineParams cp;
            cp.n_tokens = T;
            cp.top_k = K;
            cp.n_cols = hidden;
            cp.expert_out = dY.data();
            cp.expert_out_stride = hidden;
            cp.entry_row = dEntry.data();
            cp.topk_weights = dW.data();
            cp.shared = dOut.data();
            cp.shared_stride = hidden;
            cp.out = dOut.data();
            cp.out_stride = hidden;
            REQUIRE_OK(cuda::launchMoeCombine(cp, nullptr));
            std::vector<float> want(shared);
            for (int t = 0; t < T; ++t)
                for (int k = 0; k < K; ++k)
                    for (int c = 0; c < hidden; ++c)
                        want[t * hidden + c] +=
                            weights[t * K + k] * y[static_cast<size_t>(entry[t * K + k]) * hidden + c];
            CHECK_TENSORS("combine", download(dOut), want, (std::vector<int64_t>{T, hidden}),
                          (Tolerance{1e-5, 1e-5, 0.99999}));
        }
    }
}

namespace {

// Host copies of one MLP's weights (fp32 values exactly representable in bf16) as TensorViews.
struct HostMlp {
    std::vector<uint16_t> gate, up, down;  // bf16 bits
    MlpWeights views;
    DeviceBuffer<bf16> gateUpDev, downDev;

    void make(std::mt19937_64& rng, int hidden, int inter) {
        auto bits = [&](size_t n, float sd) {
            const auto v = randomBf16(rng, n, sd);
            std::vector<uint16_t> b(n);
            for (size_t i = 0; i < n; ++i) b[i] = floatToBf16(v[i]);
            return b;
        };
        gate = bits(static_cast<size_t>(inter) * hidden, 0.1f);
        up = bits(static_cast<size_t>(inter) * hidden, 0.1f);
        down = bits(static_cast<size_t>(hidden) * inter, 0.1f);
        auto view = [](std::vector<uint16_t>& b, int64_t rows, int64_t cols) {
            TensorView t;
            t.dtype = DType::BF16;
            t.shape = {rows, cols};
            t.data = reinterpret_cast<const std::byte*>(b.data());
            t.nbytes = b.size() * 2;
            return t;
        };
        views.gateProj = view(gate, inter, hidden);
        views.upProj = view(up, inter, hidden);
        views.downProj = view(down, hidden, inter);
        std::vector<uint16_t> gu(gate);
        gu.insert(gu.end(), up.begin(), up.end());
        gateUpDev = uploadBf16Bits(gu);
        downDev = uploadBf16Bits(down);
    }
    cuda::MlpDeviceWeights device(int inter) const { return {gateUpDev.data(), downDev.data(), inter}; }
};

// cpu::gatedMlp with the GPU's bf16 rounding points: the gate|up GEMM output and the SwiGLU
// product are stored in bf16 on the GPU (the down projection accumulates and returns fp32).
void gatedMlpBf16(const MlpWeights& w, const float* x, int64_t nTokens, float* y) {
    const int64_t inter = w.gateProj.dim(0);
    std::vector<float> gate(static_cast<size_t>(nTokens * inter)), up(gate.size());
    cpu::linear(w.gateProj, x, nTokens, gate.data(), nullptr);
    cpu::linear(w.upProj, x, nTokens, up.data(), nullptr);
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = roundBf16(cpu::silu(roundBf16(gate[i])) * roundBf16(up[i]));
    cpu::linear(w.downProj, gate.data(), nTokens, y, nullptr);
}

// An FFN output against a reference: cosine, relRMS = ‖got − want‖/‖want‖, and every element
// within maxErrOverRms · RMS(want). Errors are measured against the tensor's RMS, not per element:
// a bf16 rounding of an intermediate moves an output element by a share of the whole row's scale,
// so a per-element rtol (or a fixed atol) does not describe it.
void checkFfn(const char* name, const std::vector<float>& got, const std::vector<float>& want,
              const std::vector<int64_t>& shape, double maxRelRms, double maxErrOverRms) {
    double d2 = 0.0, w2 = 0.0;
    for (size_t i = 0; i < want.size(); ++i) {
        d2 += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
        w2 += static_cast<double>(want[i]) * want[i];
    }
    const double rms = std::sqrt(w2 / static_cast<double>(want.size()));
    const double relRms = std::sqrt(d2 / w2);
    INFO(name << ": relRMS " << relRms << " (RMS " << rms << ")");
    CHECK_TENSORS(name, got, want, shape, (Tolerance{maxErrOverRms * rms, 0.0, 0.9999}));
    CHECK(relRms <= maxRelRms);
}

// Against the bf16-rounding reference only summation order differs (cuBLAS vs cpu::dot), which
// moves a bf16 rounding of gate/up/act now and then by one ulp: emulated, relRMS <= 3.1e-4 and
// max |err| <= 1.3e-2 · RMS. Against plain fp32 the roundings themselves count: relRMS ~3e-3,
// max |err| up to 3.1e-2 · RMS (emulated over 30 draws of these shapes).
constexpr double kExactRelRms = 1e-3, kExactMaxOverRms = 2.5e-2;
constexpr double kFp32RelRms = 1e-2, kFp32MaxOverRms = 0.1;

}  // namespace

TEST_CASE(
    "composed MoE FFN matches cpu::routeToken + the MLP at the GPU's rounding points (and fp32 within bf16 rounding); "
    "the dense MLP too") {
    auto rng = makeRng("moe-ffn");
    struct FfnCase {
        int hidden, E, K, inter, nShared;
        bool grouped;
        int nGroup, topkGroup;
        float scale;
        int T;
    };
    const std::vector<FfnCase> cases{
        {64, 8, 2, 32, 2, false, 1, 1, 1.0f, 1},
        {64, 8, 2, 32, 2, false, 1, 1, 1.0f, 65},
        {256, 64, 6, 96, 2, false, 1, 1, 1.0f, 37},
        {128, 32, 6, 64, 2, true, 8, 3, 16.0f, 9},
        {96, 16, 4, 48, 0, false, 1, 1, 1.0f, 130},
        // One token: the decode path (launchMoeDecode) is checked too.
        {256, 64, 6, 96, 2, false, 1, 1, 1.0f, 1},
        {128, 32, 6, 64, 2, true, 8, 3, 16.0f, 1},
        {96, 16, 4, 48, 0, false, 1, 1, 1.0f, 1},
    };
    auto blas = cuda::CublasHandle::create();
    REQUIRE_MESSAGE(blas.isOk(), blas.status().toString());
    for (const auto& c : cases) {
        CAPTURE(c.hidden);
        CAPTURE(c.E);
        CAPTURE(c.T);
        std::vector<HostMlp> experts(static_cast<size_t>(c.E));
        for (auto& e : experts) e.make(rng, c.hidden, c.inter);
        HostMlp shared;
        const int sharedInter = c.nShared * c.inter;
        if (c.nShared) shared.make(rng, c.hidden, sharedInter);
        const auto gate = randomBf16(rng, static_cast<size_t>(c.E) * c.hidden, 0.5f);
        auto dGate = uploadBf16(gate);
        const auto x = randomBf16(rng, static_cast<size_t>(c.T) * c.hidden);
        auto dX = uploadBf16(x);

        cuda::MoeGeometry g;
        g.hidden = c.hidden;
        g.n_experts = c.E;
        g.top_k = c.K;
        g.expert_inter = c.inter;
        g.group_limited = c.grouped;
        g.n_group = c.nGroup;
        g.topk_group = c.topkGroup;
        g.routed_scaling_factor = c.scale;
        cuda::MoeDeviceWeights w;
        w.gate = dGate.data();
        for (auto& e : experts) w.experts.push_back(e.device(c.inter));
        if (c.nShared) w.shared = shared.device(sharedInter);
        auto scratch = cuda::FfnScratch::allocate(g, c.T, std::max(sharedInter, c.inter));
        REQUIRE_MESSAGE(scratch.isOk(), scratch.status().toString());
        auto dOut = deviceZeros<float>(static_cast<size_t>(c.T) * c.hidden);
        REQUIRE_OK(cuda::moeForward(blas->get(), g, w, dX.data(), c.T, dOut.data(), *scratch, nullptr));
        const auto got = download(dOut);
        const auto gotIds = download(scratch->topkIds);

        // CPU: route each token, run its experts in fp32, add the shared experts.
        cpu::RouterParams rp;
        rp.nExperts = c.E;
        rp.topK = c.K;
        rp.method = c.grouped ? TopkMethod::GroupLimitedGreedy : TopkMethod::Greedy;
        rp.nGroup = c.nGroup;
        rp.topkGroup = c.topkGroup;
        rp.routedScalingFactor = c.scale;
        std::vector<float> want(static_cast<size_t>(c.T) * c.hidden, 0.0f), wantFp32(want.size()),
            logits(static_cast<size_t>(c.E)), scratchCpu(static_cast<size_t>(c.E)), y(static_cast<size_t>(c.hidden)),
            y32(static_cast<size_t>(c.hidden));
        std::vector<int32_t> ids(static_cast<size_t>(c.K));
        std::vector<float> wk(static_cast<size_t>(c.K));
        int routeMismatches = 0;
        for (int t = 0; t < c.T; ++t) {
            const float* xt = x.data() + static_cast<size_t>(t) * c.hidden;
            for (int e = 0; e < c.E; ++e)
                logits[e] = cpu::dot(xt, gate.data() + static_cast<size_t>(e) * c.hidden, c.hidden);
            cpu::routeToken(logits.data(), rp, ids.data(), wk.data(), scratchCpu.data());
            for (int k = 0; k < c.K; ++k) {
                if (ids[k] != gotIds[static_cast<size_t>(t) * c.K + k]) ++routeMismatches;
                gatedMlpBf16(experts[ids[k]].views, xt, 1, y.data());
                cpu::gatedMlp(experts[ids[k]].views, xt, 1, y32.data(), nullptr);
                for (int i = 0; i < c.hidden; ++i) {
                    want[static_cast<size_t>(t) * c.hidden + i] += wk[k] * y[i];
                    wantFp32[static_cast<size_t>(t) * c.hidden + i] += wk[k] * y32[i];
                }
            }
            if (c.nShared) {
                gatedMlpBf16(shared.views, xt, 1, y.data());
                cpu::gatedMlp(shared.views, xt, 1, y32.data(), nullptr);
                for (int i = 0; i < c.hidden; ++i) {
                    want[static_cast<size_t>(t) * c.hidden + i] += y[i];
                    wantFp32[static_cast<size_t>(t) * c.hidden + i] += y32[i];
                }
            }
        }
        // The router sees the same bf16 inputs on both sides and fp32 logits that differ only in
        // summation order: with N(0,1) logit scales a flip needs a tie to ~1e-6, about a
        // one-in-a-million event per decision.
        CHECK(routeMismatches == 0);
        const std::vector<int64_t> shape{c.T, c.hidden};
        checkFfn("moe ffn vs bf16-rounding reference", got, want, shape, kExactRelRms, kExactMaxOverRms);
        checkFfn("moe ffn vs fp32 reference", got, wantFp32, shape, kFp32RelRms, kFp32MaxOverRms);

        if (c.T == 1) {  // the one-token path: experts picked on the device from the router's top-k
            std::vector<const bf16*> gateUps, downs;
            for (const auto& e : w.experts) {
                gateUps.push_back(e.gate_up);
                downs.push_back(e.down);
            }
            auto dGateUps = upload(gateUps);
            auto dDowns = upload(downs);
            auto dDecode = deviceZeros<float>(static_cast<size_t>(c.hidden));
            cuda::MoeDecodeParams d;
            d.hidden = c.hidden;
            d.top_k = c.K;
            d.inter = c.inter;
            d.shared_inter = c.nShared ? sharedInter : 0;
            d.x = dX.data();
            d.topk_ids = scratch->topkIds.data();
            d.topk_weights = scratch->topkWeights.data();
            d.expert_gate_up = dGateUps.data();
            d.expert_down = dDowns.data();
            d.shared_gate_up = c.nShared ? w.shared.gate_up : nullptr;
            d.shared_down = c.nShared ? w.shared.down : nullptr;
            d.act = scratch->act.data();
            d.out = dDecode.data();
            REQUIRE_OK(cuda::launchMoeDecode(d, nullptr));
            const auto gotDecode = download(dDecode);
            checkFfn("moe decode vs bf16-rounding reference", gotDecode, want, shape, kExactRelRms, kExactMaxOverRms);
            checkFfn("moe decode vs the grouped path", gotDecode, got, shape, kExactRelRms, kExactMaxOverRms);
        }

        // The dense path (mlpForward) on the same input, with beta = 1 accumulation.
        if (c.nShared) {
            auto dDense = deviceZeros<float>(static_cast<size_t>(c.T) * c.hidden);
            REQUIRE_OK(cuda::mlpForward(blas->get(), w.shared, c.hidden, dX.data(), c.hidden, c.T, dDense.data(),
                                        c.hidden, 1.0f, *scratch, nullptr));
            std::vector<float> wantDense(static_cast<size_t>(c.T) * c.hidden), wantDense32(wantDense.size());
            gatedMlpBf16(shared.views, x.data(), c.T, wantDense.data());
            cpu::gatedMlp(shared.views, x.data(), c.T, wantDense32.data(), nullptr);
            const auto gotDense = download(dDense);
            checkFfn("dense mlp vs bf16-rounding reference", gotDense, wantDense, shape, kExactRelRms,
                     kExactMaxOverRms);
            checkFfn("dense mlp vs fp32 reference", gotDense, wantDense32, shape, kFp32RelRms, kFp32MaxOverRms);
        }
    }
}

namespace {

// bf16 bits of n values uniform in [-scale, scale), cheap enough for Lite-sized experts.
std::vector<uint16_t> randomBf16Bits(std::mt19937_64& rng, size_t n, float scale) {
    std::vector<uint16_t> bits(n);
    for (size_t i = 0; i < n; i += 4) {
        const uint64_t r = rng();
        for (size_t k = 0; k < 4 && i + k < n; ++k) {
            const float u = static_cast<float>((r >> (16 * k)) & 0xffffu) / 65536.0f;
            bits[i + k] = floatToBf16((2.0f * u - 1.0f) * scale);
        }
    }
    return bits;
}

struct DecodeCase {
    const char* name;
    int hidden, inter, topK, sharedInter, nExperts;
    std::vector<bool> held;  // per slot: the expert lives on this GPU (empty: all do)
};

// One expert's weights on the host (bf16 bits) and the device.
struct DecodeExpert {
    std::vector<uint16_t> gateUp, down;  // [2·inter, hidden], [hidden, inter]
    DeviceBuffer<bf16> gateUpDev, downDev;
};

DecodeExpert makeDecodeExpert(std::mt19937_64& rng, int hidden, int inter) {
    DecodeExpert e;
    e.gateUp = randomBf16Bits(rng, static_cast<size_t>(2) * inter * hidden, 0.25f);
    e.down = randomBf16Bits(rng, static_cast<size_t>(hidden) * inter, 0.25f);
    e.gateUpDev = uploadBf16Bits(e.gateUp);
    e.downDev = uploadBf16Bits(e.down);
    return e;
}

// act of one expert and its contribution scale · down·act to out, with the GPU's rounding points
// (gate, up, act in bf16; sums in double, so only the GPU's fp32 order differs).
void decodeExpertReference(const DecodeExpert& e, const std::vector<float>& x, int inter, double scale, float* act,
                           std::vector<double>& out) {
    const auto hidden = static_cast<int64_t>(x.size());
    for (int64_t r = 0; r < inter; ++r) {
        double g = 0.0, u = 0.0;
        for (int64_t c = 0; c < hidden; ++c) {
            g += static_cast<double>(bf16ToFloat(e.gateUp[r * hidden + c])) * x[c];
            u += static_cast<double>(bf16ToFloat(e.gateUp[(inter + r) * hidden + c])) * x[c];
        }
        act[r] = roundBf16(cpu::silu(roundBf16(static_cast<float>(g))) * roundBf16(static_cast<float>(u)));
    }
    for (int64_t j = 0; j < hidden; ++j) {
        double s = 0.0;
        for (int64_t r = 0; r < inter; ++r) s += static_cast<double>(bf16ToFloat(e.down[j * inter + r])) * act[r];
        out[j] += scale * s;
    }
}

}  // namespace

TEST_CASE(
    "one-token MoE kernels (launchMoeDecode) = fp32 reference at the bf16 rounding points: Lite, odd shapes, experts "
    "on other GPUs; deterministic") {
    auto rng = makeRng("moe-decode");
    const std::vector<DecodeCase> cases{
        {"V2-Lite", 2048, 1408, 6, 2816, 64, {}},
        {"hidden 1024+8, inter 8*25, small shared", 1032, 200, 3, 88, 16, {}},
        {"top-1, no shared expert", 264, 8, 1, 0, 4, {}},
        {"hidden 5120 (row not a whole number of batches)", 5120, 96, 6, 192, 64, {}},
        {"experts on other GPUs (slots 1, 3, 4 elsewhere)",
         2048,
         1408,
         6,
         2816,
         64,
         {true, false, true, false, false, true}},
        {"only the shared expert here", 520, 72, 4, 144, 8, {false, false, false, false}},
        {"nothing here, no shared expert", 128, 64, 2, 0, 8, {false, false}},
        {"32 experts per token", 256, 16, 32, 32, 40, {}},
    };
    cudaStream_t stream = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    for (const auto& c : cases) {
        CAPTURE(c.name);
        const std::vector<bool> held = c.held.empty() ? std::vector<bool>(static_cast<size_t>(c.topK), true) : c.held;
        // Routing: distinct experts, weights in (0, 1); only the chosen experts get weights.
        std::vector<int32_t> ids(static_cast<size_t>(c.nExperts));
        std::iota(ids.begin(), ids.end(), 0);
        std::shuffle(ids.begin(), ids.end(), rng);
        ids.resize(static_cast<size_t>(c.topK));
        std::uniform_real_distribution<float> wDist(0.05f, 1.0f);
        std::vector<float> topW(static_cast<size_t>(c.topK));
        for (auto& w : topW) w = wDist(rng);
        std::vector<DecodeExpert> experts;
        experts.reserve(static_cast<size_t>(c.topK) + 1);
        DeviceBuffer<bf16> unused = uploadBf16Bits(std::vector<uint16_t>(8, 0));  // never chosen: never read
        std::vector<const bf16*> gateUps(static_cast<size_t>(c.nExperts), unused.data());
        std::vector<const bf16*> downs(gateUps);
        for (int k = 0; k < c.topK; ++k) {
            if (held[k]) {
                experts.push_back(makeDecodeExpert(rng, c.hidden, c.inter));
                gateUps[ids[k]] = experts.back().gateUpDev.data();
                downs[ids[k]] = experts.back().downDev.data();
            } else {
                gateUps[ids[k]] = downs[ids[k]] = nullptr;  // another GPU's expert
            }
        }
        const bool hasShared = c.sharedInter > 0;
        DecodeExpert shared;
        if (hasShared) shared = makeDecodeExpert(rng, c.hidden, c.sharedInter);
        const auto x = randomBf16(rng, static_cast<size_t>(c.hidden));

        auto dX = uploadBf16(x);
        auto dIds = upload(ids);
        auto dW = upload(topW);
        auto dGateUps = upload(gateUps);
        auto dDowns = upload(downs);
        const auto nAct = static_cast<size_t>(cuda::moeDecodeActElements(c.topK, c.inter, c.sharedInter));
        auto dAct = uploadBf16Bits(std::vector<uint16_t>(nAct, 0x7fc1));  // NaN: slots never written stay so
        auto dOut = upload(std::vector<float>(static_cast<size_t>(c.hidden), std::nanf("")));
        cuda::MoeDecodeParams d;
        d.hidden = c.hidden;
        d.top_k = c.topK;
        d.inter = c.inter;
        d.shared_inter = c.sharedInter;
        d.x = dX.data();
        d.topk_ids = dIds.data();
        d.topk_weights = dW.data();
        d.expert_gate_up = dGateUps.data();
        d.expert_down = dDowns.data();
        d.shared_gate_up = hasShared ? shared.gateUpDev.data() : nullptr;
        d.shared_down = hasShared ? shared.downDev.data() : nullptr;
        d.act = dAct.data();
        d.out = dOut.data();
        REQUIRE_OK(cuda::launchMoeDecode(d, stream));
        requireDeviceOk();
        const auto got = download(dOut);
        const auto gotAct = downloadBf16(dAct);

        std::vector<double> want(static_cast<size_t>(c.hidden), 0.0);
        std::vector<float> wantAct(nAct, 0.0f);
        size_t e = 0;
        for (int k = 0; k < c.topK; ++k)
            if (held[k])
                decodeExpertReference(experts[e++], x, c.inter, topW[k],
                                      wantAct.data() + static_cast<size_t>(k) * c.inter, want);
        if (hasShared)
            decodeExpertReference(shared, x, c.sharedInter, 1.0, wantAct.data() + static_cast<size_t>(c.topK) * c.inter,
                                  want);

        // act: this GPU's slots and the shared expert written, other GPUs' slots untouched. A
        // value may differ by a bf16 step where the GPU's fp32 sum of gate or up rounds the
        // other way (rare); a wrong row or slot would differ everywhere.
        int actOff = 0;
        for (size_t i = 0; i < nAct; ++i) {
            const auto slot = static_cast<int>(i / static_cast<size_t>(c.inter));
            if (slot < c.topK && !held[slot]) {
                REQUIRE_MESSAGE(std::isnan(gotAct[i]), "act[" << i << "] of an expert on another GPU was written");
                continue;
            }
            const float tol = 2.0f * std::ldexp(1.0f, std::ilogb(std::max(std::fabs(wantAct[i]), 1e-6f)) - 7);
            if (!(std::fabs(gotAct[i] - wantAct[i]) <= tol)) ++actOff;
        }
        CHECK_MESSAGE(actOff <= static_cast<int>(nAct / 200 + 1), actOff << " of " << nAct << " act values off");

        const std::vector<float> wantF(want.begin(), want.end());
        if (std::none_of(held.begin(), held.end(), [](bool h) { return h; }) && !hasShared) {
            for (float v : got) REQUIRE(v == 0.0f);  // nothing here: this GPU adds zero
        } else {
            checkFfn("moe decode vs fp32 reference at the bf16 rounding points", got, wantF,
                     std::vector<int64_t>{1, c.hidden}, kExactRelRms, kExactMaxOverRms);
        }

        // Run to run bit-identical (fixed split-K order, no atomics).
        auto dOut2 = deviceZeros<float>(static_cast<size_t>(c.hidden));
        d.out = dOut2.data();
        REQUIRE_OK(cuda::launchMoeDecode(d, stream));
        requireDeviceOk();
        CHECK(download(dOut2) == got);

        // The shared expert computed before the PDL wait: the same work in another order, so the
        // same bits (act and out).
        auto dOut3 = deviceZeros<float>(static_cast<size_t>(c.hidden));
        d.out = dOut3.data();
        d.x_ready_before_wait = true;
        REQUIRE_OK(cuda::launchMoeDecode(d, stream));
        requireDeviceOk();
        CHECK(download(dOut3) == got);
        const auto gotAct3 = downloadBf16(dAct);
        CHECK(std::equal(gotAct3.begin(), gotAct3.end(), gotAct.begin(), gotAct.end(),
                         [](float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }));

        // down waiting before it resolves the routing (down_early off): the same sums in the same
        // order, so the same bits; the first run above had it on (the default).
        auto dOut4 = deviceZeros<float>(static_cast<size_t>(c.hidden));
        d.out = dOut4.data();
        d.down_early = false;
        REQUIRE_OK(cuda::launchMoeDecode(d, stream));
        requireDeviceOk();
        CHECK(download(dOut4) == got);
    }
    REQUIRE(cudaStreamDestroy(stream) == cudaSuccess);
}

TEST_CASE("launchMoeDecode rejects shapes and pointers its 16-byte loads cannot take") {
    auto buf = deviceZeros<float>(64);
    auto* any = reinterpret_cast<bf16*>(buf.data());
    const bf16* table[1] = {any};
    cuda::MoeDecodeParams ok;
    ok.hidden = 64;
    ok.top_k = 1;
    ok.inter = 8;
    ok.shared_inter = 0;
    ok.x = any;
    ok.topk_ids = reinterpret_cast<const int32_t*>(buf.data());
    ok.topk_weights = buf.data();
    ok.expert_gate_up = table;  // host pointers are fine here: every case is rejected before a launch
    ok.expert_down = table;
    ok.act = any;
    ok.out = buf.data();
    auto bad = ok;
    bad.hidden = 60;
    CHECK(cuda::launchMoeDecode(bad, nullptr).code() == StatusCode::Unsupported);
    bad = ok;
    bad.inter = 12;
    CHECK(cuda::launchMoeDecode(bad, nullptr).code() == StatusCode::Unsupported);
    bad = ok;
    bad.top_k = 33;
    CHECK(cuda::launchMoeDecode(bad, nullptr).code() == StatusCode::Unsupported);
    bad = ok;
    bad.x = any + 1;  // 2-byte aligned
    CHECK(cuda::launchMoeDecode(bad, nullptr).code() == StatusCode::InvalidArgument);
    bad = ok;
    bad.shared_inter = 16;  // a shared expert without weights
    CHECK(cuda::launchMoeDecode(bad, nullptr).code() == StatusCode::InvalidArgument);
    bad.shared_gate_up = any + 1;
    bad.shared_down = any;
    CHECK(cuda::launchMoeDecode(bad, nullptr).code() == StatusCode::InvalidArgument);
}
