// The CPU backend against HF transformers' fp32 answers: tests/data/tiny-lite (made by the project
// maintainers) and every folder under tests/data/fixtures (made by tools/fixtures/make_fixtures.py).
// Checks: logits of every prompt position (normalized max error), the 12-token greedy continuation,
// the router's top-k per MoE layer per prompt token, and the long (past 4096 positions, YaRN) case.

#include <doctest/doctest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/backend.h"
#include "model/model_folder.h"
#include "reference_fixture.h"
#include "test_data.h"

namespace fs = std::filesystem;
using namespace dsv2;
using namespace dsv2::test;

namespace {

constexpr double kLogitsTolerance = 1e-4;      // fp32 against fp32: only summation order differs
constexpr double kLongLogitsTolerance = 1e-4;  // 4200 positions: rope angles are computed as HF does
constexpr float kRoutingWeightTolerance = 1e-4f;

struct Loaded {
    std::unique_ptr<ModelFolder> folder;
    std::unique_ptr<Backend> backend;
};

Loaded load(const fs::path& dir, MlaForm form = MlaForm::Auto) {
    Loaded l;
    auto folder = ModelFolder::open(dir);
    REQUIRE_MESSAGE(folder.isOk(), folder.status().toString());
    l.folder = std::move(folder).value();
    BackendOptions options;
    options.mlaForm = form;
    auto backend = createBackend(BackendKind::Cpu, l.folder->config(), l.folder->weights(), options);
    REQUIRE_MESSAGE(backend.isOk(), backend.status().toString());
    l.backend = std::move(backend).value();
    return l;
}

std::unique_ptr<BackendSession> session(Backend& backend, int64_t capacity = 0) {
    auto s = backend.createSession(capacity);
    REQUIRE_MESSAGE(s.isOk(), s.status().toString());
    return std::move(s).value();
}

ForwardResult run(BackendSession& s, const std::vector<int32_t>& tokens, bool all) {
    auto r = s.forward(tokens, all);
    REQUIRE_MESSAGE(r.isOk(), r.status().toString());
    return std::move(r).value();
}

// Logits, greedy continuation and routing of every case of one fixture folder.
void checkReferenceCases(const fs::path& dir, MlaForm form) {
    Loaded m = load(dir, form);
    const ModelConfig& config = m.folder->config();
    const auto cases = loadReferenceCases(dir);
    REQUIRE(!cases.empty());
    for (size_t ci = 0; ci < cases.size(); ++ci) {
        const ReferenceCase& rc = cases[ci];
        CAPTURE(ci);
        REQUIRE(rc.vocab == config.vocabSize);
        auto s = session(*m.backend);
        ForwardResult f = run(*s, rc.tokens, true);
        REQUIRE(f.nRows == rc.rows);
        const double err = normalizedMaxError(f.logits.data(), rc.logits.data(), rc.logits.size());
        MESSAGE(dir.filename().string() << " case " << ci << ": logits normalized max error " << err);
        CHECK(err <= kLogitsTolerance);

        // Top-5 at the last position.
        const float* last = f.logits.data() + (f.nRows - 1) * f.vocab;
        std::vector<int32_t> order(static_cast<size_t>(f.vocab));
        for (int32_t i = 0; i < f.vocab; ++i) order[static_cast<size_t>(i)] = i;
        std::partial_sort(order.begin(), order.begin() + 5, order.end(), [&](int32_t a, int32_t b) { return last[a] > last[b]; });
        CHECK(std::vector<int32_t>(order.begin(), order.begin() + 5) == rc.lastTop5);

        // Routing: the same experts for every prompt token in every MoE layer, same weights.
        REQUIRE(f.routing.moeLayers.size() == rc.routing.size());
        int64_t mismatchedTokens = 0;
        float worstWeight = 0.0f;
        for (size_t li = 0; li < f.routing.moeLayers.size(); ++li) {
            const int layer = f.routing.moeLayers[li];
            REQUIRE_MESSAGE(rc.routing.count(layer), "reference has no routing for layer " << layer);
            const RoutingReference& rr = rc.routing.at(layer);
            REQUIRE(static_cast<int64_t>(rr.ids.size()) == f.nTokens);
            for (int64_t t = 0; t < f.nTokens; ++t) {
                std::set<int32_t> ours;
                std::map<int32_t, float> ourWeight;
                for (int32_t k = 0; k < f.routing.topK; ++k) {
                    const int32_t id = f.routing.expertIds[static_cast<size_t>(f.routing.index(t, static_cast<int64_t>(li), k))];
                    ours.insert(id);
                    ourWeight[id] = f.routing.weights[static_cast<size_t>(f.routing.index(t, static_cast<int64_t>(li), k))];
                }
                const std::set<int32_t> theirs(rr.ids[static_cast<size_t>(t)].begin(), rr.ids[static_cast<size_t>(t)].end());
                if (ours != theirs) {
                    ++mismatchedTokens;
                    continue;
                }
                for (size_t k = 0; k < rr.ids[static_cast<size_t>(t)].size(); ++k) {
                    const int32_t id = rr.ids[static_cast<size_t>(t)][k];
                    const float ref = rr.weights[static_cast<size_t>(t)][k];
                    worstWeight = std::max(worstWeight, std::abs(ourWeight[id] - ref) / std::max(1.0f, std::abs(ref)));
                }
            }
        }
        CHECK(mismatchedTokens == 0);
        CHECK(worstWeight <= kRoutingWeightTolerance);

        // Greedy continuation through the cache (one token at a time), without stopping at eos.
        std::vector<int32_t> greedy;
        int32_t next = argmaxRow(last, f.vocab);
        for (size_t i = 0; i < rc.greedy.size(); ++i) {
            greedy.push_back(next);
            if (i + 1 == rc.greedy.size()) break;
            ForwardResult step = run(*s, {next}, false);
            next = argmaxRow(step.logits.data(), step.vocab);
        }
        CHECK(greedy == rc.greedy);
    }
}

void checkLongReference(const fs::path& dir, MlaForm form) {
    const auto ref = loadLongReference(dir);
    if (!ref) return;
    Loaded m = load(dir, form);
    auto s = session(*m.backend);
    // The prompt up to the first checked position in one prefill, the checked ones in a second
    // call with all logits (which also exercises a prefill on top of a filled cache).
    const auto split = static_cast<size_t>(ref->positions.front());
    REQUIRE(ref->positions.back() == static_cast<int64_t>(ref->tokens.size()) - 1);
    run(*s, std::vector<int32_t>(ref->tokens.begin(), ref->tokens.begin() + static_cast<std::ptrdiff_t>(split)), false);
    ForwardResult f = run(*s, std::vector<int32_t>(ref->tokens.begin() + static_cast<std::ptrdiff_t>(split), ref->tokens.end()), true);
    REQUIRE(f.nRows == static_cast<int64_t>(ref->positions.size()));
    const double err = normalizedMaxError(f.logits.data(), ref->logits.data(), ref->logits.size());
    MESSAGE(dir.filename().string() << " long (" << ref->tokens.size() << " tokens): logits normalized max error " << err);
    CHECK(err <= kLongLogitsTolerance);
}

// The fixture folders made by tools/fixtures/make_fixtures.py. A folder that exists must be whole.
std::vector<fs::path> generatedFixtures() {
    std::vector<fs::path> dirs;
    const fs::path root = dataDir() / "fixtures";
    if (!fs::is_directory(root)) return dirs;
    for (const auto& entry : fs::directory_iterator(root))
        if (entry.is_directory()) dirs.push_back(entry.path());
    std::sort(dirs.begin(), dirs.end());
    return dirs;
}

void requireComplete(const fs::path& dir) {
    for (const char* name : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                             "generation_config.json", "reference.json"})
        REQUIRE_MESSAGE(fs::is_regular_file(dir / name),
                        dir << " is incomplete: " << name << " is missing (re-run tools/fixtures/make_fixtures.py)");
    const nlohmann::json j = readJson(dir / "reference.json");
    for (const auto& c : j.at("cases"))
        REQUIRE_MESSAGE(fs::is_regular_file(dir / c.at("logits_file").get<std::string>()),
                        dir << " is incomplete: " << c.at("logits_file").get<std::string>() << " is missing");
}

}  // namespace

TEST_CASE("tiny-lite: logits, top-5, routing and greedy continuation match HF (auto MLA form)") {
    checkReferenceCases(tinyLiteDir(), MlaForm::Auto);
}

TEST_CASE("tiny-lite: the same with the expanded and with the absorbed MLA form") {
    SUBCASE("expanded") { checkReferenceCases(tinyLiteDir(), MlaForm::Expanded); }
    SUBCASE("absorbed") { checkReferenceCases(tinyLiteDir(), MlaForm::Absorbed); }
}

TEST_CASE("tiny-lite: 4200 tokens, past YaRN's original 4096 positions") {
    checkLongReference(tinyLiteDir(), MlaForm::Auto);
}

TEST_CASE("generated fixtures (tests/data/fixtures/*) match HF") {
    const auto dirs = generatedFixtures();
    if (dirs.empty()) MESSAGE("no generated fixtures under tests/data/fixtures (run tools/fixtures/make_fixtures.py)");
    for (const auto& dir : dirs) {
        CAPTURE(dir);
        requireComplete(dir);
        checkReferenceCases(dir, MlaForm::Auto);
        checkReferenceCases(dir, MlaForm::Absorbed);
        checkLongReference(dir, MlaForm::Auto);
    }
}
