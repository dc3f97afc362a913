#pragma once
// The versioned JSON exchange format ("dsv2-chat-history", version 1) field by field, shared by
// export and import so that a round trip is exact:
// - text that is not valid UTF-8 (a token cut inside a character) is {"bytes": "<hex>"};
// - floats are written with the fewest digits that read back to the same float, and infinities or
//   NaN as the strings "inf", "-inf", "nan" (JSON has no such numbers).

#include "dsv2/storage/types.h"

#include <nlohmann/json.hpp>

#include <string>

namespace dsv2::storage::detail {

constexpr const char* kExchangeFormat = "dsv2-chat-history";
constexpr int kExchangeVersion = 1;

using OrderedJson = nlohmann::ordered_json;

OrderedJson textToJson(const std::string& text);
// Throws InvalidData naming `what` when the value is neither form.
std::string textFromJson(const nlohmann::json& value, const std::string& what);

OrderedJson floatToJson(float value);
OrderedJson doubleToJson(double value);
float floatFromJson(const nlohmann::json& value, const std::string& what);
double doubleFromJson(const nlohmann::json& value, const std::string& what);

OrderedJson statsToJson(const GenerationStats& stats);
GenerationStats statsFromJson(const nlohmann::json& value, const std::string& what);

OrderedJson tokenToJson(const TokenRecord& token);
TokenRecord tokenFromJson(const nlohmann::json& value, const std::string& what);

// An answer's prompt routing (schema v4): {"firstPosition", "promptTokens", "text", "tokens": [...]},
// the tokens in tokenToJson's form (offsets index "text"). Optional in a message: files from before
// v4 have none, and older readers skip the field.
OrderedJson promptRoutingToJson(const PromptRouting& routing);
PromptRouting promptRoutingFromJson(const nlohmann::json& value, const std::string& what);

// Field access with messages that say which field of which record is wrong.
const nlohmann::json& requireField(const nlohmann::json& object, const char* key, const std::string& what);
std::int64_t intFromJson(const nlohmann::json& value, const std::string& what);

}  // namespace dsv2::storage::detail
