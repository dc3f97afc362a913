// The CUDA backend end to end, on tests/data/tiny-lite and tests/data/fixtures/*, in every MLA form,
// with the prompt in one chunk or several, through decode steps, on the 4200-token YaRN case and on
// random tokens. Three kinds of check (docs/cuda-engine.md "Numerics" says why):
//
//  1. Sublayer by sublayer against the Bf16 reference (layer_check.h): every sublayer of every
//     chunk, fed the GPU's own residual stream, must give the GPU's delta to relRMS <= 1e-3 (over
//     the session) and normalized max <= 1e-2 (any chunk), the logits too; router choices equal except at near-ties of
//     1e-3 in probability; routing weights to 1e-3. This is the real correctness check: it is independent of how much
//     this toy model amplifies rounding, and a sublayer with a bug fails at its own place in the printed table.
//  2. End to end against fp32 (HF's logits, and the Fp32 reference following the GPU's routing):
//     normalized max error <= 5e-2, the bf16 budget measured on tiny-lite by the host-side Bf16
//     reference (0.021 / 0.030 / 0.032 at the GPU's rounding points, cuda_reference_test); routing
//     differences from fp32 only at near-ties (tie gap <= 8e-2, at most 5% of decisions); greedy
//     tokens as HF's except where our own top two logits are within the budget.
//  3. The backend's behaviour: rewind, bad input, stats.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../cpu/reference_fixture.h"
#include "core/backend.h"
#include "cuda/cuda_backend.h"
#include "cuda/mla_decode.h"
#include "gpu_skip.h"
#include "layer_check.h"
#include "model/model_config.h"
#include "model/model_folder.h"
#include "model/random_weights.h"
#include "reference_forward.h"
#include "test_data.h"

namespace fs = std::filesystem;
using namespace dsv2;
using namespace dsv2::test;

