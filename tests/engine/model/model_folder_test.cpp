#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "model/model_folder.h"
#include "model/safetensors_checkpoint.h"
#include "model/safetensors_header.h"
#include "safetensors_builder.h"
#include "test_data.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

using namespace dsv2;
using namespace dsv2::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

bool mentions(const Status& s, const std::string& part) { return s.message().find(part) != std::string::npos; }

// A safetensors file split into its header JSON and data bytes, to be edited and written back.
struct EditableCheckpoint {
    json header;
    std::vector<std::byte> data;

    static EditableCheckpoint load(const fs::path& path) {
        const auto bytes = readBytes(path);
        uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
        EditableCheckpoint c;
        c.header = json::parse(reinterpret_cast<const char*>(bytes.data() + 8),
                               reinterpret_cast<const char*>(bytes.data() + 8 + n));
        c.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(8 + n), bytes.end());
        return c;
    }
    void save(const fs::path& path) const {
        auto bytes = safetensorsBytes(header.dump(), 0);
        bytes.insert(bytes.end(), data.begin(), data.end());
        writeBytes(path, bytes);
    }
};

// tiny-lite copied into a temp dir, ready to be damaged.
struct TinyCopy {
    TempDir tmp;
    fs::path dir;
    TinyCopy() : dir(tmp.path() / "tiny-lite") { copyFolder(tinyLiteDir(), dir); }
    fs::path weights() const { return dir / "model.safetensors"; }
};

Status openStatus(const fs::path& dir) {
    auto folder = ModelFolder::open(dir);
    return folder.status();
}

// Splits tiny-lite into shards (by layer) plus model.safetensors.index.json.
void shardTinyLite(const fs::path& dir, int shardCount) {
    const auto single = EditableCheckpoint::load(dir / "model.safetensors");
    std::vector<std::vector<TensorSpec>> shards(static_cast<size_t>(shardCount));
    json weightMap = json::object();
    size_t i = 0;
    for (const auto& [name, entry] : single.header.items()) {
        if (name == "__metadata__") continue;
        const size_t s = i++ % static_cast<size_t>(shardCount);
        const uint64_t b = entry["data_offsets"][0], e = entry["data_offsets"][1];
        TensorSpec spec{name, entry["dtype"], entry["shape"].get<std::vector<int64_t>>(),
                        std::vector<std::byte>(single.data.begin() + static_cast<std::ptrdiff_t>(b),
                                               single.data.begin() + static_cast<std::ptrdiff_t>(e))};
        shards[s].push_back(std::move(spec));
        weightMap[name] =
            "model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shardCount) + ".safetensors";
    }
    for (size_t s = 0; s < shards.size(); ++s)
        writeBytes(
            dir / ("model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shardCount) + ".safetensors"),
            safetensorsBytes(shards[s]));
    fs::remove(dir / "model.safetensors");
    writeText(dir / "model.safetensors.index.json",
              json{{"metadata", {{"total_size", single.data.size()}}}, {"weight_map", weightMap}}.dump(2));
}

}  // namespace

