#pragma once
// config.json of a DeepseekV2ForCausalLM checkpoint, every key the forward pass depends on, with
// names following the HF keys. Parsing validates everything and names the key that is wrong.

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "dsv2/status.h"

namespace dsv2 {

enum class TopkMethod { Greedy, GroupLimitedGreedy };

struct RopeScaling {
    // "yarn" is the only scaling the V2 family uses; none means plain RoPE.
    bool yarn = false;
    double factor = 1.0;
    double mscale = 1.0;
    double mscaleAllDim = 0.0;
    int64_t originalMaxPositionEmbeddings = 4096;
    double betaFast = 32.0;
    double betaSlow = 1.0;
};

struct ModelConfig {
    std::string modelType;     // "deepseek_v2"
    std::string architecture;  // "DeepseekV2ForCausalLM"

    int64_t vocabSize = 0;
    int64_t hiddenSize = 0;
    int64_t intermediateSize = 0;     // dense MLP width (layers < firstKDenseReplace)
    int64_t moeIntermediateSize = 0;  // width of one routed expert
    int64_t numHiddenLayers = 0;
    int64_t numAttentionHeads = 0;
    int64_t numKeyValueHeads = 0;  // informational; MLA has one latent "head"

    std::optional<int64_t> qLoraRank;  // null on V2-Lite (plain q_proj)
    int64_t kvLoraRank = 0;            // 512
    int64_t qkNopeHeadDim = 0;         // 128
    int64_t qkRopeHeadDim = 0;         // 64
    int64_t vHeadDim = 0;              // 128

    int64_t nRoutedExperts = 0;
    int64_t nSharedExperts = 0;
    int64_t numExpertsPerTok = 0;
    int64_t firstKDenseReplace = 0;
    int64_t moeLayerFreq = 1;
    TopkMethod topkMethod = TopkMethod::Greedy;
    int64_t nGroup = 1;
    int64_t topkGroup = 1;
    double routedScalingFactor = 1.0;
    bool normTopkProb = false;
    std::string scoringFunc = "softmax";

    double rmsNormEps = 1e-6;
    double ropeTheta = 10000.0;
    RopeScaling ropeScaling;
    int64_t maxPositionEmbeddings = 0;
    bool tieWordEmbeddings = false;
    std::string hiddenAct = "silu";
    std::string torchDtype = "bfloat16";

    int64_t bosTokenId = -1;
    int64_t eosTokenId = -1;

    // --- derived ---
    int64_t qHeadDim() const { return qkNopeHeadDim + qkRopeHeadDim; }  // 192
    bool isMoeLayer(int64_t layer) const {
        return nRoutedExperts > 0 && layer >= firstKDenseReplace && layer % moeLayerFreq == 0;
    }
    // Latent cache entry per token per layer: [c_kv | k_pe] = 576 values on V2.
    int64_t latentCacheDim() const { return kvLoraRank + qkRopeHeadDim; }
    // YaRN attention factor m(scale, mscale) = 0.1·mscale·ln(scale) + 1 (1 when scale ≤ 1).
    static double yarnMscale(double scale, double mscale) {
        return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
    }
    // Softmax scale: (qk_nope + qk_rope)^-0.5 · m², m from mscale_all_dim (the classic bug is
    // forgetting m²: position 0 still matches, later positions drift).
    double softmaxScale() const;
    // Amplitude of cos/sin in YaRN: m(factor, mscale) / m(factor, mscale_all_dim) (1.0 for V2).
    double ropeAmplitude() const;
};

// Parses and validates config.json text. `source` names the file in messages.
Result<ModelConfig> parseModelConfig(const std::string& jsonText, const std::string& source = "config.json");
Result<ModelConfig> loadModelConfig(const std::filesystem::path& path);

}  // namespace dsv2