namespace {

struct GpuGuard {
    GpuGuard() { requireGpuOrSkip("cuda_backend_test"); }
};
const GpuGuard kGuard;

// 1. Sublayer check against the Bf16 reference (same bf16 inputs: only summation order differs,
//    which moves a bf16 rounding now and then; measured ~1e-4 relRMS in emulation).
constexpr double kSublayerRelRms = 1e-3;
constexpr double kSublayerNormMax = 1e-2;
constexpr double kRefNearTie = 1e-3;
constexpr double kRefWeightError = 1e-3;
// 2. End to end against fp32: the bf16 budget (see the header comment) and the router decisions
//    a bf16 engine takes differently from fp32 on this model: the host Bf16 reference on the
//    4200-token case differs in 132 of 8400 decisions, tie gaps up to 0.041 (the H200: 135, up to
//    0.053; 600 random-token decisions: 9, up to 0.017). Sanity bounds only: the GPU's routing is
//    checked against the Bf16 reference to 1e-3 above.
constexpr double kBf16Budget = 5e-2;
constexpr double kRouterTieNoise = 8e-2;
constexpr double kRouterFlipShare = 5e-2;

// Collects the taps of the forward call in progress.
struct TapRecorder {
    int64_t hidden = 0;
    std::vector<TapChunk> chunks;
    void add(const cuda::ResidualTap& t) {
        if (t.stage == 0) {
            TapChunk ch;
            ch.pos0 = t.pos0;
            ch.nTokens = t.nTokens;
            ch.expanded = t.expandedAttention;
            chunks.push_back(std::move(ch));
        }
        REQUIRE(!chunks.empty());
        REQUIRE(static_cast<int>(chunks.back().stages.size()) == t.stage);
        chunks.back().stages.emplace_back(t.residual, t.residual + static_cast<int64_t>(t.nTokens) * hidden);
    }
};

struct Loaded {
    std::unique_ptr<ModelFolder> folder;
    std::unique_ptr<TapRecorder> taps;
    std::unique_ptr<Backend> backend;
    const ModelConfig& config() const { return folder->config(); }
};

Loaded load(const fs::path& dir, MlaForm form, int64_t chunkTokens = 4096, BackendKind kind = BackendKind::Cuda,
            int64_t maxContext = 8192) {
    Loaded l;
    auto folder = ModelFolder::open(dir);
    REQUIRE_MESSAGE(folder.isOk(), folder.status().toString());
    l.folder = std::move(folder).value();
    l.taps = std::make_unique<TapRecorder>();
    l.taps->hidden = l.folder->config().hiddenSize;
    BackendOptions options;
    options.mlaForm = form;
    options.maxContext = maxContext;
    Result<std::unique_ptr<Backend>> backend = Status(StatusCode::Internal, "unset");
    if (kind == BackendKind::Cuda) {
        cuda::CudaBackendExtras extras;
        extras.shape.chunkTokens = chunkTokens;
        TapRecorder* taps = l.taps.get();
        extras.residualTap = [taps](const cuda::ResidualTap& t) { taps->add(t); };
        backend = cuda::createCudaBackendWithExtras(l.folder->config(), l.folder->weights(), options, extras);
    } else {
        backend = createBackend(kind, l.folder->config(), l.folder->weights(), options);
    }
    REQUIRE_MESSAGE(backend.isOk(), backend.status().toString());
    l.backend = std::move(backend).value();
    return l;
}

std::unique_ptr<BackendSession> session(Backend& backend) {
    auto s = backend.createSession(0);
    REQUIRE_MESSAGE(s.isOk(), s.status().toString());
    return std::move(s).value();
}

ForwardResult run(BackendSession& s, const std::vector<int32_t>& tokens, bool all) {
    auto r = s.forward(tokens, all);
    REQUIRE_MESSAGE(r.isOk(), r.status().toString());
    return std::move(r).value();
}

// A GPU session whose every forward call is checked sublayer by sublayer.
struct CheckedSession {
    Loaded& m;
    std::unique_ptr<BackendSession> s;
    LayerChecker checker;
    explicit CheckedSession(Loaded& loaded)
        : m(loaded), s(session(*loaded.backend)), checker(loaded.config(), loaded.folder->weights(), kRefNearTie) {}
    ForwardResult forward(const std::vector<int32_t>& tokens, bool all) {
        m.taps->chunks.clear();
        ForwardResult r = run(*s, tokens, all);
        checker.check(tokens, m.taps->chunks, r);
        return r;
    }
};

void checkSublayers(const LayerReport& rep, const ModelConfig& c) {
    MESSAGE("sublayers vs the references:\n" << rep.table(c));
    CHECK_MESSAGE(rep.plumbingOk, rep.firstFailure);
    CHECK(rep.embeddingsExact);
    for (size_t s = 0; s < rep.bf16.size(); ++s) {
        CAPTURE(s);
        CHECK(rep.bf16[s].relRms() <= kSublayerRelRms);
        CHECK(rep.bf16[s].normMax <= kSublayerNormMax);
    }
    CHECK_MESSAGE(rep.routeFailures == 0, rep.firstFailure);
    CHECK(rep.worstWeightError <= kRefWeightError);
}

// The routing of a forward result as one RouteFollow per MoE layer.
std::vector<RouteFollow> followOf(const ForwardRouting& r, bool always, double nearTie) {
    const auto nMoe = static_cast<int64_t>(r.moeLayers.size());
    std::vector<RouteFollow> f(static_cast<size_t>(nMoe));
    for (int64_t m = 0; m < nMoe; ++m) {
        f[static_cast<size_t>(m)].ids = &r.expertIds;
        f[static_cast<size_t>(m)].stride = nMoe * r.topK;
        f[static_cast<size_t>(m)].offset = m * r.topK;
        f[static_cast<size_t>(m)].always = always;
        f[static_cast<size_t>(m)].nearTie = nearTie;
    }
    return f;
}

// Routing concatenated over several calls (the long case runs in two).
ForwardRouting concat(const ForwardRouting& a, const ForwardRouting& b) {
    ForwardRouting r = a;
    r.nTokens += b.nTokens;
    r.expertIds.insert(r.expertIds.end(), b.expertIds.begin(), b.expertIds.end());
    r.weights.insert(r.weights.end(), b.weights.begin(), b.weights.end());
    return r;
}

// The largest tie gap among a chained forward's followed decisions that differed, and how many.
std::pair<double, int64_t> worstTieGap(const ReferenceForward::Chained& r, int64_t* decisions = nullptr) {
    int64_t differed = 0, n = 0;
    double worstGap = 0.0;
    for (const auto& layer : r.routes)
        for (const RefRoute& route : layer) {
            ++n;
            if (route.differed) ++differed, worstGap = std::max(worstGap, route.tieGap);
        }
    if (decisions) *decisions = n;
    return {worstGap, differed};
}

// ForwardRouting of a chained reference forward (to follow its decisions elsewhere).
ForwardRouting routingOf(const ReferenceForward::Chained& r, const ForwardRouting& shapeLike) {
    ForwardRouting out = shapeLike;
    for (size_t m = 0; m < r.routes.size(); ++m)
        for (size_t t = 0; t < r.routes[m].size(); ++t)
            for (int32_t k = 0; k < out.topK; ++k)
                out.expertIds[static_cast<size_t>(out.index(static_cast<int64_t>(t), static_cast<int64_t>(m), k))] =
                    r.routes[m][t].ids[static_cast<size_t>(k)];
    return out;
}

// The Fp32 reference's chained forward following the GPU's routing: where it would have chosen
// otherwise, the GPU's pick must be a near-tie in fp32 probabilities: no farther from fp32's
// choice than bf16 rounding takes the host's Bf16 reference on the same tokens (`tieNoise`, at
// least kRouterTieNoise), in at most kRouterFlipShare of the decisions.
ReferenceForward::Chained fp32Following(ReferenceForward& ref, const std::vector<int32_t>& tokens,
                                        const ForwardRouting& gpuRouting, double tieNoise = kRouterTieNoise,
                                        bool expanded = true) {
    const auto follow = followOf(gpuRouting, true, 0.0);
    auto r = ref.forward(tokens, expanded, &follow);
    int64_t decisions = 0;
    const auto [worstGap, differed] = worstTieGap(r, &decisions);
    MESSAGE("routing vs fp32: " << differed << " of " << decisions << " decisions differ, largest tie gap " << worstGap
                                << " (allowed " << tieNoise << ")");
    if (tieNoise > 0.0) CHECK(worstGap <= tieNoise);
    CHECK(static_cast<double>(differed) <= kRouterFlipShare * static_cast<double>(decisions));
    return r;
}

// What bf16 activations cost on a model, measured on the host: the Bf16 reference (the GPU's
// rounding points) against the Fp32 reference. `logits`: both following the GPU's routing, the
// normalized max error of the logits; `tieGap`: the Bf16 reference on its own routing, the largest
// fp32 tie gap among its decisions. The sublayer check pins the GPU to the Bf16 reference; these
// bound the GPU's end-to-end distance from fp32 by what the rounding itself costs on the model
// (models with routed_scaling_factor 16 or few experts amplify it beyond tiny-lite's budget).
struct Bf16Cost {
    double logits = 0.0, tieGap = 0.0;
};
// `expanded`: the MLA form the GPU ran the prompt in (the forms round at different points).
Bf16Cost bf16Cost(const ModelConfig& c, const ModelWeights& w, const std::vector<int32_t>& tokens,
                  const ForwardRouting& gpuRouting, bool expanded) {
    ReferenceForward bf16(c, w, RefNumerics::Bf16), fp32(c, w, RefNumerics::Fp32);
    const auto follow = followOf(gpuRouting, true, 0.0);
    const auto following = bf16.forward(tokens, expanded, &follow);
    const auto fp32Following = fp32.forward(tokens, expanded, &follow);
    Bf16Cost cost;
    cost.logits = normalizedMaxError(following.logits.data(), fp32Following.logits.data(), fp32Following.logits.size());
    const auto own = bf16.forward(tokens, expanded);
    const ForwardRouting ownRouting = routingOf(own, gpuRouting);  // followOf points into it
    const auto ownFollow = followOf(ownRouting, true, 0.0);
    cost.tieGap = worstTieGap(fp32.forward(tokens, expanded, &ownFollow)).first;
    return cost;
}

std::vector<fs::path> fixtureDirs() {
    std::vector<fs::path> dirs{tinyLiteDir()};
    const fs::path root = dataDir() / "fixtures";
    if (fs::is_directory(root))
        for (const auto& e : fs::directory_iterator(root))
            if (e.is_directory() && fs::exists(e.path() / "reference.json")) dirs.push_back(e.path());
    std::sort(dirs.begin() + 1, dirs.end());
    return dirs;
}

std::string formName(MlaForm f) {
    return f == MlaForm::Expanded ? "expanded" : f == MlaForm::Absorbed ? "absorbed" : "auto";
}

// Greedy tokens through the cache, compared with HF's; after the first difference (allowed only
// where our own top two logits are within the bf16 budget) the rest is not compared.
void checkGreedy(CheckedSession& s, const ForwardResult& prompt, const std::vector<int32_t>& want,
                 double budget = kBf16Budget) {
    std::vector<float> logits(prompt.logits.end() - prompt.vocab, prompt.logits.end());
    for (size_t i = 0; i < want.size(); ++i) {
        const int32_t ours = argmaxRow(logits.data(), prompt.vocab);
        if (ours != want[i]) {
            float scale = 0.0f;
            for (float v : logits) scale = std::max(scale, std::fabs(v));
            const double gap =
                (logits[static_cast<size_t>(ours)] - logits[static_cast<size_t>(want[i])]) / std::max(scale, 1e-6f);
            MESSAGE("greedy step " << i << ": ours " << ours << " vs HF " << want[i] << ", relative logit gap " << gap);
            CHECK_MESSAGE(gap <= budget, "greedy step " << i << " differs beyond a near-tie");
            return;
        }
        if (i + 1 == want.size()) break;
        logits = s.forward({ours}, false).logits;
    }
}

}  // namespace

