#include "model/model_config.h"

#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsv2 {
namespace {

using Json = nlohmann::json;

const char* jsonTypeName(const Json& v) { return v.type_name(); }

// Reads keys out of the config object and collects every problem, so that one error lists them
// all instead of making the user fix them one run at a time.
class KeyReader {
public:
    KeyReader(const Json& root, std::string source) : m_root(root), m_source(std::move(source)) {}

    bool has(const char* key) const { return m_root.contains(key) && !m_root.at(key).is_null(); }

    int64_t requiredInt(const char* key) {
        if (!m_root.contains(key)) {
            problem(std::string("missing required key \"") + key + "\"");
            return 0;
        }
        return asInt(key, m_root.at(key));
    }
    int64_t optionalInt(const char* key, int64_t fallback) {
        return has(key) ? asInt(key, m_root.at(key)) : fallback;
    }
    std::optional<int64_t> nullableInt(const char* key) {  // present, null or integer
        if (!m_root.contains(key)) {
            problem(std::string("missing required key \"") + key + "\" (write null when unused)");
            return std::nullopt;
        }
        if (m_root.at(key).is_null()) return std::nullopt;
        return asInt(key, m_root.at(key));
    }
    double optionalDouble(const char* key, double fallback) { return readDouble(m_root, key, key, fallback); }
    bool optionalBool(const char* key, bool fallback) {
        if (!has(key)) return fallback;
        const Json& v = m_root.at(key);
        if (!v.is_boolean()) {
            problem(std::string("\"") + key + "\" must be true or false, found " + jsonTypeName(v));
            return fallback;
        }
        return v.get<bool>();
    }
    std::string optionalString(const char* key, const std::string& fallback) {
        if (!has(key)) return fallback;
        const Json& v = m_root.at(key);
        if (!v.is_string()) {
            problem(std::string("\"") + key + "\" must be a string, found " + jsonTypeName(v));
            return fallback;
        }
        return v.get<std::string>();
    }
    double readDouble(const Json& obj, const char* key, const std::string& label, double fallback) {
        if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
        const Json& v = obj.at(key);
        if (!v.is_number()) {
            problem("\"" + label + "\" must be a number, found " + jsonTypeName(v));
            return fallback;
        }
        return v.get<double>();
    }
    int64_t asInt(const std::string& label, const Json& v) {
        if (v.is_number_integer()) return v.get<int64_t>();
        // Some tools write 4096.0; accept integral floats.
        if (v.is_number_float()) {
            const double d = v.get<double>();
            if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
        }
        problem("\"" + label + "\" must be an integer, found " + (v.is_number() ? v.dump() : jsonTypeName(v)));
        return 0;
    }

