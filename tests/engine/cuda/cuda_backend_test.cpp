// The CUDA backend end to end, against HF transformers' fp32 answers (tests/data/tiny-lite and
// tests/data/fixtures/*) and against the CPU backend: logits within bf16 tolerance, the same
// greedy tokens and the same routing except near-ties, in every MLA form, with the prompt in one
// chunk or several; the 4200-token YaRN case; rewind; bad input; cache stats.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../cpu/reference_fixture.h"
#include "core/backend.h"
#include "cuda/cuda_backend.h"
#include "gpu_skip.h"
#include "model/model_folder.h"
#include "test_data.h"

namespace fs = std::filesystem;
using namespace dsv2;
using namespace dsv2::test;

namespace {

struct GpuGuard {
    GpuGuard() { requireGpuOrSkip("cuda_backend_test"); }
};
const GpuGuard kGuard;

// bf16 weights and activations against fp32 HF: about 1e-2 (tests/data README).
constexpr double kLogitsTolerance = 3e-2;
// A greedy step or a router choice may differ from HF's only where the two candidates are this
// close in our own numbers (relative to the largest logit / in probability).
constexpr double kNearTieLogit = 2e-2;
constexpr float kNearTieWeight = 2e-2f;

struct Loaded {
    std::unique_ptr<ModelFolder> folder;
    std::unique_ptr<Backend> backend;
};

Loaded load(const fs::path& dir, MlaForm form, int64_t chunkTokens = 4096, BackendKind kind = BackendKind::Cuda) {
    Loaded l;
    auto folder = ModelFolder::open(dir);
    REQUIRE_MESSAGE(folder.isOk(), folder.status().toString());
    l.folder = std::move(folder).value();
    BackendOptions options;
    options.mlaForm = form;
    options.maxContext = 8192;
    Result<std::unique_ptr<Backend>> backend = Status(StatusCode::Internal, "unset");
    if (kind == BackendKind::Cuda) {
        cuda::CudaBackendExtras extras;
        extras.shape.chunkTokens = chunkTokens;
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

std::vector<fs::path> fixtureDirs() {
    std::vector<fs::path> dirs{tinyLiteDir()};
    const fs::path root = dataDir() / "fixtures";
    if (fs::is_directory(root))
        for (const auto& e : fs::directory_iterator(root))
            if (e.is_directory() && fs::exists(e.path() / "reference.json")) dirs.push_back(e.path());
    std::sort(dirs.begin() + 1, dirs.end());
    return dirs;
}

const char* formName(MlaForm f) {
    return f == MlaForm::Expanded ? "expanded" : f == MlaForm::Absorbed ? "absorbed" : "auto";
}

// Greedy tokens through the cache, compared with HF's; after the first difference (allowed only at
// a near-tie in our logits) the rest is not compared.
void checkGreedy(BackendSession& s, const ForwardResult& prompt, const std::vector<int32_t>& want) {
    std::vector<float> logits(prompt.logits.end() - prompt.vocab, prompt.logits.end());
    for (size_t i = 0; i < want.size(); ++i) {
        const int32_t ours = argmaxRow(logits.data(), prompt.vocab);
        if (ours != want[i]) {
            const float top = logits[static_cast<size_t>(ours)];
            const float theirs = logits[static_cast<size_t>(want[i])];
            float scale = 0.0f;
            for (float v : logits) scale = std::max(scale, std::fabs(v));
            const double gap = (top - theirs) / std::max(scale, 1e-6f);
            MESSAGE("greedy step " << i << ": ours " << ours << " vs HF " << want[i] << ", relative logit gap " << gap);
            CHECK_MESSAGE(gap <= kNearTieLogit, "greedy step " << i << " differs beyond a near-tie");
            return;
        }
        if (i + 1 == want.size()) break;
        ForwardResult step = run(s, {ours}, false);
        logits = step.logits;
    }
}

// Router choices per prompt token and MoE layer against HF's; a different set only at near-ties.
void checkRouting(const ForwardResult& f, const ReferenceCase& rc) {
    REQUIRE(f.routing.moeLayers.size() == rc.routing.size());
    int64_t nearTies = 0, decisions = 0;
    float worstWeight = 0.0f;
    for (size_t li = 0; li < f.routing.moeLayers.size(); ++li) {
        const RoutingReference& rr = rc.routing.at(f.routing.moeLayers[li]);
        for (int64_t t = 0; t < f.nTokens; ++t) {
            std::map<int32_t, float> ours;
            for (int32_t k = 0; k < f.routing.topK; ++k) {
                const auto idx = static_cast<size_t>(f.routing.index(t, static_cast<int64_t>(li), k));
                ours[f.routing.expertIds[idx]] = f.routing.weights[idx];
            }
            std::map<int32_t, float> theirs;
            for (size_t k = 0; k < rr.ids[static_cast<size_t>(t)].size(); ++k)
                theirs[rr.ids[static_cast<size_t>(t)][k]] = rr.weights[static_cast<size_t>(t)][k];
            ++decisions;
            // Experts only one side chose: the weakest of ours vs the strongest HF-only one.
            float oursOnly = 1e9f, theirsOnly = -1e9f;
            bool differ = false;
            for (const auto& [id, w] : ours)
                if (!theirs.count(id)) differ = true, oursOnly = std::min(oursOnly, w);
            for (const auto& [id, w] : theirs)
                if (!ours.count(id)) theirsOnly = std::max(theirsOnly, w);
                else worstWeight = std::max(worstWeight, std::fabs(ours[id] - w) / std::max(1.0f, std::fabs(w)));
            if (differ) {
                ++nearTies;
                CHECK_MESSAGE(std::fabs(oursOnly - theirsOnly) <= kNearTieWeight * std::max(1.0f, std::fabs(theirsOnly)),
                              "layer " << f.routing.moeLayers[li] << " token " << t << ": routing differs beyond a near-tie ("
                                       << oursOnly << " vs " << theirsOnly << ")");
            }
        }
    }
    MESSAGE("routing: " << nearTies << " near-tie differences in " << decisions << " decisions, worst weight error "
                        << worstWeight);
    CHECK(worstWeight <= 2e-2f);
}

}  // namespace

TEST_CASE("fixtures end to end: logits, top-1, routing and greedy tokens match HF in every MLA form") {
    for (const fs::path& dir : fixtureDirs()) {
        const auto cases = loadReferenceCases(dir);
        for (MlaForm form : {MlaForm::Auto, MlaForm::Expanded, MlaForm::Absorbed}) {
            // A small chunk also runs the prompts in several chunks (expanded over a filled cache).
            for (int64_t chunk : {int64_t{4096}, int64_t{7}}) {
                Loaded m = load(dir, form, chunk);
                for (size_t ci = 0; ci < cases.size(); ++ci) {
                    const ReferenceCase& rc = cases[ci];
                    CAPTURE(dir.filename().string());
                    CAPTURE(formName(form));
                    CAPTURE(chunk);
                    CAPTURE(ci);
                    auto s = session(*m.backend);
                    ForwardResult f = run(*s, rc.tokens, true);
                    REQUIRE(f.nRows == rc.rows);
                    REQUIRE(f.vocab == rc.vocab);
                    const double err = normalizedMaxError(f.logits.data(), rc.logits.data(), rc.logits.size());
                    MESSAGE(dir.filename().string() << " " << formName(form) << " chunk " << chunk << " case " << ci
                                                    << ": logits normalized max error " << err);
                    CHECK(err <= kLogitsTolerance);
                    checkRouting(f, rc);
                    checkGreedy(*s, f, rc.greedy);
                }
            }
        }
    }
}

TEST_CASE("4200-token YaRN case: prefill in chunks, then the checked positions") {
    for (const fs::path& dir : fixtureDirs()) {
        const auto ref = loadLongReference(dir);
        if (!ref) continue;
        for (MlaForm form : {MlaForm::Auto, MlaForm::Absorbed}) {
            CAPTURE(dir.filename().string());
            CAPTURE(formName(form));
            Loaded m = load(dir, form, 1000);
            auto s = session(*m.backend);
            const auto split = static_cast<std::ptrdiff_t>(ref->positions.front());
            run(*s, std::vector<int32_t>(ref->tokens.begin(), ref->tokens.begin() + split), false);
            ForwardResult f = run(*s, std::vector<int32_t>(ref->tokens.begin() + split, ref->tokens.end()), true);
            REQUIRE(f.nRows == static_cast<int64_t>(ref->positions.size()));
            const double err = normalizedMaxError(f.logits.data(), ref->logits.data(), ref->logits.size());
            MESSAGE(dir.filename().string() << " long " << formName(form) << ": logits normalized max error " << err);
            CHECK(err <= kLogitsTolerance);
            for (size_t r = 0; r < ref->positions.size(); ++r)
                CHECK(argmaxRow(f.logits.data() + r * f.vocab, f.vocab) ==
                      argmaxRow(ref->logits.data() + r * ref->vocab, ref->vocab));
        }
    }
}

TEST_CASE("CUDA and CPU backends agree on random tokens, prefill and decode") {
    std::mt19937 rng(1234);
    Loaded gpu = load(tinyLiteDir(), MlaForm::Auto, 64);
    Loaded cpu = load(tinyLiteDir(), MlaForm::Auto, 0, BackendKind::Cpu);
    const int64_t vocab = gpu.folder->config().vocabSize;
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab) - 1);
    std::vector<int32_t> tokens(300);
    for (auto& t : tokens) t = pick(rng);
    auto sg = session(*gpu.backend);
    auto sc = session(*cpu.backend);
    ForwardResult g = run(*sg, tokens, true);
    ForwardResult c = run(*sc, tokens, true);
    const double err = normalizedMaxError(g.logits.data(), c.logits.data(), c.logits.size());
    MESSAGE("300 random tokens: GPU vs CPU logits normalized max error " << err);
    CHECK(err <= kLogitsTolerance);
    for (int step = 0; step < 5; ++step) {
        const int32_t t = pick(rng);
        ForwardResult gs = run(*sg, {t}, false);
        ForwardResult cs = run(*sc, {t}, false);
        CHECK(normalizedMaxError(gs.logits.data(), cs.logits.data(), cs.logits.size()) <= kLogitsTolerance);
    }
}

TEST_CASE("rewind: truncate then the same tokens give the same logits; stats follow") {
    Loaded m = load(tinyLiteDir(), MlaForm::Auto);
    const ModelConfig& config = m.folder->config();
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
    const auto badId = s.forward(std::vector<int32_t>{5, static_cast<int32_t>(m.folder->config().vocabSize)}, false);
    CHECK(badId.status().code() == StatusCode::InvalidArgument);
    CHECK(s.length() == 3);
    const auto tooLong = s.forward(std::vector<int32_t>(68, 1), false);
    CHECK(tooLong.status().code() == StatusCode::OutOfRange);
    CHECK(s.length() == 3);
    CHECK(s.forward(std::vector<int32_t>{}, false).status().code() == StatusCode::InvalidArgument);
    CHECK(m.backend->createSession(10'000'000).status().code() == StatusCode::InvalidArgument);
    CHECK(m.backend->description().rfind("cuda bf16, ", 0) == 0);
}
