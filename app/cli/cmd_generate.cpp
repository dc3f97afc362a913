// dsv2 generate --model DIR (--prompt TEXT [--chat] | --tokens IDS) [sampling flags] [--json]:
// one generation, streamed to stdout as it comes; with --json, one JSON object at the end:
// {"prompt_tokens", "tokens", "text", "stop_reason", "routing": {"layers", "topk_ids",
// "topk_weights"} of the generated tokens, "stats"}.
#include <cstdio>
#include <iostream>

#include "command.h"
#include "engine_cli.h"
#include "sampling_cli.h"

namespace dsv2::cli {
namespace {

struct GenerateArgs {
    EngineCliOptions engine;
    SamplingCliOptions sampling;
    std::string prompt;
    std::string tokens;
    bool chat = false;
    std::string system;
    bool json = false;
    int alternatives = 0;
};

int runGenerate(const GenerateArgs& a) {
    if (a.prompt.empty() == a.tokens.empty()) return fail("give either --prompt TEXT or --tokens IDS");
    if (a.chat && a.prompt.empty()) return fail("--chat wraps --prompt in the chat template; it needs --prompt");
    auto loaded = a.engine.load();
    if (!loaded.isOk()) return fail(loaded.status().toString());
    Engine& engine = **loaded;

    GenerateRequest request;
    request.params = a.sampling.apply(engine.defaultParams());
    request.params.topNAlternatives = a.alternatives;
    if (!a.tokens.empty()) {
        auto ids = parseTokenList(a.tokens);
        if (!ids.isOk()) return fail(ids.status().message());
        request.promptTokens = std::move(ids).value();
    } else if (a.chat) {
        if (!a.system.empty()) request.messages.push_back({"system", a.system});
        request.messages.push_back({"user", a.prompt});
    } else {
        request.promptTokens = engine.encode(a.prompt, true);
    }

    auto session = engine.createSession();
    if (!session.isOk()) return fail(session.status().toString());
    const bool stream = !a.json;
    nlohmann::json alternatives = nlohmann::json::array();
    auto result = (*session)->generate(request, [&](const GenerateEvent& e) {
        if (const auto* t = std::get_if<TokenEvent>(&e); t && a.alternatives > 0) {
            nlohmann::json list = nlohmann::json::array();
            for (const auto& alt : t->alternatives) list.push_back({{"id", alt.id}, {"logprob", alt.logprob}});
            alternatives.push_back(std::move(list));
        }
        if (!stream) return;
        if (const auto* t = std::get_if<TokenEvent>(&e)) {
            std::fwrite(t->textDelta.data(), 1, t->textDelta.size(), stdout);
            std::fflush(stdout);
        } else if (const auto* f = std::get_if<FinishedEvent>(&e)) {
            std::fwrite(f->textDelta.data(), 1, f->textDelta.size(), stdout);
            std::fputc('\n', stdout);
            std::fflush(stdout);
        }
    });
    if (!result.isOk()) return fail(result.status().toString());
    const GenerateResult& r = *result;
    if (a.json) {
        nlohmann::json j = {{"prompt_tokens", r.promptTokens},
                            {"tokens", r.tokens},
                            {"text", r.text},
                            {"stop_reason", stopReasonName(r.reason)},
                            {"logprobs", r.logprobs},
                            {"routing", routingJson(engine.info(), r.routing)},
                            {"stats", statsJson(r.stats)}};
        j["stats"]["backend"] = engine.info().backend;
        if (a.alternatives > 0) j["alternatives"] = std::move(alternatives);
        if (!r.stopString.empty()) j["stop_string"] = r.stopString;
        // Invalid UTF-8 cannot occur in text (the decoder repairs it), but be safe in the dump.
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    } else {
        std::fprintf(stderr, "[%lld prompt tokens, %.1f tok/s prefill; %lld generated, %.1f tok/s; stop: %s; %s]\n",
                     static_cast<long long>(r.stats.promptTokens), r.stats.prefillTokensPerSecond,
                     static_cast<long long>(r.stats.generatedTokens), r.stats.decodeTokensPerSecond,
                     stopReasonName(r.reason), engine.info().backend.c_str());
    }
    return 0;
}

void installGenerate(CLI::App& root, CliContext& ctx) {
    auto* cmd = root.add_subcommand("generate", "Generate a continuation of a prompt (streams to stdout)");
    auto args = std::make_shared<GenerateArgs>();
    args->engine.addTo(*cmd);
    args->sampling.addTo(*cmd);
    cmd->add_option("-p,--prompt", args->prompt, "Prompt text (a bos token is put in front)");
    cmd->add_option("--tokens", args->tokens, "Prompt as token ids, comma-separated");
    cmd->add_flag("--chat", args->chat, "Wrap --prompt as a user message in the model's chat template");
    cmd->add_option("--system", args->system, "System message for --chat");
    cmd->add_option("--alternatives", args->alternatives, "Top-N alternatives per token (for --json logprobs)");
    cmd->add_flag("--json", args->json, "Print one JSON object (tokens, text, routing, stats) instead of streaming");
    cmd->callback([args, &ctx] { ctx.exitCode = runGenerate(*args); });
}

}  // namespace

DSV2_CLI_COMMAND(10, installGenerate);

}  // namespace dsv2::cli