    void problem(std::string text, StatusCode code = StatusCode::InvalidData) {
        // Unsupported only when every problem is "valid but not handled yet".
        if (code != StatusCode::Unsupported) m_anyInvalid = true;
        m_problems.push_back(std::move(text));
    }
    bool ok() const { return m_problems.empty(); }
    Status status() const {
        const StatusCode code = m_anyInvalid ? StatusCode::InvalidData : StatusCode::Unsupported;
        std::string message = m_source + ": ";
        if (m_problems.size() == 1) return {code, message + m_problems.front()};
        message += std::to_string(m_problems.size()) + " problems:";
        for (const auto& p : m_problems) message += "\n  - " + p;
        return {code, message};
    }

private:
    const Json& m_root;
    std::string m_source;
    std::vector<std::string> m_problems;
    bool m_anyInvalid = false;
};

void parseRopeScaling(KeyReader& r, const Json& root, RopeScaling& out) {
    if (!root.contains("rope_scaling") || root.at("rope_scaling").is_null()) return;
    const Json& rs = root.at("rope_scaling");
    if (!rs.is_object()) {
        r.problem(std::string("\"rope_scaling\" must be an object or null, found ") + jsonTypeName(rs));
        return;
    }
    // transformers ≥ 4.45 writes "rope_type", older configs "type".
    std::string type;
    for (const char* key : {"type", "rope_type"}) {
        if (rs.contains(key) && rs.at(key).is_string()) type = rs.at(key).get<std::string>();
    }
    if (type.empty()) {
        r.problem("\"rope_scaling.type\" is missing (expected \"yarn\")");
        return;
    }
    if (type == "default") return;
    if (type != "yarn") {
        r.problem("\"rope_scaling.type\" is \"" + type + "\"; only \"yarn\" (the DeepSeek-V2 family's) is supported",
                  StatusCode::Unsupported);
        return;
    }
    out.yarn = true;
    if (!rs.contains("factor")) r.problem("missing required key \"rope_scaling.factor\"");
    out.factor = r.readDouble(rs, "factor", "rope_scaling.factor", 1.0);
    out.mscale = r.readDouble(rs, "mscale", "rope_scaling.mscale", 1.0);
    out.mscaleAllDim = r.readDouble(rs, "mscale_all_dim", "rope_scaling.mscale_all_dim", 0.0);
    out.betaFast = r.readDouble(rs, "beta_fast", "rope_scaling.beta_fast", 32.0);
    out.betaSlow = r.readDouble(rs, "beta_slow", "rope_scaling.beta_slow", 1.0);
    if (rs.contains("original_max_position_embeddings") && !rs.at("original_max_position_embeddings").is_null())
        out.originalMaxPositionEmbeddings =
            r.asInt("rope_scaling.original_max_position_embeddings", rs.at("original_max_position_embeddings"));
    if (!(out.factor >= 1.0)) r.problem("\"rope_scaling.factor\" must be ≥ 1, found " + std::to_string(out.factor));
    if (out.originalMaxPositionEmbeddings <= 0)
        r.problem("\"rope_scaling.original_max_position_embeddings\" must be positive");
    if (!(out.betaFast > 0.0) || !(out.betaSlow > 0.0))
        r.problem("\"rope_scaling.beta_fast\" and \"beta_slow\" must be positive");
}

void validate(KeyReader& r, const ModelConfig& c) {
    const auto positive = [&](const char* key, int64_t v) {
        if (v <= 0) r.problem(std::string("\"") + key + "\" must be positive, found " + std::to_string(v));
    };
    positive("vocab_size", c.vocabSize);
    positive("hidden_size", c.hiddenSize);
    positive("num_hidden_layers", c.numHiddenLayers);
    positive("num_attention_heads", c.numAttentionHeads);
    positive("kv_lora_rank", c.kvLoraRank);
    positive("qk_nope_head_dim", c.qkNopeHeadDim);
    positive("qk_rope_head_dim", c.qkRopeHeadDim);
    positive("v_head_dim", c.vHeadDim);
    if (c.qLoraRank) positive("q_lora_rank", *c.qLoraRank);
    if (c.qkRopeHeadDim % 2 != 0)
        r.problem("\"qk_rope_head_dim\" must be even (RoPE rotates pairs), found " + std::to_string(c.qkRopeHeadDim));

    const bool anyMoe = c.nRoutedExperts > 0;
    if (c.nRoutedExperts < 0) r.problem("\"n_routed_experts\" must not be negative");
    if (c.firstKDenseReplace < 0 || c.firstKDenseReplace > c.numHiddenLayers)
        r.problem("\"first_k_dense_replace\" (" + std::to_string(c.firstKDenseReplace) +
                  ") must be between 0 and num_hidden_layers (" + std::to_string(c.numHiddenLayers) + ")");
    if (c.moeLayerFreq < 1) r.problem("\"moe_layer_freq\" must be ≥ 1, found " + std::to_string(c.moeLayerFreq));
    bool anyDense = false;
    for (int64_t l = 0; l < c.numHiddenLayers && c.moeLayerFreq >= 1; ++l) anyDense |= !c.isMoeLayer(l);
    if (anyDense) positive("intermediate_size", c.intermediateSize);
    if (anyMoe) {
        positive("moe_intermediate_size", c.moeIntermediateSize);
        positive("num_experts_per_tok", c.numExpertsPerTok);
        if (c.nSharedExperts < 0) r.problem("\"n_shared_experts\" must not be negative");
        if (c.numExpertsPerTok > c.nRoutedExperts)
            r.problem("\"num_experts_per_tok\" (" + std::to_string(c.numExpertsPerTok) +
                      ") exceeds \"n_routed_experts\" (" + std::to_string(c.nRoutedExperts) + ")");
        if (c.topkMethod == TopkMethod::GroupLimitedGreedy) {
            if (c.nGroup <= 0) {
                r.problem("\"n_group\" must be positive for topk_method group_limited_greedy");
            } else if (c.nRoutedExperts % c.nGroup != 0) {
                r.problem("\"n_routed_experts\" (" + std::to_string(c.nRoutedExperts) + ") is not divisible by \"n_group\" (" +
                          std::to_string(c.nGroup) + ")");
            } else if (c.topkGroup <= 0 || c.topkGroup > c.nGroup) {
                r.problem("\"topk_group\" (" + std::to_string(c.topkGroup) + ") must be between 1 and \"n_group\" (" +
                          std::to_string(c.nGroup) + ")");
            } else if (c.topkGroup * (c.nRoutedExperts / c.nGroup) < c.numExpertsPerTok) {
                r.problem("\"topk_group\" × experts per group (" + std::to_string(c.topkGroup) + " × " +
                          std::to_string(c.nRoutedExperts / c.nGroup) + ") is fewer than \"num_experts_per_tok\" (" +
                          std::to_string(c.numExpertsPerTok) + ")");
            }
        } else if (c.nGroup > 0 && c.nRoutedExperts % c.nGroup != 0) {
            // Unused by greedy routing, but a checkpoint that says so is inconsistent.
            r.problem("\"n_routed_experts\" (" + std::to_string(c.nRoutedExperts) + ") is not divisible by \"n_group\" (" +
                      std::to_string(c.nGroup) + ")");
        }
        if (!(c.routedScalingFactor > 0.0)) r.problem("\"routed_scaling_factor\" must be positive");
    }
    if (!(c.rmsNormEps > 0.0)) r.problem("\"rms_norm_eps\" must be positive");
    if (!(c.ropeTheta > 0.0)) r.problem("\"rope_theta\" must be positive");
    if (c.numKeyValueHeads <= 0) r.problem("\"num_key_value_heads\" must be positive");
    if (c.bosTokenId >= c.vocabSize && c.vocabSize > 0)
        r.problem("\"bos_token_id\" (" + std::to_string(c.bosTokenId) + ") is outside the vocabulary (vocab_size " +
                  std::to_string(c.vocabSize) + ")");
    if (c.eosTokenId >= c.vocabSize && c.vocabSize > 0)
        r.problem("\"eos_token_id\" (" + std::to_string(c.eosTokenId) + ") is outside the vocabulary (vocab_size " +
                  std::to_string(c.vocabSize) + ")");
    if (c.scoringFunc != "softmax")
        r.problem("\"scoring_func\" is \"" + c.scoringFunc + "\"; only \"softmax\" (DeepSeek-V2) is supported",
                  StatusCode::Unsupported);
    if (c.hiddenAct != "silu")
        r.problem("\"hidden_act\" is \"" + c.hiddenAct + "\"; only \"silu\" is supported", StatusCode::Unsupported);
}

int64_t readTokenId(KeyReader& r, const Json& root, const char* key) {
    if (!root.contains(key) || root.at(key).is_null()) return -1;
    const Json& v = root.at(key);
    if (v.is_array()) {  // some configs list several eos ids; the first is the canonical one
        if (v.empty()) return -1;
        return r.asInt(key, v.front());
    }
    return r.asInt(key, v);
}

}  // namespace