TEST_CASE("tiny-lite opens: config, every weight bound, generation defaults") {
    auto folder = ModelFolder::open(tinyLiteDir());
    REQUIRE_MESSAGE(folder.isOk(), folder.status().toString());
    const ModelFolder& f = **folder;
    CHECK(f.name() == "tiny-lite");
    CHECK(f.config().hiddenSize == 64);
    CHECK(f.weightFileBytes() == fs::file_size(tinyLiteDir() / "model.safetensors"));

    const ModelWeights& w = f.weights();
    CHECK(w.embedTokens.shape == std::vector<int64_t>{512, 64});
    CHECK(w.lmHead.shape == std::vector<int64_t>{512, 64});
    CHECK(w.norm.shape == std::vector<int64_t>{64});
    REQUIRE(w.layers.size() == 3);
    CHECK(w.layers[0].denseMlp.has_value());
    CHECK_FALSE(w.layers[0].moe.has_value());
    CHECK(w.layers[0].denseMlp->gateProj.shape == std::vector<int64_t>{128, 64});
    for (size_t l = 1; l < 3; ++l) {
        const LayerWeights& L = w.layers[l];
        REQUIRE(L.moe.has_value());
        CHECK_FALSE(L.denseMlp.has_value());
        CHECK(L.moe->gate.shape == std::vector<int64_t>{8, 64});
        REQUIRE(L.moe->experts.size() == 8);
        CHECK(L.moe->experts[7].downProj.shape == std::vector<int64_t>{64, 32});
        CHECK(L.moe->sharedExperts.upProj.shape == std::vector<int64_t>{64, 64});  // 2 shared × 32
        CHECK_FALSE(L.attn.hasQLora());
        CHECK(L.attn.qProj.shape == std::vector<int64_t>{96, 64});  // 4 heads × (16 + 8)
        CHECK(L.attn.kvAProjWithMqa.shape == std::vector<int64_t>{40, 64});
        CHECK(L.attn.kvBProj.shape == std::vector<int64_t>{128, 32});  // 4 × (16 + 16)
        CHECK(L.attn.oProj.shape == std::vector<int64_t>{64, 64});
        CHECK(L.moe->experts[3].gateProj.name ==
              "model.layers." + std::to_string(l) + ".mlp.experts.3.gate_proj.weight");
    }

    // The views point at the file's bytes: compare with a plain read of the file.
    const auto raw = readBytes(tinyLiteDir() / "model.safetensors");
    auto header = parseSafetensorsHeader(raw, "model.safetensors");
    REQUIRE(header.isOk());
    for (const auto& e : header->tensors) {
        if (e.name != "model.layers.2.mlp.experts.5.up_proj.weight") continue;
        const TensorView& t = w.layers[2].moe->experts[5].upProj;
        REQUIRE(t.nbytes == e.end - e.begin);
        CHECK(std::memcmp(t.data, raw.data() + header->dataStart + e.begin, t.nbytes) == 0);
        uint16_t bits;
        std::memcpy(&bits, raw.data() + header->dataStart + e.begin + 2 * 37, 2);
        CHECK(readElement(t, 37) == bf16ToFloat(bits));
    }
    // Norm weights of a random HF init are ones; a sanity check that we read the right bytes.
    CHECK(readElement(w.norm, 0) != 0.0f);

    const GenerationDefaults& g = f.generationDefaults();
    CHECK(g.temperature == 0.3);
    CHECK(g.topP == 0.95);
    CHECK(g.doSample == true);
    CHECK_FALSE(g.topK.has_value());
}

TEST_CASE("a sharded folder opens to the same weights as the single file") {
    TinyCopy copy;
    shardTinyLite(copy.dir, 3);
    auto sharded = ModelFolder::open(copy.dir);
    REQUIRE_MESSAGE(sharded.isOk(), sharded.status().toString());
    CHECK((*sharded)->checkpoint().sharded());
    CHECK((*sharded)->checkpoint().shards().size() == 3);
    auto single = ModelFolder::open(tinyLiteDir());
    REQUIRE(single.isOk());
    const auto& a = (*single)->weights();
    const auto& b = (*sharded)->weights();
    const auto same = [](const TensorView& x, const TensorView& y) {
        return x.shape == y.shape && x.dtype == y.dtype && x.nbytes == y.nbytes &&
               std::memcmp(x.data, y.data, x.nbytes) == 0;
    };
    CHECK(same(a.embedTokens, b.embedTokens));
    CHECK(same(a.lmHead, b.lmHead));
    for (size_t l = 0; l < a.layers.size(); ++l) {
        CHECK(same(a.layers[l].attn.kvBProj, b.layers[l].attn.kvBProj));
        if (a.layers[l].moe)
            for (size_t e = 0; e < a.layers[l].moe->experts.size(); ++e)
                CHECK(same(a.layers[l].moe->experts[e].downProj, b.layers[l].moe->experts[e].downProj));
    }
}

