#include "tokenizer/chat_template.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja_template.h"
#include "tokenizer/utf8.h"

namespace dsv2 {

struct ChatTemplate::Rendered {
    jinja::Str text;
};

namespace {

// bos_token / eos_token: a string, an AddedToken object {"content": ...}, or absent/null.
Result<std::string> tokenField(const nlohmann::json& config, const char* key) {
    const auto it = config.find(key);
    if (it == config.end() || it->is_null()) return std::string();
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
    return Status(StatusCode::InvalidData, std::string("\"") + key + "\" is neither a string nor an object with \"content\"");
}

}  // namespace

Result<ChatTemplate> ChatTemplate::fromTokenizerConfig(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return Status(StatusCode::NotFound, path.string() + ": no such file");
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status(StatusCode::IoError, path.string() + ": cannot open for reading");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    nlohmann::json config;
    try {
        config = nlohmann::json::parse(buffer.str());
    } catch (const nlohmann::json::exception& e) {
        return Status(StatusCode::InvalidData, path.string() + ": not valid JSON: " + e.what());
    }
    if (!config.is_object()) return Status(StatusCode::InvalidData, path.string() + ": the top level is not an object");

    std::string source;
    const auto tmpl = config.find("chat_template");
    if (tmpl == config.end() || tmpl->is_null()) {
        return Status(StatusCode::NotFound, path.string() + " has no \"chat_template\"");
    }
    if (tmpl->is_string()) {
        source = tmpl->get<std::string>();
    } else if (tmpl->is_array()) {
        // HF's multi-template form: [{"name": "default", "template": "..."}, ...]; take "default".
        for (const auto& entry : *tmpl) {
            if (entry.is_object() && entry.value("name", std::string()) == "default" && entry.contains("template") &&
                entry["template"].is_string()) {
                source = entry["template"].get<std::string>();
            }
        }
        if (source.empty()) return Status(StatusCode::NotFound, path.string() + ": \"chat_template\" has no \"default\" entry");
    } else {
        return Status(StatusCode::InvalidData, path.string() + ": \"chat_template\" is neither a string nor a list");
    }
    auto bos = tokenField(config, "bos_token");
    if (!bos) return bos.status().withContext(path.string());
    auto eos = tokenField(config, "eos_token");
    if (!eos) return eos.status().withContext(path.string());
    auto result = fromString(std::move(source), std::move(bos).value(), std::move(eos).value());
    if (!result) return result.status().withContext(path.string());
    return result;
}

Result<ChatTemplate> ChatTemplate::fromString(std::string templateSource, std::string bosToken, std::string eosToken) {
    if (!utf8::isValid(bosToken) || !utf8::isValid(eosToken)) {
        return Status(StatusCode::InvalidData, "bos/eos token is not valid UTF-8");
    }
    DSV2_ASSIGN_OR_RETURN(auto parsed, jinja::Template::parse(std::move(templateSource)));
    ChatTemplate t;
    t.m_template = std::move(parsed);
    t.m_bos = std::move(bosToken);
    t.m_eos = std::move(eosToken);
    return t;
}

const std::string& ChatTemplate::source() const { return m_template->source(); }

Result<ChatTemplate::Rendered> ChatTemplate::renderImpl(std::span<const ChatMessage> messages,
                                                        bool addGenerationPrompt) const {
    jinja::List list;
    list.reserve(messages.size());
    for (const ChatMessage& m : messages) {
        // Message text is data: it may never form control tokens. Repairing invalid UTF-8 here
        // keeps byte offsets stable from rendering to encoding.
        list.push_back(jinja::Value::dict({
            {"role", jinja::Value::string(utf8::lossy(m.role), true)},
            {"content", jinja::Value::string(utf8::lossy(m.content), true)},
        }));
    }
    const std::vector<std::pair<std::string, jinja::Value>> globals{
        {"messages", jinja::Value::list(std::move(list))},
        {"bos_token", jinja::Value::string(m_bos)},  // from the config: template text
        {"eos_token", jinja::Value::string(m_eos)},
        {"add_generation_prompt", jinja::Value::boolean(addGenerationPrompt)},
    };
    DSV2_ASSIGN_OR_RETURN(jinja::Str text, m_template->render(globals));
    return Rendered{std::move(text)};
}

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages, bool addGenerationPrompt) const {
    DSV2_ASSIGN_OR_RETURN(Rendered r, renderImpl(messages, addGenerationPrompt));
    return std::move(r.text.text);
}

Result<std::vector<int32_t>> ChatTemplate::renderTokens(std::span<const ChatMessage> messages, bool addGenerationPrompt,
                                                        const Tokenizer& tokenizer) const {
    DSV2_ASSIGN_OR_RETURN(Rendered r, renderImpl(messages, addGenerationPrompt));
    // Template text is everything that is not data.
    std::vector<TextRange> templateRanges;
    size_t pos = 0;
    for (const TextRange& d : r.text.data) {
        if (d.begin > pos) templateRanges.push_back({pos, d.begin});
        pos = d.end;
    }
    if (pos < r.text.text.size()) templateRanges.push_back({pos, r.text.text.size()});
    return tokenizer.encodeWithSpecialRanges(r.text.text, templateRanges);
}

}  // namespace dsv2