double ModelConfig::softmaxScale() const {
    double scale = 1.0 / std::sqrt(static_cast<double>(qHeadDim()));
    // As DeepSeek's modeling code: only when mscale_all_dim is set (non-zero).
    if (ropeScaling.yarn && ropeScaling.mscaleAllDim != 0.0) {
        const double m = yarnMscale(ropeScaling.factor, ropeScaling.mscaleAllDim);
        scale *= m * m;
    }
    return scale;
}

double ModelConfig::ropeAmplitude() const {
    if (!ropeScaling.yarn) return 1.0;
    return yarnMscale(ropeScaling.factor, ropeScaling.mscale) / yarnMscale(ropeScaling.factor, ropeScaling.mscaleAllDim);
}

Result<ModelConfig> parseModelConfig(const std::string& jsonText, const std::string& source) {
    Json root;
    try {
        root = Json::parse(jsonText);
    } catch (const Json::parse_error& e) {
        return Status(StatusCode::InvalidData, source + ": not valid JSON (" + e.what() + ")");
    }
    if (!root.is_object())
        return Status(StatusCode::InvalidData, source + ": expected a JSON object, found " + jsonTypeName(root));

    try {
        KeyReader r(root, source);
        ModelConfig c;

        // Identity first: a config of another family should say so rather than list 20 missing keys.
        c.modelType = r.optionalString("model_type", "");
        if (c.modelType.empty())
            return Status(StatusCode::InvalidData, source + ": missing \"model_type\" (expected \"deepseek_v2\")");
        if (c.modelType != "deepseek_v2")
            return Status(StatusCode::Unsupported, source + ": \"model_type\" is \"" + c.modelType +
                                                       "\"; this engine runs DeepSeek-V2-family checkpoints "
                                                       "(model_type \"deepseek_v2\")");
        if (root.contains("architectures") && !root.at("architectures").is_null()) {
            const Json& archs = root.at("architectures");
            if (!archs.is_array() || archs.empty() || !archs.front().is_string())
                return Status(StatusCode::InvalidData, source + ": \"architectures\" must be a list of strings");
            c.architecture = archs.front().get<std::string>();
            if (c.architecture != "DeepseekV2ForCausalLM")
                return Status(StatusCode::Unsupported, source + ": \"architectures\" is [\"" + c.architecture +
                                                           "\"]; expected [\"DeepseekV2ForCausalLM\"]");
        } else {
            c.architecture = "DeepseekV2ForCausalLM";
        }

        c.vocabSize = r.requiredInt("vocab_size");
        c.hiddenSize = r.requiredInt("hidden_size");
        c.numHiddenLayers = r.requiredInt("num_hidden_layers");
        c.numAttentionHeads = r.requiredInt("num_attention_heads");
        c.numKeyValueHeads = r.optionalInt("num_key_value_heads", c.numAttentionHeads);
        c.qLoraRank = r.nullableInt("q_lora_rank");
        c.kvLoraRank = r.requiredInt("kv_lora_rank");
        c.qkNopeHeadDim = r.requiredInt("qk_nope_head_dim");
        c.qkRopeHeadDim = r.requiredInt("qk_rope_head_dim");
        c.vHeadDim = r.requiredInt("v_head_dim");

        c.nRoutedExperts = r.optionalInt("n_routed_experts", 0);  // null: a dense model
        const bool moe = c.nRoutedExperts > 0;
        c.intermediateSize = r.optionalInt("intermediate_size", 0);
        if (moe) {
            c.moeIntermediateSize = r.requiredInt("moe_intermediate_size");
            c.numExpertsPerTok = r.requiredInt("num_experts_per_tok");
        }
        c.nSharedExperts = r.optionalInt("n_shared_experts", 0);
        c.firstKDenseReplace = r.optionalInt("first_k_dense_replace", 0);
        c.moeLayerFreq = r.optionalInt("moe_layer_freq", 1);
        const std::string topk = r.optionalString("topk_method", "greedy");
        if (topk == "greedy" || topk == "gready") {  // "gready" is the default in DeepSeek's own code
            c.topkMethod = TopkMethod::Greedy;
        } else if (topk == "group_limited_greedy") {
            c.topkMethod = TopkMethod::GroupLimitedGreedy;
        } else {
            r.problem("\"topk_method\" is \"" + topk + "\"; expected \"greedy\" or \"group_limited_greedy\"",
                      topk == "noaux_tc" ? StatusCode::Unsupported : StatusCode::InvalidData);
        }
        c.nGroup = r.optionalInt("n_group", 1);
        c.topkGroup = r.optionalInt("topk_group", 1);
        c.routedScalingFactor = r.optionalDouble("routed_scaling_factor", 1.0);
        c.normTopkProb = r.optionalBool("norm_topk_prob", false);
        c.scoringFunc = r.optionalString("scoring_func", "softmax");

        c.rmsNormEps = r.optionalDouble("rms_norm_eps", 1e-6);
        c.ropeTheta = r.optionalDouble("rope_theta", 10000.0);
        parseRopeScaling(r, root, c.ropeScaling);
        c.maxPositionEmbeddings = r.optionalInt("max_position_embeddings", 2048);
        c.tieWordEmbeddings = r.optionalBool("tie_word_embeddings", false);
        c.hiddenAct = r.optionalString("hidden_act", "silu");
        c.torchDtype = r.optionalString("torch_dtype", r.optionalString("dtype", "bfloat16"));
        c.bosTokenId = readTokenId(r, root, "bos_token_id");
        c.eosTokenId = readTokenId(r, root, "eos_token_id");

        if (r.ok()) validate(r, c);
        if (!r.ok()) return r.status();
        return c;
    } catch (const Json::exception& e) {  // defensive: every access above is type-checked
        return Status(StatusCode::InvalidData, source + ": " + e.what());
    }
}

Result<ModelConfig> loadModelConfig(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        return Status(StatusCode::NotFound, path.string() + ": not found (a model folder needs config.json)");
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status(StatusCode::IoError, path.string() + ": cannot be opened for reading");
    std::ostringstream text;
    text << in.rdbuf();
    return parseModelConfig(text.str(), path.string());
}

}  // namespace dsv2