TEST_CASE(
    "fixtures: every sublayer matches the bf16 reference; logits, routing, greedy tokens within the bf16 budget of "
    "HF") {
    for (const fs::path& dir : fixtureDirs()) {
        const auto cases = loadReferenceCases(dir);
        for (MlaForm form : {MlaForm::Auto, MlaForm::Expanded, MlaForm::Absorbed}) {
            // A small chunk also runs the prompts in several chunks (expanded over a filled cache).
            for (int64_t chunk : {int64_t{4096}, int64_t{7}}) {
                Loaded m = load(dir, form, chunk);
                const ModelConfig& c = m.config();
                for (size_t ci = 0; ci < cases.size(); ++ci) {
                    const ReferenceCase& rc = cases[ci];
                    const std::string what = dir.filename().string() + " " + formName(form) + " chunk " +
                                             std::to_string(chunk) + " case " + std::to_string(ci);
                    CAPTURE(what);
                    CheckedSession s(m);
                    ForwardResult f = s.forward(rc.tokens, true);
                    REQUIRE(f.nRows == rc.rows);
                    REQUIRE(f.vocab == rc.vocab);
                    ReferenceForward fp32(c, m.folder->weights(), RefNumerics::Fp32);
                    // Budgets of this model: at least tiny-lite's, else 1.25x what bf16 costs here.
                    const bool expanded = form == MlaForm::Expanded || (form == MlaForm::Auto && chunk >= 16);
                    const Bf16Cost cost = bf16Cost(c, m.folder->weights(), rc.tokens, f.routing, expanded);
                    const double budget = std::max(kBf16Budget, 1.25 * cost.logits);
                    // Where bf16 rounding alone moves this model's logits beyond tiny-lite's budget
                    // (v2-like, routed_scaling_factor 16: 0.097), the fp32 chained stream is too far
                    // from the GPU's for a tie-gap bound to mean anything (the absorbed form on its
                    // case 1 meets a 0.9 gap in one decision of 224); the flip share still applies and
                    // the sublayer check pins every decision to the bf16 reference.
                    const double tieNoise =
                        cost.logits > kBf16Budget ? 0.0 : std::max(kRouterTieNoise, 1.25 * cost.tieGap);
                    const auto ref = fp32Following(fp32, rc.tokens, f.routing, tieNoise, expanded);
                    const double err = normalizedMaxError(f.logits.data(), ref.logits.data(), ref.logits.size());
                    const double errHf = normalizedMaxError(f.logits.data(), rc.logits.data(), rc.logits.size());
                    MESSAGE(what << ": logits vs fp32 with our routing " << err << ", vs HF " << errHf
                                 << "; the host bf16 reference costs " << cost.logits << " (budget " << budget
                                 << "), its largest router tie gap vs fp32 " << cost.tieGap);
                    CHECK(err <= budget);
                    bool sameRouting = true;
                    size_t mi = 0;
                    for (const auto& [layer, rr] : rc.routing) {
                        for (int64_t t = 0; t < f.nTokens; ++t) {
                            std::vector<int32_t> ours, theirs = rr.ids[static_cast<size_t>(t)];
                            for (int32_t k = 0; k < f.routing.topK; ++k)
                                ours.push_back(f.routing.expertIds[static_cast<size_t>(
                                    f.routing.index(t, static_cast<int64_t>(mi), k))]);
                            std::sort(ours.begin(), ours.end());
                            std::sort(theirs.begin(), theirs.end());
                            sameRouting = sameRouting && ours == theirs;
                        }
                        ++mi;
                    }
                    if (sameRouting) CHECK(errHf <= budget);
                    checkGreedy(s, f, rc.greedy, budget);
                    checkSublayers(s.checker.report(), c);
                }
                // The reference itself on this fixture: the Fp32 reference must be HF (else the
                // comparisons above say nothing about HF).
                if (form == MlaForm::Auto && chunk == 4096) {
                    ReferenceForward fp32(c, m.folder->weights(), RefNumerics::Fp32);
                    const auto r = fp32.forward(cases.front().tokens, true);
                    CHECK(normalizedMaxError(r.logits.data(), cases.front().logits.data(), r.logits.size()) <= 1e-4);
                }
            }
        }
    }
}

