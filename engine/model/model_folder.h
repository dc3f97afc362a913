#pragma once
// A model folder exactly as the hub ships it: config.json, model.safetensors or shards with
// model.safetensors.index.json, tokenizer.json, tokenizer_config.json (chat template),
// generation_config.json. open() validates everything and reports every problem it can find with
// the file and key or tensor to blame.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "dsv2/status.h"
#include "model/model_config.h"
#include "model/model_weights.h"

namespace dsv2 {

class Tokenizer;
class ChatTemplate;
class SafetensorsCheckpoint;

struct GenerationDefaults {  // generation_config.json, all optional
    std::optional<double> temperature, topP, repetitionPenalty;
    std::optional<int64_t> topK, maxNewTokens;
    std::optional<bool> doSample;
};

// Parses generation_config.json text; a key of the wrong type is an error naming it.
Result<GenerationDefaults> parseGenerationConfig(const std::string& jsonText, const std::string& source);

class ModelFolder {  // owns the memory-mapped shards; TensorViews stay valid while it lives
public:
    static Result<std::unique_ptr<ModelFolder>> open(const std::filesystem::path& dir);
    ~ModelFolder();
    ModelFolder(const ModelFolder&) = delete;
    ModelFolder& operator=(const ModelFolder&) = delete;

    const std::filesystem::path& path() const { return m_path; }
    std::string name() const;  // the folder's name, e.g. "DeepSeek-V2-Lite-Chat"
    const ModelConfig& config() const { return m_config; }
    const ModelWeights& weights() const { return m_weights; }
    const Tokenizer& tokenizer() const;
    const ChatTemplate* chatTemplate() const;  // nullptr when tokenizer_config.json has none
    const GenerationDefaults& generationDefaults() const { return m_generation; }
    uint64_t weightFileBytes() const;
    const SafetensorsCheckpoint& checkpoint() const { return *m_checkpoint; }

private:
    ModelFolder();

    std::filesystem::path m_path;
    ModelConfig m_config;
    std::unique_ptr<SafetensorsCheckpoint> m_checkpoint;  // before m_weights: the views point into it
    ModelWeights m_weights;
    std::unique_ptr<Tokenizer> m_tokenizer;
    std::unique_ptr<ChatTemplate> m_chatTemplate;
    GenerationDefaults m_generation;
};

}  // namespace dsv2
