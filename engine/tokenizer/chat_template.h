#pragma once
// The chat template of a model folder: the Jinja `chat_template` of tokenizer_config.json, run by
// a small interpreter (jinja_*.h) that supports what the DeepSeek-V2 family's templates use and
// names anything else in an Unsupported error.
//
// renderTokens keeps control tokens under the template's control: every string value in the
// interpreter knows which of its bytes came from the template (literals, bos/eos) and which from
// the messages, and special tokens are recognised only in template bytes.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dsv2/status.h"
#include "tokenizer/tokenizer.h"

namespace dsv2 {

struct ChatMessage {
    std::string role;
    std::string content;
};

namespace jinja {
class Template;
}

class ChatTemplate {
public:
    // Reads chat_template, bos_token, eos_token (plain strings or {"content": ...} objects).
    static Result<ChatTemplate> fromTokenizerConfig(const std::filesystem::path& tokenizerConfigJson);
    static Result<ChatTemplate> fromString(std::string templateSource, std::string bosToken, std::string eosToken);

    Result<std::string> render(std::span<const ChatMessage> messages, bool addGenerationPrompt) const;
    // Renders and encodes: text from the template itself may form special tokens; text that came from message contents
    // never does (it is encoded with SpecialTokens::AsText).
    Result<std::vector<int32_t>> renderTokens(std::span<const ChatMessage> messages, bool addGenerationPrompt,
                                              const Tokenizer& tokenizer) const;

    const std::string& source() const;
    const std::string& bosToken() const { return m_bos; }
    const std::string& eosToken() const { return m_eos; }

private:
    ChatTemplate() = default;
    struct Rendered;
    Result<Rendered> renderImpl(std::span<const ChatMessage> messages, bool addGenerationPrompt) const;

    std::shared_ptr<const jinja::Template> m_template;  // immutable once parsed: copies share it
    std::string m_bos;
    std::string m_eos;
};

}  // namespace dsv2