TEST_CASE("long YaRN case (4200+ tokens): prefill in chunks of 1000, then the checked positions") {
    for (const fs::path& dir : fixtureDirs()) {
        const auto ref = loadLongReference(dir);
        if (!ref) continue;
        for (MlaForm form : {MlaForm::Auto, MlaForm::Absorbed}) {
            const std::string what = dir.filename().string() + " long " + formName(form);
            CAPTURE(what);
            Loaded m = load(dir, form, 1000);
            const ModelConfig& c = m.config();
            CheckedSession s(m);
            const auto split = static_cast<std::ptrdiff_t>(ref->positions.front());
            const std::vector<int32_t> head(ref->tokens.begin(), ref->tokens.begin() + split);
            const std::vector<int32_t> tail(ref->tokens.begin() + split, ref->tokens.end());
            const ForwardResult first = s.forward(head, false);
            const ForwardResult f = s.forward(tail, true);
            REQUIRE(f.nRows == static_cast<int64_t>(ref->positions.size()));
            checkSublayers(s.checker.report(), c);
            ReferenceForward fp32(c, m.folder->weights(), RefNumerics::Fp32);
            const auto chained = fp32Following(fp32, ref->tokens, concat(first.routing, f.routing));
            const std::vector<float> refRows(chained.logits.end() - static_cast<std::ptrdiff_t>(f.logits.size()),
                                             chained.logits.end());
            const double err = normalizedMaxError(f.logits.data(), refRows.data(), refRows.size());
            const double errHf = normalizedMaxError(f.logits.data(), ref->logits.data(), ref->logits.size());
            MESSAGE(what << ": logits vs fp32 with our routing " << err << ", vs HF " << errHf);
            CHECK(err <= kBf16Budget);
            for (size_t r = 0; r < ref->positions.size(); ++r) {
                const float* row = f.logits.data() + r * static_cast<size_t>(f.vocab);
                const int32_t ours = argmaxRow(row, f.vocab),
                              theirs = argmaxRow(ref->logits.data() + r * ref->vocab, ref->vocab);
                if (ours == theirs) continue;
                float scale = 0.0f;
                for (int64_t i = 0; i < f.vocab; ++i) scale = std::max(scale, std::fabs(row[i]));
                CHECK_MESSAGE((row[ours] - row[theirs]) / scale <= kBf16Budget, "position " << ref->positions[r]);
            }
        }
    }
}