TEST_CASE("prefetch reads every shard with progress and can be cancelled") {
    TinyCopy copy;
    shardTinyLite(copy.dir, 3);
    auto folder = ModelFolder::open(copy.dir);
    REQUIRE_MESSAGE(folder.isOk(), folder.status().toString());
    const SafetensorsCheckpoint& ckpt = (*folder)->checkpoint();
    const uint64_t total = ckpt.fileBytes();
    const size_t chunk = 50000;  // several chunks per shard

    std::vector<uint64_t> seen;
    Status st = ckpt.prefetch(
        [&](uint64_t done, uint64_t t) {
            CHECK(t == total);
            seen.push_back(done);
            return true;
        },
        chunk);
    REQUIRE_MESSAGE(st.isOk(), st.toString());
    REQUIRE(seen.size() > 3);
    CHECK(seen.front() == 0);
    CHECK(seen.back() == total);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    for (size_t i = 1; i < seen.size(); ++i) CHECK(seen[i] - seen[i - 1] <= chunk);

    int calls = 0;
    st = ckpt.prefetch([&](uint64_t, uint64_t) { return ++calls < 3; }, chunk);
    CHECK(st.code() == StatusCode::Cancelled);
    CHECK(calls == 3);                       // stopped at the first "no"
    CHECK(ckpt.prefetch({}, chunk).isOk());  // no callback: just reads
}

TEST_CASE("sharded folder problems: missing shard, index that lies, bad index JSON") {
    TinyCopy copy;
    shardTinyLite(copy.dir, 2);
    SUBCASE("a shard is missing") {
        fs::remove(copy.dir / "model-00002-of-00002.safetensors");
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::NotFound);
        CHECK(mentions(s, "model-00002-of-00002.safetensors"));
    }
    SUBCASE("the index puts a tensor in the wrong shard") {
        json index = json::parse(readText(copy.dir / "model.safetensors.index.json"));
        const std::string shard = index["weight_map"]["lm_head.weight"];
        index["weight_map"]["lm_head.weight"] = shard == "model-00001-of-00002.safetensors"
                                                    ? "model-00002-of-00002.safetensors"
                                                    : "model-00001-of-00002.safetensors";
        writeText(copy.dir / "model.safetensors.index.json", index.dump());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "'lm_head.weight'"));
    }
    SUBCASE("the index escapes the folder") {
        json index = json::parse(readText(copy.dir / "model.safetensors.index.json"));
        index["weight_map"]["lm_head.weight"] = "../elsewhere.safetensors";
        writeText(copy.dir / "model.safetensors.index.json", index.dump());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "inside the model folder"));
    }
    SUBCASE("bad index JSON") {
        writeText(copy.dir / "model.safetensors.index.json", "{\"weight_map\": {");
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::InvalidData);
        CHECK(mentions(s, "model.safetensors.index.json"));
    }
    SUBCASE("a truncated shard is named") {
        const auto bytes = readBytes(copy.dir / "model-00002-of-00002.safetensors");
        writeBytes(
            copy.dir / "model-00002-of-00002.safetensors",
            std::vector<std::byte>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2)));
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "model-00002-of-00002.safetensors"));
        CHECK(mentions(s, "truncated"));
    }
}

