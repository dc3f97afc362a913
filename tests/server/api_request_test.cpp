// Request parsing: what the engine is asked to run, and the 400s (each naming its field).
#include <doctest/doctest.h>

#include "server/api_request.h"

using namespace dsv2;
using namespace dsv2::server;

namespace {

GenerateParams modelDefaults() {
    GenerateParams p;
    p.temperature = 0.3;
    p.topP = 0.95;
    p.maxNewTokens = 256;
    return p;
}

ApiRequest ok(const std::string& body, Endpoint e = Endpoint::ChatCompletions) {
    auto r = parseApiRequest(body, e, modelDefaults());
    if (auto* err = std::get_if<ApiError>(&r)) FAIL("unexpected error: " << err->message);
    return std::get<ApiRequest>(r);
}

ApiError error(const std::string& body, Endpoint e = Endpoint::ChatCompletions) {
    auto r = parseApiRequest(body, e, modelDefaults());
    REQUIRE(std::holds_alternative<ApiError>(r));
    return std::get<ApiError>(r);
}

}  // namespace

TEST_CASE("a full chat request becomes engine parameters") {
    ApiRequest r = ok(R"({"model": "m", "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
        {"role": "assistant", "content": null}, {"role": "user", "content": "again"}],
        "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1, "seed": -3,
        "max_completion_tokens": 12, "max_tokens": 99, "stop": ["a", "bc"], "stream": true,
        "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 4, "ignore_eos": true,
        "return_token_ids": true, "presence_penalty": 0, "n": 1, "user": "whoever"})");
    REQUIRE(r.messages.size() == 4);
    CHECK(r.messages[0].role == "system");
    CHECK(r.messages[1].content == "Hello");
    CHECK(r.messages[2].content.empty());
    CHECK(r.params.temperature == 0.7);
    CHECK(r.params.topP == 0.9);
    CHECK(r.params.topK == 40);
    CHECK(r.params.minP == 0.05);
    CHECK(r.params.repetitionPenalty == 1.1);
    CHECK(r.params.seed == static_cast<uint64_t>(int64_t{-3}));
    CHECK(r.params.maxNewTokens == 12);  // max_completion_tokens wins over max_tokens
    CHECK(r.params.stopStrings == std::vector<std::string>{"a", "bc"});
    CHECK(r.params.ignoreEos);
    CHECK(r.params.topNAlternatives == 4);
    CHECK(r.stream);
    CHECK(r.includeUsage);
    CHECK(r.logprobs);
    CHECK(r.returnTokenIds);
}

TEST_CASE("absent or null fields keep the model's defaults") {
    ApiRequest r = ok(R"({"messages": [{"role": "user", "content": "x"}], "temperature": null})");
    CHECK(r.params.temperature == 0.3);
    CHECK(r.params.topP == 0.95);
    CHECK(r.params.maxNewTokens == 256);
    CHECK_FALSE(r.maxTokensGiven);
    CHECK_FALSE(r.stream);
    CHECK(r.model.empty());
}

TEST_CASE("completions: text, one-element list and token-id prompts; logprobs=N") {
    CHECK(ok(R"({"prompt": "abc"})", Endpoint::Completions).prompt == "abc");
    CHECK(ok(R"({"prompt": ["abc"]})", Endpoint::Completions).prompt == "abc");
    ApiRequest ids = ok(R"({"prompt": [1, 2, 3], "logprobs": 2})", Endpoint::Completions);
    CHECK(ids.promptIsTokens);
    CHECK(ids.promptTokenIds == std::vector<int32_t>{1, 2, 3});
    CHECK(ids.logprobs);
    CHECK(ids.params.topNAlternatives == 2);
    CHECK(error(R"({"prompt": ["a", "b"]})", Endpoint::Completions).message.find("one prompt") != std::string::npos);
    CHECK(error(R"({"prompt": [1, -2]})", Endpoint::Completions).param == "prompt");
    CHECK(error(R"({"prompt": ""})", Endpoint::Completions).param == "prompt");
    CHECK(error(R"({"messages": []})", Endpoint::Completions).param == "prompt");
}

TEST_CASE("invalid values name their field") {
    const std::string user = R"("messages": [{"role": "user", "content": "x"}])";
    struct Case {
        std::string extra;
        const char* param;
    };
    for (const Case& c : std::vector<Case>{
             {R"("temperature": -0.1)", "temperature"},
             {R"("temperature": "hot")", "temperature"},
             {R"("top_p": 1.5)", "top_p"},
             {R"("top_k": 1.5)", "top_k"},
             {R"("top_k": -2)", "top_k"},
             {R"("repetition_penalty": 0)", "repetition_penalty"},
             {R"("max_tokens": 0)", "max_tokens"},
             {R"("max_tokens": 18446744073709551615)", "max_tokens"},
             {R"("max_completion_tokens": -5)", "max_completion_tokens"},
             {R"("seed": "x")", "seed"},
             {R"("stop": ["", "a"])", "stop"},
             {R"("stop": [1])", "stop"},
             {R"("stop": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"])", "stop"},
             {R"("logprobs": 1)", "logprobs"},
             {R"("logprobs": true, "top_logprobs": 21)", "top_logprobs"},
             {R"("stream_options": {"include_usage": "yes"})", "stream_options.include_usage"},
             {R"("frequency_penalty": 0.5)", "frequency_penalty"},
             {R"("tools": [{"type": "function"}])", "tools"},
             {R"("logit_bias": {"1": 5})", "logit_bias"},
             {R"("response_format": {"type": "json_object"})", "response_format"},
             {R"("model": 7)", "model"}}) {
        CAPTURE(c.extra);
        ApiError e = error("{" + user + ", " + c.extra + "}");
        CHECK(e.status == 400);
        CHECK(e.param == c.param);
        CHECK(e.message.find(c.param) != std::string::npos);
    }
}

TEST_CASE("malformed bodies: not JSON, not an object, too deep") {
    CHECK(error("{").message.find("not valid JSON") != std::string::npos);
    CHECK(error("").message.find("not valid JSON") != std::string::npos);
    CHECK(error("42").message.find("must be a JSON object") != std::string::npos);
    CHECK(error(std::string(65, '[') + std::string(65, ']')).message.find("nests deeper") != std::string::npos);
    // Brackets inside strings do not count as nesting.
    CHECK(ok(R"({"messages": [{"role": "user", "content": ")" + std::string(200, '[') + R"("}]})").messages.size() ==
          1);
}