TEST_CASE(
    "random tokens in chunks of 64, then decode: sublayers match; logits within the budget of fp32 and the CPU "
    "backend") {
    std::mt19937 rng(1234);
    Loaded gpu = load(tinyLiteDir(), MlaForm::Auto, 64);
    Loaded cpu = load(tinyLiteDir(), MlaForm::Auto, 0, BackendKind::Cpu);
    const ModelConfig& c = gpu.config();
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(c.vocabSize) - 1);
    std::vector<int32_t> tokens(300);
    for (auto& t : tokens) t = pick(rng);
    CheckedSession sg(gpu);
    auto sc = session(*cpu.backend);
    const ForwardResult g = sg.forward(tokens, true);
    const ForwardResult cr = run(*sc, tokens, true);
    ReferenceForward fp32(c, gpu.folder->weights(), RefNumerics::Fp32);
    const Bf16Cost cost = bf16Cost(c, gpu.folder->weights(), tokens, g.routing, true);
    const double budget = std::max(kBf16Budget, 1.25 * cost.logits);
    const auto ref = fp32Following(fp32, tokens, g.routing, std::max(kRouterTieNoise, 1.25 * cost.tieGap));
    const double err = normalizedMaxError(g.logits.data(), ref.logits.data(), ref.logits.size());
    // The CPU backend takes its own routing: compare the rows before the first token whose routing
    // differs from ours in any MoE layer (after it the two streams part by a whole expert).
    int64_t agree = 0;
    for (; agree < g.nTokens; ++agree) {
        bool same = true;
        for (int64_t mi = 0; mi < static_cast<int64_t>(g.routing.moeLayers.size()); ++mi) {
            std::vector<int32_t> a, b;
            for (int32_t k = 0; k < g.routing.topK; ++k) {
                a.push_back(g.routing.expertIds[static_cast<size_t>(g.routing.index(agree, mi, k))]);
                b.push_back(cr.routing.expertIds[static_cast<size_t>(cr.routing.index(agree, mi, k))]);
            }
            std::sort(a.begin(), a.end());
            std::sort(b.begin(), b.end());
            same = same && a == b;
        }
        if (!same) break;
    }
    const double errCpu =
        normalizedMaxError(g.logits.data(), cr.logits.data(), static_cast<size_t>(agree * c.vocabSize));
    MESSAGE("300 random tokens: logits vs fp32 with our routing "
            << err << "; vs the CPU backend on the " << agree << " rows before the first routing difference " << errCpu
            << "; the host bf16 reference costs " << cost.logits);
    CHECK(err <= budget);
    CHECK(agree > 0);
    CHECK(errCpu <= budget);
    for (int step = 0; step < 5; ++step) {
        const int32_t t = pick(rng);
        const ForwardResult gs = sg.forward({t}, false);
        const auto follow = followOf(gs.routing, true, 0.0);
        const auto rs = fp32.forward({t}, false, &follow);
        CHECK(normalizedMaxError(gs.logits.data(), rs.logits.data(), rs.logits.size()) <= kBf16Budget);
    }
    checkSublayers(sg.checker.report(), c);
}

TEST_CASE("rewind: truncate then the same tokens give the same logits; stats follow") {
    Loaded m = load(tinyLiteDir(), MlaForm::Auto);
    const ModelConfig& config = m.config();
    auto s = session(*m.backend);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 100; ++i) tokens.push_back((i * 37 + 11) % static_cast<int32_t>(config.vocabSize));
    ForwardResult first = run(*s, tokens, true);
    CHECK(s->length() == 100);
    CacheStats st = s->cacheStats();
    CHECK(st.dtype == "bf16");
    CHECK(st.tokens == 100);
    CHECK(st.blocksReserved == 2);
    CHECK(st.bytesPerToken == config.numHiddenLayers * config.latentCacheDim() * 2);

    REQUIRE(s->truncate(60).isOk());
    CHECK(s->length() == 60);
    CHECK(s->cacheStats().blocksReserved == 1);
    ForwardResult again = run(*s, std::vector<int32_t>(tokens.begin() + 60, tokens.end()), true);
    const size_t offset = static_cast<size_t>(60 * first.vocab);
    CHECK(normalizedMaxError(again.logits.data(), first.logits.data() + offset, again.logits.size()) <= 1e-3);
    CHECK(s->truncate(101).code() == StatusCode::InvalidArgument);
}

TEST_CASE("bad input is refused and leaves the cache as it was") {
    Loaded m = load(tinyLiteDir(), MlaForm::Auto);
    auto small = m.backend->createSession(70);
    REQUIRE(small.isOk());
    BackendSession& s = **small;
    run(s, {1, 2, 3}, false);
    const auto badId = s.forward(std::vector<int32_t>{5, static_cast<int32_t>(m.config().vocabSize)}, false);
    CHECK(badId.status().code() == StatusCode::InvalidArgument);
    CHECK(s.length() == 3);
    const auto tooLong = s.forward(std::vector<int32_t>(68, 1), false);
    CHECK(tooLong.status().code() == StatusCode::OutOfRange);
    CHECK(s.length() == 3);
    CHECK(s.forward(std::vector<int32_t>{}, false).status().code() == StatusCode::InvalidArgument);
    CHECK(m.backend->createSession(10'000'000).status().code() == StatusCode::InvalidArgument);
    CHECK(m.backend->description().rfind("cuda bf16, ", 0) == 0);
}