TEST_CASE("malformed folders give one clear error, never a crash") {
    TinyCopy copy;
    SUBCASE("truncated weights file") {
        const auto bytes = readBytes(copy.weights());
        writeBytes(copy.weights(), std::vector<std::byte>(bytes.begin(), bytes.begin() + 300000));
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::InvalidData);
        CHECK(mentions(s, "model.safetensors"));
        CHECK(mentions(s, "truncated"));
    }
    SUBCASE("truncated inside the header") {
        const auto bytes = readBytes(copy.weights());
        writeBytes(copy.weights(), std::vector<std::byte>(bytes.begin(), bytes.begin() + 100));
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "header length"));
    }
    SUBCASE("empty weights file") {
        writeBytes(copy.weights(), {});
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "too short"));
    }
    SUBCASE("header lies about a tensor's size") {
        auto c = EditableCheckpoint::load(copy.weights());
        c.header["model.norm.weight"]["shape"] = {65};
        c.save(copy.weights());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "'model.norm.weight'"));
        CHECK(mentions(s, "needs 130"));
    }
    SUBCASE("overlapping offsets") {
        auto c = EditableCheckpoint::load(copy.weights());
        const auto lm = c.header["lm_head.weight"]["data_offsets"];
        const uint64_t begin = lm[0];
        const uint64_t size = uint64_t{c.header["model.norm.weight"]["data_offsets"][1]} -
                              uint64_t{c.header["model.norm.weight"]["data_offsets"][0]};
        c.header["model.norm.weight"]["data_offsets"] = {begin + 2, begin + 2 + size};
        c.save(copy.weights());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "overlap"));
        CHECK(mentions(s, "'model.norm.weight'"));
    }
    SUBCASE("missing tensors are listed with their expected shapes") {
        auto c = EditableCheckpoint::load(copy.weights());
        c.header.erase("model.layers.1.mlp.experts.6.down_proj.weight");
        c.header.erase("model.layers.0.self_attn.kv_b_proj.weight");
        c.save(copy.weights());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::NotFound);
        CHECK(mentions(s, "missing (2)"));
        CHECK(mentions(s, "model.layers.1.mlp.experts.6.down_proj.weight [64, 32]"));
        CHECK(mentions(s, "model.layers.0.self_attn.kv_b_proj.weight [128, 32]"));
    }
    SUBCASE("wrong shape names the tensor and the config keys behind it") {
        auto c = EditableCheckpoint::load(copy.weights());
        c.header["model.layers.2.self_attn.q_proj.weight"]["shape"] = {64, 96};  // same bytes, transposed
        c.save(copy.weights());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::InvalidData);
        CHECK(
            mentions(s, "model.layers.2.self_attn.q_proj.weight: [64, 96] in the file, config.json implies [96, 64]"));
        CHECK(mentions(s, "num_attention_heads 4"));
    }
    SUBCASE("config heads disagree with the tensors") {
        json config = json::parse(readText(copy.dir / "config.json"));
        config["num_attention_heads"] = 8;
        config["num_key_value_heads"] = 8;
        writeText(copy.dir / "config.json", config.dump());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "wrong shape (9)"));  // q_proj, kv_b_proj, o_proj in 3 layers
    }
    SUBCASE("unexpected tensors are listed") {
        auto c = EditableCheckpoint::load(copy.weights());
        c.header["model.layers.1.mlp.experts.8.up_proj.weight"] =
            c.header["model.layers.1.mlp.experts.7.up_proj.weight"];
        c.header.erase("model.layers.1.mlp.experts.7.up_proj.weight");
        c.save(copy.weights());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "unexpected (1)"));
        CHECK(mentions(s, "model.layers.1.mlp.experts.8.up_proj.weight [32, 64] BF16"));
        CHECK(mentions(s, "missing (1)"));
    }
    SUBCASE("fp8 weights are Unsupported and the tensor is named") {
        auto c = EditableCheckpoint::load(copy.weights());
        c.header["model.layers.1.mlp.gate.weight"]["dtype"] = "F8_E4M3";
        c.header["model.layers.1.mlp.gate.weight"]["shape"] = {16, 64};  // same bytes, 1 byte per value
        c.save(copy.weights());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::Unsupported);
        CHECK(mentions(s, "model.layers.1.mlp.gate.weight [16, 64] F8_E4M3"));
        CHECK(mentions(s, "not supported yet"));
    }
    SUBCASE("bad JSON in config.json") {
        const std::string text = readText(copy.dir / "config.json");
        writeText(copy.dir / "config.json", text.substr(0, text.size() / 2));
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::InvalidData);
        CHECK(mentions(s, "config.json"));
        CHECK(mentions(s, "not valid JSON"));
    }
    SUBCASE("missing config key") {
        json config = json::parse(readText(copy.dir / "config.json"));
        config.erase("v_head_dim");
        writeText(copy.dir / "config.json", config.dump());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "\"v_head_dim\""));
    }
    SUBCASE("n_routed_experts not divisible by n_group") {
        json config = json::parse(readText(copy.dir / "config.json"));
        config["topk_method"] = "group_limited_greedy";
        config["n_group"] = 3;
        writeText(copy.dir / "config.json", config.dump());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "\"n_routed_experts\" (8) is not divisible by \"n_group\" (3)"));
    }
    SUBCASE("unknown model_type") {
        json config = json::parse(readText(copy.dir / "config.json"));
        config["model_type"] = "mixtral";
        writeText(copy.dir / "config.json", config.dump());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::Unsupported);
        CHECK(mentions(s, "mixtral"));
    }
    SUBCASE("no config.json") {
        fs::remove(copy.dir / "config.json");
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::NotFound);
        CHECK(mentions(s, "config.json"));
    }
    SUBCASE("no weights") {
        fs::remove(copy.weights());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::NotFound);
        CHECK(mentions(s, "model.safetensors"));
    }
    SUBCASE("bad generation_config.json") {
        writeText(copy.dir / "generation_config.json", "{\"temperature\": \"hot\"}");
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "generation_config.json"));
        CHECK(mentions(s, "\"temperature\""));
    }
    SUBCASE("not a folder") {
        const Status s = openStatus(copy.dir / "nope");
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::NotFound);
    }
}

