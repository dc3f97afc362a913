// generation_config.json: the checkpoint's sampling defaults (temperature 0.3, top_p 0.95 on V2.5).
#include <nlohmann/json.hpp>

#include "model/model_folder.h"

namespace dsv2 {

Result<GenerationDefaults> parseGenerationConfig(const std::string& jsonText, const std::string& source) {
    using Json = nlohmann::json;
    Json root;
    try {
        root = Json::parse(jsonText);
    } catch (const Json::exception& e) {
        return Status(StatusCode::InvalidData, source + ": not valid JSON (" + e.what() + ")");
    }
    if (!root.is_object()) return Status(StatusCode::InvalidData, source + ": expected a JSON object");
    GenerationDefaults g;
    std::string wrong;
    const auto number = [&](const char* key, std::optional<double>& out) {
        if (!root.contains(key) || root.at(key).is_null()) return;
        if (!root.at(key).is_number()) wrong = key;
        else out = root.at(key).get<double>();
    };
    const auto integer = [&](const char* key, std::optional<int64_t>& out) {
        if (!root.contains(key) || root.at(key).is_null()) return;
        if (!root.at(key).is_number_integer()) wrong = key;
        else out = root.at(key).get<int64_t>();
    };
    number("temperature", g.temperature);
    number("top_p", g.topP);
    number("repetition_penalty", g.repetitionPenalty);
    integer("top_k", g.topK);
    integer("max_new_tokens", g.maxNewTokens);
    if (root.contains("do_sample") && !root.at("do_sample").is_null()) {
        if (!root.at("do_sample").is_boolean()) wrong = "do_sample";
        else g.doSample = root.at("do_sample").get<bool>();
    }
    if (!wrong.empty())
        return Status(StatusCode::InvalidData, source + ": \"" + wrong + "\" has the wrong type (" +
                                                   root.at(wrong).type_name() + ")");
    if (g.temperature && *g.temperature < 0.0)
        return Status(StatusCode::InvalidData, source + ": \"temperature\" must not be negative");
    if (g.topP && (*g.topP <= 0.0 || *g.topP > 1.0))
        return Status(StatusCode::InvalidData, source + ": \"top_p\" must be in (0, 1]");
    return g;
}

}  // namespace dsv2