TEST_CASE("decode steps replayed as a CUDA graph equal the step-by-step launches, across interleaved sessions") {
    // The tap turns graphs off (it waits for the host between sublayers), so `stepwise` launches
    // every kernel from the host and `graphed` replays captured steps; both run the same kernels.
    for (const fs::path& dir : {tinyLiteDir(), dataDir() / "fixtures" / "v2-like"}) {
        CAPTURE(dir.string());
        Loaded stepwise = load(dir, MlaForm::Auto);
        auto plain = ModelFolder::open(dir);
        REQUIRE(plain.isOk());
        BackendOptions options;
        options.maxContext = 8192;
        auto graphed = createBackend(BackendKind::Cuda, (*plain)->config(), (*plain)->weights(), options);
        REQUIRE_MESSAGE(graphed.isOk(), graphed.status().toString());
        const int32_t vocab = static_cast<int32_t>((*plain)->config().vocabSize);

        // Two sessions each, decoding in turns, so the graph is captured again on every switch.
        std::vector<std::unique_ptr<BackendSession>> a, b;
        for (int i = 0; i < 2; ++i) {
            a.push_back(session(*stepwise.backend));
            b.push_back(session(**graphed));
        }
        std::vector<int32_t> next(2);
        for (int i = 0; i < 2; ++i) {
            std::vector<int32_t> prompt;
            for (int t = 0; t < 40 + 31 * i; ++t) prompt.push_back((t * 53 + 7 * i + 3) % vocab);
            const ForwardResult ra = run(*a[i], prompt, false);
            const ForwardResult rb = run(*b[i], prompt, false);
            CHECK(ra.logits == rb.logits);  // prefill: the same path in both
            next[i] = static_cast<int32_t>(std::max_element(ra.logits.begin(), ra.logits.end()) - ra.logits.begin());
        }
        for (int step = 0; step < 12; ++step) {
            const int i = (step / 3) % 2;  // three steps of one session, then the other
            CAPTURE(step);
            const ForwardResult ra = run(*a[i], {next[i]}, false);
            const ForwardResult rb = run(*b[i], {next[i]}, false);
            CHECK(normalizedMaxError(rb.logits.data(), ra.logits.data(), ra.logits.size()) <= 1e-6);
            CHECK(rb.routing.expertIds == ra.routing.expertIds);
            next[i] = static_cast<int32_t>(std::max_element(ra.logits.begin(), ra.logits.end()) - ra.logits.begin());
            CHECK(std::max_element(rb.logits.begin(), rb.logits.end()) - rb.logits.begin() == next[i]);
        }
        // A rewind, then decode again from the shorter context.
        REQUIRE(a[0]->truncate(20).isOk());
        REQUIRE(b[0]->truncate(20).isOk());
        const ForwardResult ra = run(*a[0], {5}, false);
        const ForwardResult rb = run(*b[0], {5}, false);
        CHECK(normalizedMaxError(rb.logits.data(), ra.logits.data(), ra.logits.size()) <= 1e-6);
    }
}

TEST_CASE("a decode graph is captured again where the context crosses the MLA decode kernel's limit, both ways") {
    // The sliced kernel below kMlaDecodeSlicedMaxContext, the tensor-core kernel above (V2 dims;
    // the tiny model's dims take the CUDA cores on both sides): every replay still equals the
    // stepwise launch across the crossing, a rewind below it and a second crossing.
    const int64_t limit = cuda::kMlaDecodeSlicedMaxContext;
    for (const fs::path& dir : {tinyLiteDir(), dataDir() / "fixtures" / "v2-like"}) {
        CAPTURE(dir.string());
        Loaded stepwise = load(dir, MlaForm::Auto, 4096, BackendKind::Cuda, limit + 64);
        auto plain = ModelFolder::open(dir);
        REQUIRE(plain.isOk());
        BackendOptions options;
        options.maxContext = limit + 64;
        auto graphed = createBackend(BackendKind::Cuda, (*plain)->config(), (*plain)->weights(), options);
        REQUIRE_MESSAGE(graphed.isOk(), graphed.status().toString());
        const int32_t vocab = static_cast<int32_t>((*plain)->config().vocabSize);
        auto a = session(*stepwise.backend);
        auto b = session(**graphed);
        std::vector<int32_t> longPrompt;
        for (int64_t t = 0; t < limit - 2; ++t) longPrompt.push_back(static_cast<int32_t>((t * 31 + 11) % vocab));
        CHECK(run(*a, longPrompt, false).logits == run(*b, longPrompt, false).logits);
        int32_t token = 7;
        for (int step = 0; step < 7; ++step) {  // contexts limit - 1, limit, limit + 1, then again
            if (step == 3) {                    // back below the limit, then over it again
                REQUIRE(a->truncate(limit - 3).isOk());
                REQUIRE(b->truncate(limit - 3).isOk());
            }
            CAPTURE(step);
            const ForwardResult sa = run(*a, {token}, false);
            const ForwardResult sb = run(*b, {token}, false);
            CHECK(normalizedMaxError(sb.logits.data(), sa.logits.data(), sa.logits.size()) <= 1e-6);
            token = static_cast<int32_t>(std::max_element(sa.logits.begin(), sa.logits.end()) - sa.logits.begin());
        }
    }
}

