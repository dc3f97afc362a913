#include "json_codec.h"

#include "sqlite_db.h"
#include "store_internal.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace dsv2::storage::detail {

OrderedJson textToJson(const std::string& text) {
    if (isValidUtf8(text)) return text;
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(text.size() * 2);
    for (unsigned char c : text) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return OrderedJson{{"bytes", out}};
}

std::string textFromJson(const nlohmann::json& value, const std::string& what) {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_object() && value.contains("bytes") && value["bytes"].is_string()) {
        const auto& hex = value["bytes"].get_ref<const std::string&>();
        if (hex.size() % 2 == 0) {
            std::string out;
            out.reserve(hex.size() / 2);
            bool ok = true;
            for (std::size_t i = 0; i < hex.size() && ok; i += 2) {
                unsigned byte = 0;
                const auto [p, ec] = std::from_chars(hex.data() + i, hex.data() + i + 2, byte, 16);
                ok = ec == std::errc() && p == hex.data() + i + 2;
                out += static_cast<char>(byte);
            }
            if (ok) return out;
        }
    }
    throwError(ErrorCode::InvalidData, fmt::format("{} is not text", what));
}

namespace {

OrderedJson nonFinite(double value) {
    if (std::isnan(value)) return "nan";
    return value > 0 ? "inf" : "-inf";
}

double nonFiniteFromJson(const nlohmann::json& value, const std::string& what) {
    if (value.is_string()) {
        const auto& s = value.get_ref<const std::string&>();
        if (s == "nan") return std::nan("");
        if (s == "inf") return HUGE_VAL;
        if (s == "-inf") return -HUGE_VAL;
    }
    throwError(ErrorCode::InvalidData, fmt::format("{} is not a number", what));
}

}  // namespace

OrderedJson floatToJson(float value) {
    if (!std::isfinite(value)) return nonFinite(value);
    // Shortest decimal for the float; keep it only if it reads back to the same float through a
    // double (how the importer reads numbers), else write the exact value.
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    if (ec == std::errc()) {
        const double shortest = std::strtod(std::string(buf, end).c_str(), nullptr);
        if (static_cast<float>(shortest) == value) return shortest;
    }
    return static_cast<double>(value);
}

OrderedJson doubleToJson(double value) {
    if (!std::isfinite(value)) return nonFinite(value);
    return value;  // nlohmann writes the shortest round-trip form
}

float floatFromJson(const nlohmann::json& value, const std::string& what) {
    return static_cast<float>(doubleFromJson(value, what));
}

double doubleFromJson(const nlohmann::json& value, const std::string& what) {
    if (value.is_number()) return value.get<double>();
    return nonFiniteFromJson(value, what);
}

const nlohmann::json& requireField(const nlohmann::json& object, const char* key, const std::string& what) {
    if (!object.is_object() || !object.contains(key)) {
        throwError(ErrorCode::InvalidData, fmt::format("{} has no \"{}\"", what, key));
    }
    return object[key];
}

std::int64_t intFromJson(const nlohmann::json& value, const std::string& what) {
    if (!value.is_number_integer()) throwError(ErrorCode::InvalidData, fmt::format("{} is not an integer", what));
    return value.get<std::int64_t>();
}

OrderedJson statsToJson(const GenerationStats& s) {
    OrderedJson j;
    j["promptTokens"] = s.promptTokens;
    j["generatedTokens"] = s.generatedTokens;
    j["tokensPerSecond"] = doubleToJson(s.tokensPerSecond);
    j["timeToFirstTokenMs"] = doubleToJson(s.timeToFirstTokenMs);
    j["totalMs"] = doubleToJson(s.totalMs);
    j["stopReason"] = s.stopReason;
    j["backend"] = s.backend;
    j["extra"] = OrderedJson(s.extra.is_null() ? nlohmann::json::object() : s.extra);
    return j;
}

GenerationStats statsFromJson(const nlohmann::json& v, const std::string& what) {
    if (!v.is_object()) throwError(ErrorCode::InvalidData, fmt::format("{} is not an object", what));
    GenerationStats s;
    s.promptTokens = intFromJson(requireField(v, "promptTokens", what), what + ".promptTokens");
    s.generatedTokens = intFromJson(requireField(v, "generatedTokens", what), what + ".generatedTokens");
    s.tokensPerSecond = doubleFromJson(requireField(v, "tokensPerSecond", what), what + ".tokensPerSecond");
    s.timeToFirstTokenMs = doubleFromJson(requireField(v, "timeToFirstTokenMs", what), what + ".timeToFirstTokenMs");
    s.totalMs = doubleFromJson(requireField(v, "totalMs", what), what + ".totalMs");
    s.stopReason = textFromJson(requireField(v, "stopReason", what), what + ".stopReason");
    s.backend = textFromJson(requireField(v, "backend", what), what + ".backend");
    s.extra = v.value("extra", nlohmann::json::object());
    return s;
}

