#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "model/random_weights.h"
#include "model/weight_binding.h"
#include "test_data.h"

using namespace dsv2;

namespace {
ModelConfig tinyConfig() {
    auto c = loadModelConfig(test::tinyLiteDir() / "config.json");
    REQUIRE(c.isOk());
    return *c;
}
bool sameBytes(const TensorView& a, const TensorView& b) {
    return a.nbytes == b.nbytes && std::memcmp(a.data, b.data, a.nbytes) == 0;
}
}  // namespace

TEST_CASE("random weights have the checkpoint's layout and are N(0, 0.02) with unit norms") {
    const ModelConfig c = tinyConfig();
    auto rw = RandomWeights::create(c, DType::BF16, 42);
    REQUIRE_MESSAGE(rw.isOk(), rw.status().toString());
    const ModelWeights& w = (*rw)->weights();
    CHECK((*rw)->tensors().size() == expectedTensors(c).size());
    REQUIRE(w.layers.size() == 3);
    CHECK(w.layers[0].denseMlp.has_value());
    REQUIRE(w.layers[2].moe.has_value());
    CHECK(w.layers[2].moe->experts.size() == 8);
    CHECK(w.embedTokens.dtype == DType::BF16);
    CHECK(reinterpret_cast<uintptr_t>(w.lmHead.data) % 256 == 0);

    for (const TensorView* norm : {&w.norm, &w.layers[1].inputLayernorm, &w.layers[2].attn.kvALayernorm})
        for (float v : toFloatVector(*norm)) REQUIRE(v == 1.0f);

    const std::vector<float> e = toFloatVector(w.embedTokens);  // 32768 values
    double sum = 0, sumSq = 0;
    for (float v : e) {
        REQUIRE(std::isfinite(v));
        sum += v;
        sumSq += double(v) * v;
    }
    const double mean = sum / double(e.size());
    const double stddev = std::sqrt(sumSq / double(e.size()) - mean * mean);
    CHECK(std::abs(mean) < 0.001);
    CHECK(stddev == doctest::Approx(0.02).epsilon(0.03));
}

TEST_CASE("random weights are deterministic per seed and differ between tensors and seeds") {
    const ModelConfig c = tinyConfig();
    auto a = RandomWeights::create(c, DType::F32, 7);
    auto b = RandomWeights::create(c, DType::F32, 7);
    auto other = RandomWeights::create(c, DType::F32, 8);
    REQUIRE(a.isOk());
    REQUIRE(b.isOk());
    REQUIRE(other.isOk());
    for (const auto& [name, t] : (*a)->tensors()) REQUIRE(sameBytes(t, (*b)->tensors().at(name)));
    CHECK_FALSE(sameBytes((*a)->weights().lmHead, (*other)->weights().lmHead));
    const auto& experts = (*a)->weights().layers[1].moe->experts;
    CHECK_FALSE(sameBytes(experts[0].upProj, experts[1].upProj));
}

TEST_CASE("random weights in F16 and invalid dtypes") {
    const ModelConfig c = tinyConfig();
    auto f16 = RandomWeights::create(c, DType::F16, 1, 0.5f);
    REQUIRE(f16.isOk());
    const auto v = toFloatVector((*f16)->weights().layers[0].attn.oProj);
    double sumSq = 0;
    for (float x : v) sumSq += double(x) * x;
    CHECK(std::sqrt(sumSq / double(v.size())) == doctest::Approx(0.5).epsilon(0.05));
    auto bad = RandomWeights::create(c, DType::F8_E4M3, 1);
    REQUIRE_FALSE(bad.isOk());
    CHECK(bad.status().code() == StatusCode::InvalidArgument);
}

TEST_CASE("pooled random weights: windows of one pool, the model's layout, unit norms, far less memory") {
    ModelConfig c = tinyConfig();
    c.numHiddenLayers = 12;  // more layers: the pool is reused many times over
    auto pooled = RandomWeights::createPooled(c, DType::BF16, 7, 1 << 20);
    REQUIRE_MESSAGE(pooled.isOk(), pooled.status().toString());
    const RandomWeights& rw = **pooled;
    CHECK(rw.tensors().size() == expectedTensors(c).size());
    CHECK(rw.bytes() < RandomWeights::bytesFor(c, DType::BF16));
    const ModelWeights& w = rw.weights();
    REQUIRE(w.layers.size() == 12);
    for (const TensorView* norm : {&w.norm, &w.layers[11].inputLayernorm, &w.layers[5].attn.kvALayernorm})
        for (float v : toFloatVector(*norm)) REQUIRE(v == 1.0f);
    // Every tensor lies inside the arena, 256-byte aligned, finite, N(0, 0.02)-like.
    double sumSq = 0;
    size_t n = 0;
    for (const auto& [name, t] : rw.tensors()) {
        CAPTURE(name);
        CHECK(reinterpret_cast<uintptr_t>(t.data) % 256 == 0);
        if (name.ends_with("layernorm.weight") || name == "model.norm.weight") continue;
        for (float v : toFloatVector(t)) {
            REQUIRE(std::isfinite(v));
            sumSq += double(v) * v;
            ++n;
        }
    }
    CHECK(std::sqrt(sumSq / double(n)) == doctest::Approx(0.02).epsilon(0.05));
    // Windows at different offsets: two tensors of one shape do not start at the same place.
    CHECK(w.layers[3].attn.oProj.data != w.layers[4].attn.oProj.data);
    CHECK_FALSE(RandomWeights::createPooled(c, DType::I32, 7, 1 << 20).isOk());
}