TEST_CASE("decode with the norms folded into the next launch (DSV2_FOLD_NORMS=1) = separate RMSNorm launches") {
    // The folded path alternates the residual stream between two buffers across ~55 norms a step;
    // a wrong buffer anywhere would show in the logits at once. x may differ from the separate
    // norm in the last bf16 bit of rare elements (another fp32 order of the sum of squares), so
    // the logits agree to a tolerance and the routing up to rare near-tie flips.
    for (const fs::path& dir : {tinyLiteDir(), dataDir() / "fixtures" / "v2-like"}) {
        CAPTURE(dir.string());
        auto folder = ModelFolder::open(dir);
        REQUIRE(folder.isOk());
        BackendOptions options;
        options.maxContext = 4096;
        auto separate = createBackend(BackendKind::Cuda, (*folder)->config(), (*folder)->weights(), options);
        REQUIRE_MESSAGE(separate.isOk(), separate.status().toString());
        setenv("DSV2_FOLD_NORMS", "1", 1);  // read when a backend is created
        auto folded = createBackend(BackendKind::Cuda, (*folder)->config(), (*folder)->weights(), options);
        unsetenv("DSV2_FOLD_NORMS");
        REQUIRE_MESSAGE(folded.isOk(), folded.status().toString());
        const int32_t vocab = static_cast<int32_t>((*folder)->config().vocabSize);
        auto a = session(**separate);
        auto b = session(**folded);
        std::vector<int32_t> prompt;
        for (int t = 0; t < 37; ++t) prompt.push_back((t * 97 + 11) % vocab);
        const ForwardResult pa = run(*a, prompt, false);
        const ForwardResult pb = run(*b, prompt, false);
        CHECK(pa.logits == pb.logits);  // prefill never folds
        int32_t next = static_cast<int32_t>(std::max_element(pa.logits.begin(), pa.logits.end()) - pa.logits.begin());
        size_t routed = 0, routedAlike = 0;
        for (int step = 0; step < 16; ++step) {
            CAPTURE(step);
            const ForwardResult ra = run(*a, {next}, false);
            const ForwardResult rb = run(*b, {next}, false);  // the same token for both: no drift
            REQUIRE(ra.routing.expertIds.size() == rb.routing.expertIds.size());
            routed += ra.routing.expertIds.size();
            for (size_t i = 0; i < ra.routing.expertIds.size(); ++i)
                routedAlike += ra.routing.expertIds[i] == rb.routing.expertIds[i];
            if (ra.routing.expertIds == rb.routing.expertIds)
                CHECK(normalizedMaxError(rb.logits.data(), ra.logits.data(), ra.logits.size()) <= 2e-2);
            next = static_cast<int32_t>(std::max_element(ra.logits.begin(), ra.logits.end()) - ra.logits.begin());
        }
        CHECK(routedAlike >= routed - routed / 50);  // at most 2 % of expert choices flip at near-ties
    }
}

namespace {

// V2-Lite's attention shape (16 heads, kv_lora 512, rope 64: the sliced decode kernel, the v GEMV's
// split merge) around a small FFN, random bf16 weights: two layers, 8 experts.
struct LiteAttentionModel {
    ModelConfig config;
    std::unique_ptr<RandomWeights> weights;
};
const LiteAttentionModel& liteAttentionModel() {
    static const LiteAttentionModel m = [] {
        LiteAttentionModel x;
        auto c = loadModelConfig(fs::path(__FILE__).parent_path() / "configs" / "deepseek-v2-lite.json");
        REQUIRE_MESSAGE(c.isOk(), c.status().toString());
        x.config = *c;
        x.config.numHiddenLayers = 2;
        x.config.vocabSize = 4096;
        x.config.hiddenSize = 1024;
        x.config.intermediateSize = 512;
        x.config.moeIntermediateSize = 256;
        x.config.nRoutedExperts = 8;
        auto w = RandomWeights::create(x.config, DType::BF16, 5);
        REQUIRE_MESSAGE(w.isOk(), w.status().toString());
        x.weights = std::move(w).value();
        return x;
    }();
    return m;
}

}  // namespace