OrderedJson tokenToJson(const TokenRecord& t) {
    OrderedJson j;
    j["id"] = t.tokenId;
    j["offset"] = t.textOffset;
    j["length"] = t.textLength;
    if (t.logprob) j["logprob"] = floatToJson(*t.logprob);
    if (!t.topLogprobs.empty()) {
        OrderedJson top = OrderedJson::array();
        for (const auto& alt : t.topLogprobs)
            top.push_back({alt.tokenId, floatToJson(alt.logprob), textToJson(alt.text)});
        j["top"] = std::move(top);
    }
    if (t.moeLayers > 0 && t.topK > 0) {
        // One row per MoE layer: [expert ids] and [weights].
        OrderedJson experts = OrderedJson::array();
        OrderedJson weights = OrderedJson::array();
        for (std::size_t layer = 0; layer < t.moeLayers; ++layer) {
            OrderedJson ids = OrderedJson::array();
            OrderedJson ws = OrderedJson::array();
            for (std::size_t k = 0; k < t.topK; ++k) {
                ids.push_back(t.expertIds[layer * t.topK + k]);
                ws.push_back(floatToJson(t.expertWeights[layer * t.topK + k]));
            }
            experts.push_back(std::move(ids));
            weights.push_back(std::move(ws));
        }
        j["experts"] = std::move(experts);
        j["weights"] = std::move(weights);
    }
    return j;
}

TokenRecord tokenFromJson(const nlohmann::json& v, const std::string& what) {
    if (!v.is_object()) throwError(ErrorCode::InvalidData, fmt::format("{} is not an object", what));
    TokenRecord t;
    t.tokenId = static_cast<std::int32_t>(intFromJson(requireField(v, "id", what), what + ".id"));
    t.textOffset = static_cast<std::uint32_t>(intFromJson(requireField(v, "offset", what), what + ".offset"));
    t.textLength = static_cast<std::uint32_t>(intFromJson(requireField(v, "length", what), what + ".length"));
    if (v.contains("logprob")) t.logprob = floatFromJson(v["logprob"], what + ".logprob");
    if (v.contains("top")) {
        const auto& top = v["top"];
        if (!top.is_array()) throwError(ErrorCode::InvalidData, what + ".top is not a list");
        for (const auto& alt : top) {
            if (!alt.is_array() || alt.size() != 3) {
                throwError(ErrorCode::InvalidData, what + ".top has an entry that is not [id, logprob, text]");
            }
            t.topLogprobs.push_back({static_cast<std::int32_t>(intFromJson(alt[0], what + ".top id")),
                                     floatFromJson(alt[1], what + ".top logprob"),
                                     textFromJson(alt[2], what + ".top text")});
        }
    }
    if (v.contains("experts") || v.contains("weights")) {
        const auto& experts = requireField(v, "experts", what);
        const auto& weights = requireField(v, "weights", what);
        if (!experts.is_array() || !weights.is_array() || experts.size() != weights.size() || experts.empty() ||
            experts.size() > 0xffff || !experts[0].is_array() || experts[0].empty() || experts[0].size() > 0xff) {
            throwError(ErrorCode::InvalidData, what + ": experts and weights must be equal, non-empty tables");
        }
        t.moeLayers = static_cast<std::uint16_t>(experts.size());
        t.topK = static_cast<std::uint8_t>(experts[0].size());
        for (std::size_t layer = 0; layer < experts.size(); ++layer) {
            if (!experts[layer].is_array() || !weights[layer].is_array() || experts[layer].size() != t.topK ||
                weights[layer].size() != t.topK) {
                throwError(ErrorCode::InvalidData, fmt::format("{}: routing row {} has the wrong size", what, layer));
            }
            for (std::size_t k = 0; k < t.topK; ++k) {
                const auto id = intFromJson(experts[layer][k], what + ".experts");
                if (id < 0 || id > 0xffff) throwError(ErrorCode::InvalidData, what + ": expert id out of range");
                t.expertIds.push_back(static_cast<std::uint16_t>(id));
                t.expertWeights.push_back(floatFromJson(weights[layer][k], what + ".weights"));
            }
        }
    }
    return t;
}

OrderedJson promptRoutingToJson(const PromptRouting& routing) {
    OrderedJson j;
    j["firstPosition"] = routing.firstPosition;
    j["promptTokens"] = routing.promptTokens;
    j["text"] = textToJson(routing.text);
    OrderedJson tokens = OrderedJson::array();
    for (const TokenRecord& t : routing.records) tokens.push_back(tokenToJson(t));
    j["tokens"] = std::move(tokens);
    return j;
}

PromptRouting promptRoutingFromJson(const nlohmann::json& v, const std::string& what) {
    if (!v.is_object()) throwError(ErrorCode::InvalidData, fmt::format("{} is not an object", what));
    PromptRouting r;
    r.firstPosition = intFromJson(requireField(v, "firstPosition", what), what + ".firstPosition");
    r.promptTokens = intFromJson(requireField(v, "promptTokens", what), what + ".promptTokens");
    if (r.firstPosition < 0 || r.promptTokens < 0) {
        throwError(ErrorCode::InvalidData, what + ": firstPosition and promptTokens cannot be negative");
    }
    r.text = textFromJson(requireField(v, "text", what), what + ".text");
    const auto& tokens = requireField(v, "tokens", what);
    if (!tokens.is_array()) throwError(ErrorCode::InvalidData, what + ".tokens is not a list");
    r.records.reserve(tokens.size());
    for (std::size_t t = 0; t < tokens.size(); ++t) {
        TokenRecord record = tokenFromJson(tokens[t], fmt::format("{}, token {}", what, t + 1));
        if (std::uint64_t{record.textOffset} + record.textLength > r.text.size()) {
            throwError(ErrorCode::InvalidData,
                       fmt::format("{}, token {}: its text range ends past the prompt text", what, t + 1));
        }
        r.records.push_back(std::move(record));
    }
    return r;
}

}  // namespace dsv2::storage::detail
