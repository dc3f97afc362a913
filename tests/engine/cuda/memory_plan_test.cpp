// The CUDA backend's memory plan: host arithmetic only, so this suite runs without a GPU.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "cuda/memory_plan.h"
#include "cuda/mla_attention.h"
#include "model/model_config.h"
#include "test_data.h"

using namespace dsv2;

namespace {

ModelConfig lite() {
    ModelConfig c;
    c.vocabSize = 102400;
    c.hiddenSize = 2048;
    c.intermediateSize = 10944;
    c.moeIntermediateSize = 1408;
    c.numHiddenLayers = 27;
    c.numAttentionHeads = 16;
    c.kvLoraRank = 512;
    c.qkNopeHeadDim = 128;
    c.qkRopeHeadDim = 64;
    c.vHeadDim = 128;
    c.nRoutedExperts = 64;
    c.nSharedExperts = 2;
    c.numExpertsPerTok = 6;
    c.firstKDenseReplace = 1;
    c.maxPositionEmbeddings = 163840;
    return c;
}

constexpr int64_t kGiB = 1LL << 30;

}  // namespace

TEST_CASE("V2-Lite: 15.7B parameters, 31,104 KV bytes per token, fits an H200 with the full context") {
    const ModelConfig c = lite();
    const int64_t params = cuda::modelWeightBytes(c) / 2;
    CHECK(params > 15'600'000'000LL);
    CHECK(params < 15'800'000'000LL);
    CHECK(cuda::cacheBytesPerToken(c) == 31104);
    auto plan = cuda::planMemory(c, {}, 0, 140 * kGiB, 141 * kGiB, "NVIDIA H200");
    REQUIRE_MESSAGE(plan.isOk(), plan.status().toString());
    MESSAGE("V2-Lite on an H200: " << plan->describe());
    CHECK(plan->shape.cacheTokens == 163840);
    CHECK(plan->cacheBytes == 163840LL * 31104);
    CHECK(plan->neededBytes() <= 140 * kGiB);
    CHECK(plan->workspaceBytes > 0);
    CHECK(plan->workspaceBytes < 4 * kGiB);
}

TEST_CASE("automatic context shrinks to what fits; an explicit one is refused with the numbers") {
    const ModelConfig c = lite();
    const int64_t weights = cuda::modelWeightBytes(c);
    auto plan = cuda::planMemory(c, {}, 0, weights + 4 * kGiB, 80 * kGiB, "GPU");
    REQUIRE_MESSAGE(plan.isOk(), plan.status().toString());
    CHECK(plan->shape.cacheTokens < 163840);
    CHECK(plan->shape.cacheTokens >= 4096);
    CHECK(plan->shape.cacheTokens % 64 == 0);
    CHECK(plan->neededBytes() <= weights + 4 * kGiB);

    auto refused = cuda::planMemory(c, {}, 163840, weights + 4 * kGiB, 80 * kGiB, "NVIDIA L40S");
    REQUIRE_FALSE(refused.isOk());
    MESSAGE(refused.status().toString());
    CHECK(refused.status().code() == StatusCode::ResourceExhausted);
    const std::string msg = refused.status().message();
    CHECK(msg.find("NVIDIA L40S") != std::string::npos);
    CHECK(msg.find("163840 tokens") != std::string::npos);
    CHECK(msg.find("GiB") != std::string::npos);
    CHECK(msg.find("--context") != std::string::npos);
}

TEST_CASE("a model whose weights alone do not fit says so") {
    ModelConfig v2 = lite();  // V2 236B-like sizes
    v2.hiddenSize = 5120;
    v2.numHiddenLayers = 60;
    v2.numAttentionHeads = 128;
    v2.nRoutedExperts = 160;
    v2.moeIntermediateSize = 1536;
    v2.intermediateSize = 12288;
    v2.qLoraRank = 1536;
    CHECK(cuda::modelWeightBytes(v2) > 400 * kGiB);
    auto refused = cuda::planMemory(v2, {}, 0, 139 * kGiB, 141 * kGiB, "NVIDIA H200");
    REQUIRE_FALSE(refused.isOk());
    CHECK(refused.status().message().find("weights alone do not fit") != std::string::npos);
}

TEST_CASE("the tiny fixture's config plans a small workspace") {
    auto c = loadModelConfig(dsv2::test::tinyLiteDir() / "config.json");
    REQUIRE(c.isOk());
    auto plan = cuda::planMemory(*c, {}, 4096, 8 * kGiB, 8 * kGiB, "GPU");
    REQUIRE(plan.isOk());
    CHECK(plan->shape.cacheTokens == 4096);
    CHECK(plan->cacheBytes == 4096LL * 3 * 40 * 2);
    CHECK(plan->describe().find("4096 tokens") != std::string::npos);
}

TEST_CASE("the shipped V2-Lite and V2 configs (dsv2 bench --random-weights) parse and plan as expected") {
    const auto dir = std::filesystem::path(__FILE__).parent_path() / "configs";
    auto lite = loadModelConfig(dir / "deepseek-v2-lite.json");
    REQUIRE_MESSAGE(lite.isOk(), lite.status().toString());
    CHECK(cuda::modelWeightBytes(*lite) == cuda::modelWeightBytes(::lite()));
    CHECK(cuda::planMemory(*lite, {}, 0, 139 * kGiB, 141 * kGiB, "NVIDIA H200").isOk());
    auto v2 = loadModelConfig(dir / "deepseek-v2.json");
    REQUIRE_MESSAGE(v2.isOk(), v2.status().toString());
    CHECK(v2->topkMethod == TopkMethod::GroupLimitedGreedy);
    CHECK(cuda::cacheBytesPerToken(*v2) == 69120);
    const int64_t params = cuda::modelWeightBytes(*v2) / 2;
    MESSAGE("V2 parameters: " << params);
    CHECK(params > 235'000'000'000LL);
    CHECK(params < 237'000'000'000LL);
    CHECK_FALSE(cuda::planMemory(*v2, {}, 0, 139 * kGiB, 141 * kGiB, "NVIDIA H200").isOk());
}

TEST_CASE("the GEMM form's prefill score block is planned only where Auto may take that form") {
    if (std::getenv("DSV2_MLA_PREFILL")) {
        MESSAGE("DSV2_MLA_PREFILL is set: the GEMM form is asked for everywhere; skipped");
        return;
    }
    cuda::MlaGeometry deepseek;  // V2's head dims: the tensor-core flash kernel takes every prefill
    deepseek.n_heads = 16;
    deepseek.d_nope = 128;
    deepseek.d_rope = 64;
    deepseek.d_v = 128;
    deepseek.kv_lora = 512;
    cuda::MlaGeometry small = deepseek;  // the tiny test models' dims: the GEMM form
    small.d_nope = 16;
    small.d_rope = 8;
    small.d_v = 16;
    small.kv_lora = 32;
    CHECK_FALSE(cuda::mlaPrefillMayUseGemmForm(deepseek));
    CHECK(cuda::mlaPrefillMayUseGemmForm(small));
    // 4096 queries × 16 heads × 8192 keys is past the 48 Mi cap: 288 MiB of fp32 scores + bf16 P.
    const int64_t with = cuda::MlaScratch::bytesFor(deepseek, 4096, 132, 8192, true);
    const int64_t without = cuda::MlaScratch::bytesFor(deepseek, 4096, 132, 8192, false);
    CHECK(with - without == (int64_t{48} << 20) * 6);
}