TEST_CASE(
    "decode-step launch merges and early starts = without them, bit for bit (DSV2_FUSE_PROLOGUE, "
    "DSV2_MLA_MERGE_IN_V, DSV2_MOE_EARLY_DOWN, DSV2_PDL_EARLY_TRIGGER)") {
    // Each knob undoes one change of the one-token step that computes the same values in fewer or
    // earlier launches, so the logits must be equal exactly:
    //   - the attention prologue inside the q_lat launch (cuda_kernels_test: same bits); the decode
    //     kernel then finds the new cache entry written one launch back instead of two, and its
    //     early tiles must wait for it (MlaDecodeParams::new_entries_one_back): a stale entry
    //     would change the logits;
    //   - the MLA decode splits merged by the v GEMV (mla_split_merge.cuh; only where the sliced
    //     kernel runs: the Lite-shaped model) up to 64 splits by default: off, and up to 4 (so
    //     that positions past 256 take the decode kernel's own merge within one session);
    //   - MoE down reading the routing before its PDL wait;
    //   - the norms and the v GEMV letting the next kernel launch before their wait (the
    //     default); none of them; and every site that may (also the q/kv_a GEMV, the MLA decode
    //     kernel, o_proj and MoE down).
    // Positions from 0 (the early tiles reach the new entry at every step) and on from a prompt,
    // with graph replays; 300 steps cross 1 to 8 splits of 64 positions.
    const std::vector<std::pair<const char*, const char*>> knobs{
        {"DSV2_FUSE_PROLOGUE", "0"},     {"DSV2_MLA_MERGE_IN_V", "0"},
        {"DSV2_MLA_MERGE_IN_V", "4"},    {"DSV2_MOE_EARLY_DOWN", "0"},
        {"DSV2_PDL_EARLY_TRIGGER", "0"}, {"DSV2_PDL_EARLY_TRIGGER", "norm,v,qkv,mla,oproj,down"}};
    struct Model {
        std::string name;
        const ModelConfig* config;
        const ModelWeights* weights;
    };
    std::vector<std::unique_ptr<ModelFolder>> folders;
    std::vector<Model> models;
    for (const fs::path& dir : {tinyLiteDir(), dataDir() / "fixtures" / "v2-like"}) {
        auto folder = ModelFolder::open(dir);
        REQUIRE(folder.isOk());
        folders.push_back(std::move(folder).value());
        models.push_back({dir.string(), &folders.back()->config(), &folders.back()->weights()});
    }
    models.push_back(
        {"Lite attention, random", &liteAttentionModel().config, &liteAttentionModel().weights->weights()});
    for (const Model& model : models) {
        CAPTURE(model.name);
        BackendOptions options;
        options.maxContext = 1024;
        auto merged = createBackend(BackendKind::Cuda, *model.config, *model.weights, options);
        REQUIRE_MESSAGE(merged.isOk(), merged.status().toString());
        const auto vocab = static_cast<int32_t>(model.config->vocabSize);
        for (const auto& [name, value] : knobs) {
            CAPTURE(name);
            CAPTURE(value);
            setenv(name, value, 1);  // read when a backend is created
            auto other = createBackend(BackendKind::Cuda, *model.config, *model.weights, options);
            unsetenv(name);
            REQUIRE_MESSAGE(other.isOk(), other.status().toString());
            for (const int promptLength : {1, 150}) {
                CAPTURE(promptLength);
                auto a = session(**other);
                auto b = session(**merged);
                std::vector<int32_t> prompt;
                for (int t = 0; t < promptLength; ++t) prompt.push_back((t * 131 + 7) % vocab);
                const ForwardResult pa = run(*a, prompt, false);
                const ForwardResult pb = run(*b, prompt, false);
                CHECK(pa.logits == pb.logits);
                int32_t next =
                    static_cast<int32_t>(std::max_element(pa.logits.begin(), pa.logits.end()) - pa.logits.begin());
                for (int step = 0; step < 300; ++step) {
                    CAPTURE(step);
                    const ForwardResult ra = run(*a, {next}, false);
                    const ForwardResult rb = run(*b, {next}, false);
                    REQUIRE(ra.logits == rb.logits);
                    CHECK(ra.routing.expertIds == rb.routing.expertIds);
                    next =
                        static_cast<int32_t>(std::max_element(ra.logits.begin(), ra.logits.end()) - ra.logits.begin());
                }
            }
        }
    }
}

TEST_CASE(
    "DSV2_DECODE_SKIP (a timing diagnostic) leaves stages out of one-token steps; unknown stages, and "
    "DSV2_PDL_EARLY_TRIGGER sites, are refused") {
    const fs::path dir = dataDir() / "fixtures" / "v2-like";
    auto folder = ModelFolder::open(dir);
    REQUIRE(folder.isOk());
    BackendOptions options;
    options.maxContext = 4096;
    setenv("DSV2_DECODE_SKIP", "mla,attention", 1);  // read when a backend is created
    auto refused = createBackend(BackendKind::Cuda, (*folder)->config(), (*folder)->weights(), options);
    setenv("DSV2_DECODE_SKIP", "norm,qkv,mla,oproj,router,moe,lmhead", 1);
    auto skipping = createBackend(BackendKind::Cuda, (*folder)->config(), (*folder)->weights(), options);
    unsetenv("DSV2_DECODE_SKIP");
    REQUIRE_FALSE(refused.isOk());
    CHECK(refused.status().message().find("'attention'") != std::string::npos);
    setenv("DSV2_PDL_EARLY_TRIGGER", "norm,router", 1);  // the router's successor relies on its rule 3
    auto badSite = createBackend(BackendKind::Cuda, (*folder)->config(), (*folder)->weights(), options);
    unsetenv("DSV2_PDL_EARLY_TRIGGER");
    REQUIRE_FALSE(badSite.isOk());
    CHECK(badSite.status().message().find("'router'") != std::string::npos);
    REQUIRE_MESSAGE(skipping.isOk(), skipping.status().toString());
    auto full = createBackend(BackendKind::Cuda, (*folder)->config(), (*folder)->weights(), options);
    REQUIRE_MESSAGE(full.isOk(), full.status().toString());
    auto a = session(**full);
    auto b = session(**skipping);
    std::vector<int32_t> prompt;
    for (int t = 0; t < 20; ++t) prompt.push_back(t * 7 + 3);
    CHECK(run(*a, prompt, false).logits == run(*b, prompt, false).logits);  // prefill is untouched
    // With every stage but the embedding, the prologue and the final norm left out, a step's
    // logits no longer depend on its token; the full model's do.
    const ForwardResult s1 = run(*b, {5}, false), s2 = run(*b, {77}, false);
    CHECK(s1.logits == s2.logits);
    const ForwardResult f1 = run(*a, {5}, false), f2 = run(*a, {77}, false);
    CHECK(f1.logits != f2.logits);
}
