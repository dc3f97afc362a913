#include <doctest/doctest.h>

#include <cmath>

#include "config_fixtures.h"
#include "model/model_config.h"
#include "test_data.h"

using namespace dsv2;
using nlohmann::json;

namespace {
Result<ModelConfig> parseJson(const json& j) { return parseModelConfig(j.dump(), "config.json"); }
bool mentions(const Status& s, const std::string& part) { return s.message().find(part) != std::string::npos; }
}  // namespace

TEST_CASE("the tiny-lite fixture's config.json parses with every key") {
    auto c = loadModelConfig(test::tinyLiteDir() / "config.json");
    REQUIRE_MESSAGE(c.isOk(), c.status().toString());
    CHECK(c->modelType == "deepseek_v2");
    CHECK(c->architecture == "DeepseekV2ForCausalLM");
    CHECK(c->vocabSize == 512);
    CHECK(c->hiddenSize == 64);
    CHECK(c->numHiddenLayers == 3);
    CHECK(c->numAttentionHeads == 4);
    CHECK_FALSE(c->qLoraRank.has_value());
    CHECK(c->kvLoraRank == 32);
    CHECK(c->qHeadDim() == 24);
    CHECK(c->latentCacheDim() == 40);
    CHECK(c->nRoutedExperts == 8);
    CHECK(c->nSharedExperts == 2);
    CHECK(c->numExpertsPerTok == 2);
    CHECK(c->topkMethod == TopkMethod::Greedy);
    CHECK_FALSE(c->isMoeLayer(0));
    CHECK(c->isMoeLayer(1));
    CHECK(c->ropeScaling.yarn);
    CHECK(c->ropeScaling.factor == 40.0);
    CHECK(c->ropeScaling.mscaleAllDim == doctest::Approx(0.707));
    CHECK(c->ropeScaling.originalMaxPositionEmbeddings == 4096);
    CHECK(c->bosTokenId == 510);
    CHECK(c->eosTokenId == 511);
}

TEST_CASE("V2-Lite, V2 and V2.5 configs: routing keys and the YaRN softmax scale") {
    auto lite = parseJson(test::liteConfigJson());
    REQUIRE_MESSAGE(lite.isOk(), lite.status().toString());
    CHECK_FALSE(lite->qLoraRank);
    CHECK(lite->topkMethod == TopkMethod::Greedy);
    // (128 + 64)^-0.5 · m², m = 0.1 · 0.707 · ln 40 + 1 (REFERENCE.md: m² ≈ 1.5896, scale ≈ 0.11472).
    const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
    CHECK(m * m == doctest::Approx(1.5896).epsilon(1e-4));
    CHECK(lite->softmaxScale() == doctest::Approx(m * m / std::sqrt(192.0)).epsilon(1e-12));
    CHECK(lite->softmaxScale() == doctest::Approx(0.11472).epsilon(1e-4));
    CHECK(lite->ropeAmplitude() == doctest::Approx(1.0));

    auto v2 = parseJson(test::v2ConfigJson());
    REQUIRE_MESSAGE(v2.isOk(), v2.status().toString());
    CHECK(v2->qLoraRank == 1536);
    CHECK(v2->topkMethod == TopkMethod::GroupLimitedGreedy);
    CHECK(v2->nGroup == 8);
    CHECK(v2->topkGroup == 3);
    CHECK(v2->routedScalingFactor == 16.0);

    auto v25 = parseJson(test::v25ConfigJson());
    REQUIRE(v25.isOk());
    CHECK(v25->softmaxScale() * std::sqrt(192.0) == doctest::Approx(1.8739).epsilon(1e-4));
    CHECK(v25->ropeAmplitude() == doctest::Approx(1.0));
}

