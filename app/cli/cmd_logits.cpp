// dsv2 logits --model DIR --tokens 1,2,3 --out FILE.f32 [--routing-out FILE.json]: the logits of
// every position as little-endian float32 [tokens, vocab], and the router's choices. For checking
// a backend against a reference (HF transformers, the CPU backend) from outside.
#include <bit>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "command.h"
#include "engine_cli.h"

namespace dsv2::cli {
namespace {

struct LogitsArgs {
    EngineCliOptions engine;
    std::string tokens;
    std::string out;
    std::string routingOut;
};

int runLogits(const LogitsArgs& a) {
    auto ids = parseTokenList(a.tokens);
    if (!ids.isOk()) return fail(ids.status().message());
    auto engine = a.engine.load();
    if (!engine.isOk()) return fail(engine.status().toString());
    auto session = (*engine)->createSession();
    if (!session.isOk()) return fail(session.status().toString());
    auto result = (*session)->evaluate(*ids, true);
    if (!result.isOk()) return fail(result.status().toString());

    static_assert(std::endian::native == std::endian::little, "the .f32 format is little-endian");
    std::ofstream out(a.out, std::ios::binary);
    out.write(reinterpret_cast<const char*>(result->logits.data()),
              static_cast<std::streamsize>(result->logits.size() * sizeof(float)));
    if (!out) return fail("cannot write " + a.out);
    if (!a.routingOut.empty()) {
        std::ofstream r(a.routingOut);
        r << routingJson((*engine)->info(), result->routing).dump() << '\n';
        if (!r) return fail("cannot write " + a.routingOut);
    }
    std::cout << "wrote logits [" << result->nRows << ", " << result->vocab << "] to " << a.out
              << (a.routingOut.empty() ? "" : " and routing to " + a.routingOut) << " ("
              << (*engine)->info().backend << ")\n";
    return 0;
}

void installLogits(CLI::App& root, CliContext& ctx) {
    auto* cmd = root.add_subcommand("logits", "Write the logits (and routing) of every position of a token list");
    auto args = std::make_shared<LogitsArgs>();
    args->engine.addTo(*cmd);
    cmd->add_option("--tokens", args->tokens, "Token ids, comma-separated")->required();
    cmd->add_option("-o,--out", args->out, "Output: little-endian float32 [tokens, vocab]")->required();
    cmd->add_option("--routing-out", args->routingOut,
                    "Also write {\"layers\", \"topk_ids\"[token][layer][k], \"topk_weights\"} as JSON");
    cmd->callback([args, &ctx] { ctx.exitCode = runLogits(*args); });
}

}  // namespace

DSV2_CLI_COMMAND(50, installLogits);

}  // namespace dsv2::cli