TEST_CASE("optional files may be absent") {
    TinyCopy copy;
    fs::remove(copy.dir / "generation_config.json");
    auto folder = ModelFolder::open(copy.dir);
    REQUIRE_MESSAGE(folder.isOk(), folder.status().toString());
    CHECK_FALSE((*folder)->generationDefaults().temperature.has_value());
}

TEST_CASE("the folder's tokenizer is loaded, and a missing or broken one is named") {
    auto folder = ModelFolder::open(tinyLiteDir());
    REQUIRE_MESSAGE(folder.isOk(), folder.status().toString());
    CHECK((*folder)->tokenizer().size() == 512);
    CHECK((*folder)->tokenizer().size() <= (*folder)->config().vocabSize);

    TinyCopy copy;
    SUBCASE("missing tokenizer.json") {
        fs::remove(copy.dir / "tokenizer.json");
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(s.code() == StatusCode::NotFound);
        CHECK(mentions(s, "tokenizer.json"));
    }
    SUBCASE("broken tokenizer.json") {
        const std::string text = readText(copy.dir / "tokenizer.json");
        writeText(copy.dir / "tokenizer.json", text.substr(0, text.size() / 3));
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "tokenizer.json"));
    }
    SUBCASE("a tokenizer larger than the embedding") {
        json config = json::parse(readText(copy.dir / "config.json"));
        config["vocab_size"] = 256;
        config["bos_token_id"] = 0;
        config["eos_token_id"] = 1;
        writeText(copy.dir / "config.json", config.dump());
        auto c = EditableCheckpoint::load(copy.weights());
        // Keep the weights consistent with vocab 256 so that only the tokenizer check can fail.
        c.header["model.embed_tokens.weight"]["shape"] = {256, 64};
        c.header["model.embed_tokens.weight"]["data_offsets"][1] =
            uint64_t{c.header["model.embed_tokens.weight"]["data_offsets"][0]} + 256 * 64 * 2;
        c.header["lm_head.weight"]["shape"] = {256, 64};
        c.header["lm_head.weight"]["data_offsets"][1] =
            uint64_t{c.header["lm_head.weight"]["data_offsets"][0]} + 256 * 64 * 2;
        c.save(copy.weights());
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "vocab_size 256"));
    }
}

TEST_CASE("the folder's chat template is loaded; without tokenizer_config.json there is none") {
    auto folder = ModelFolder::open(tinyLiteDir());
    REQUIRE_MESSAGE(folder.isOk(), folder.status().toString());
    REQUIRE((*folder)->chatTemplate() != nullptr);
    CHECK((*folder)->chatTemplate()->source().find("Assistant:") != std::string::npos);

    TinyCopy copy;
    SUBCASE("no tokenizer_config.json") {
        fs::remove(copy.dir / "tokenizer_config.json");
        auto bare = ModelFolder::open(copy.dir);
        REQUIRE_MESSAGE(bare.isOk(), bare.status().toString());
        CHECK((*bare)->chatTemplate() == nullptr);
    }
    SUBCASE("tokenizer_config.json without a chat_template") {
        writeText(copy.dir / "tokenizer_config.json", R"({"bos_token": "a", "eos_token": "b"})");
        auto bare = ModelFolder::open(copy.dir);
        REQUIRE_MESSAGE(bare.isOk(), bare.status().toString());
        CHECK((*bare)->chatTemplate() == nullptr);
    }
    SUBCASE("bad JSON in tokenizer_config.json") {
        writeText(copy.dir / "tokenizer_config.json", R"({"chat_template": "{{ bos_token }})");
        const Status s = openStatus(copy.dir);
        REQUIRE_FALSE(s.isOk());
        CHECK(mentions(s, "tokenizer_config.json"));
    }
}