TEST_CASE("rope scaling variants") {
    json j = test::liteConfigJson();
    SUBCASE("no rope_scaling: plain scale") {
        j["rope_scaling"] = nullptr;
        auto c = parseJson(j);
        REQUIRE(c.isOk());
        CHECK_FALSE(c->ropeScaling.yarn);
        CHECK(c->softmaxScale() == doctest::Approx(1.0 / std::sqrt(192.0)));
    }
    SUBCASE("mscale_all_dim absent: no m², amplitude m(mscale)") {
        j["rope_scaling"].erase("mscale_all_dim");
        auto c = parseJson(j);
        REQUIRE(c.isOk());
        CHECK(c->softmaxScale() == doctest::Approx(1.0 / std::sqrt(192.0)));
        CHECK(c->ropeAmplitude() == doctest::Approx(0.1 * 0.707 * std::log(40.0) + 1.0));
    }
    SUBCASE("rope_type spelling of newer transformers") {
        j["rope_scaling"].erase("type");
        j["rope_scaling"]["rope_type"] = "yarn";
        auto c = parseJson(j);
        REQUIRE(c.isOk());
        CHECK(c->ropeScaling.yarn);
    }
    SUBCASE("linear scaling is not supported") {
        j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(c.status().code() == StatusCode::Unsupported);
        CHECK(mentions(c.status(), "rope_scaling.type"));
    }
    SUBCASE("yarn without factor") {
        j["rope_scaling"].erase("factor");
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "rope_scaling.factor"));
    }
}

TEST_CASE("missing and inconsistent keys are errors that name the key") {
    json j = test::liteConfigJson();
    SUBCASE("missing kv_lora_rank") {
        j.erase("kv_lora_rank");
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(c.status().code() == StatusCode::InvalidData);
        CHECK(mentions(c.status(), "\"kv_lora_rank\""));
        CHECK(mentions(c.status(), "config.json"));
    }
    SUBCASE("missing q_lora_rank (null is fine, absent is not)") {
        j.erase("q_lora_rank");
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "\"q_lora_rank\""));
    }
    SUBCASE("several problems are listed together") {
        j.erase("hidden_size");
        j["num_attention_heads"] = "sixteen";
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "2 problems"));
        CHECK(mentions(c.status(), "\"hidden_size\""));
        CHECK(mentions(c.status(), "\"num_attention_heads\" must be an integer"));
    }
    SUBCASE("n_routed_experts not divisible by n_group") {
        j = test::v2ConfigJson();
        j["n_group"] = 7;
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "\"n_routed_experts\" (160) is not divisible by \"n_group\" (7)"));
    }
    SUBCASE("topk_group larger than n_group") {
        j = test::v2ConfigJson();
        j["topk_group"] = 9;
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "\"topk_group\""));
    }
    SUBCASE("more experts per token than experts") {
        j["num_experts_per_tok"] = 65;
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "\"num_experts_per_tok\""));
    }
    SUBCASE("unknown topk_method") {
        j["topk_method"] = "random";
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "\"topk_method\""));
    }
    SUBCASE("V3's sigmoid routing is unsupported") {
        j["scoring_func"] = "sigmoid";
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(c.status().code() == StatusCode::Unsupported);
        CHECK(mentions(c.status(), "\"scoring_func\""));
    }
    SUBCASE("odd rope head dim") {
        j["qk_rope_head_dim"] = 63;
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "\"qk_rope_head_dim\""));
    }
    SUBCASE("first_k_dense_replace past the last layer") {
        j["first_k_dense_replace"] = 28;
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "\"first_k_dense_replace\""));
    }
    SUBCASE("eos outside the vocabulary") {
        j["eos_token_id"] = 200000;
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "\"eos_token_id\""));
    }
}

TEST_CASE("the wrong model family is named as such") {
    json j = test::liteConfigJson();
    SUBCASE("unknown model_type") {
        j["model_type"] = "llama";
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(c.status().code() == StatusCode::Unsupported);
        CHECK(mentions(c.status(), "\"model_type\" is \"llama\""));
    }
    SUBCASE("V3 architecture") {
        j["architectures"] = {"DeepseekV3ForCausalLM"};
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "DeepseekV3ForCausalLM"));
    }
    SUBCASE("no model_type") {
        j.erase("model_type");
        auto c = parseJson(j);
        REQUIRE_FALSE(c.isOk());
        CHECK(mentions(c.status(), "\"model_type\""));
    }
}

TEST_CASE("malformed JSON and missing files") {
    auto bad = parseModelConfig("{\"vocab_size\": 5,", "some/config.json");
    REQUIRE_FALSE(bad.isOk());
    CHECK(bad.status().code() == StatusCode::InvalidData);
    CHECK(mentions(bad.status(), "some/config.json"));
    CHECK(mentions(bad.status(), "not valid JSON"));
    CHECK_FALSE(parseModelConfig("[1]", "c").isOk());
    auto missing = loadModelConfig("/nonexistent/config.json");
    REQUIRE_FALSE(missing.isOk());
    CHECK(missing.status().code() == StatusCode::NotFound);
}
