#include "model/model_folder.h"

#include <fstream>
#include <sstream>

#include "dsv2/log.h"
#include "model/safetensors_checkpoint.h"
#include "model/weight_binding.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dsv2 {
namespace fs = std::filesystem;

namespace {

Result<std::string> readTextFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status(StatusCode::IoError, path.string() + ": cannot be opened for reading");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

ModelFolder::ModelFolder() = default;
ModelFolder::~ModelFolder() = default;

std::string ModelFolder::name() const {
    // "models/DeepSeek-V2-Lite-Chat/" has an empty filename(); use the last real component.
    fs::path p = m_path;
    if (!p.has_filename()) p = p.parent_path();
    return p.filename().string();
}

const Tokenizer& ModelFolder::tokenizer() const {
    return *m_tokenizer;
}

const ChatTemplate* ModelFolder::chatTemplate() const { return m_chatTemplate.get(); }

uint64_t ModelFolder::weightFileBytes() const { return m_checkpoint ? m_checkpoint->fileBytes() : 0; }

Result<std::unique_ptr<ModelFolder>> ModelFolder::open(const fs::path& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return Status(StatusCode::NotFound, dir.string() + ": not a folder (expected a model folder with config.json, "
                                                           "*.safetensors and tokenizer.json)");
    std::unique_ptr<ModelFolder> folder(new ModelFolder());
    folder->m_path = dir;

    DSV2_ASSIGN_OR_RETURN(folder->m_config, loadModelConfig(dir / "config.json"));
    DSV2_ASSIGN_OR_RETURN(folder->m_checkpoint, SafetensorsCheckpoint::openFolder(dir));
    DSV2_ASSIGN_OR_RETURN(folder->m_weights,
                          bindModelWeights(folder->m_config, folder->m_checkpoint->tensors(), dir.string()));

    const fs::path tokenizerPath = dir / "tokenizer.json";
    if (!fs::is_regular_file(tokenizerPath, ec))
        return Status(StatusCode::NotFound, tokenizerPath.string() + ": not found (download tokenizer.json with the model)");
    auto tokenizer = Tokenizer::fromFile(tokenizerPath);
    if (!tokenizer) return tokenizer.status();  // its messages name the file
    folder->m_tokenizer = std::move(tokenizer).value();
    if (folder->m_tokenizer->size() > folder->m_config.vocabSize)
        return Status(StatusCode::InvalidData,
                      tokenizerPath.string() + ": " + std::to_string(folder->m_tokenizer->size()) +
                          " tokens, more than config.json's vocab_size " + std::to_string(folder->m_config.vocabSize) +
                          " (tokenizer and weights do not belong together)");

    const fs::path tokenizerConfigPath = dir / "tokenizer_config.json";
    if (fs::is_regular_file(tokenizerConfigPath, ec)) {
        auto chatTemplate = ChatTemplate::fromTokenizerConfig(tokenizerConfigPath);
        if (chatTemplate) {
            folder->m_chatTemplate = std::make_unique<ChatTemplate>(std::move(chatTemplate).value());
        } else if (chatTemplate.status().code() == StatusCode::NotFound) {
            logInfo(tokenizerConfigPath.string() + " has no chat template: only raw completion is available");
        } else if (chatTemplate.status().code() == StatusCode::Unsupported) {
            // A template we cannot run should not make the weights unusable for completion.
            logWarn(chatTemplate.status().message() + " (continuing without a chat template)");
        } else {
            return chatTemplate.status();
        }
    }

    const fs::path generationPath = dir / "generation_config.json";
    if (fs::is_regular_file(generationPath, ec)) {
        DSV2_ASSIGN_OR_RETURN(std::string text, readTextFile(generationPath));
        DSV2_ASSIGN_OR_RETURN(folder->m_generation, parseGenerationConfig(text, generationPath.string()));
    }
    return folder;
}

}  // namespace dsv2
