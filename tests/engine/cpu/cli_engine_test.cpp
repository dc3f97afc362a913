// The dsv2 commands that run the engine, as a person would call them: logits (f32 file + routing
// JSON) against HF's numbers, generate --json against HF's greedy continuation, chat over a pipe,
// and the clear errors (bad ids, CUDA unavailable).

#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "reference_fixture.h"
#include "test_data.h"

using namespace dsv2::test;
namespace fs = std::filesystem;

namespace {

struct Run {
    int code = -1;
    std::string out;  // stdout and stderr
};

Run run(const std::string& args, const std::string& input = "") {
    std::string cmd = std::string(DSV2_CLI_PATH) + " " + args + " 2>&1";
    if (!input.empty()) cmd = "printf '" + input + "' | " + cmd;
    Run r;
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    std::array<char, 4096> buf{};
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

std::string joined(const std::vector<int32_t>& ids) {
    std::string s;
    for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
    return s;
}

fs::path tempFile(const std::string& name) { return fs::temp_directory_path() / ("dsv2_cli_test_" + name); }

}  // namespace

TEST_CASE("dsv2 logits writes HF's logits and routing for every position") {
    const auto cases = loadReferenceCases(tinyLiteDir());
    const fs::path out = tempFile("logits.f32");
    const fs::path routing = tempFile("routing.json");
    const Run r = run("logits --model " + tinyLiteDir().string() + " --backend cpu --tokens " +
                      joined(cases[1].tokens) + " --out " + out.string() + " --routing-out " + routing.string());
    REQUIRE_MESSAGE(r.code == 0, r.out);
    const auto logits = readF32(out, cases[1].logits.size());
    CHECK(normalizedMaxError(logits.data(), cases[1].logits.data(), logits.size()) <= 1e-4);
    const nlohmann::json j = readJson(routing);
    CHECK(j["layers"] == nlohmann::json({1, 2}));
    REQUIRE(j["topk_ids"].size() == cases[1].tokens.size());
    for (size_t t = 0; t < cases[1].tokens.size(); ++t) {
        auto ours = j["topk_ids"][t][0].get<std::vector<int32_t>>();
        auto theirs = cases[1].routing.at(1).ids[t];
        std::sort(ours.begin(), ours.end());
        std::sort(theirs.begin(), theirs.end());
        CHECK(ours == theirs);
    }
    fs::remove(out);
    fs::remove(routing);

    const Run bad = run("logits --model " + tinyLiteDir().string() + " --tokens 1,600 --out " + out.string());
    CHECK(bad.code != 0);
    CHECK(bad.out.find("600") != std::string::npos);
    CHECK(bad.out.find("vocabulary") != std::string::npos);
}

TEST_CASE("dsv2 generate --json gives HF's greedy tokens with routing and stats") {
    const auto cases = loadReferenceCases(tinyLiteDir());
    const Run r = run("generate --model " + tinyLiteDir().string() + " --backend cpu --tokens " +
                      joined(cases[0].tokens) + " --max-new-tokens 12 --temperature 0 --ignore-eos --json");
    REQUIRE_MESSAGE(r.code == 0, r.out);
    const nlohmann::json j = nlohmann::json::parse(r.out);
    CHECK(j["tokens"].get<std::vector<int32_t>>() == cases[0].greedy);
    CHECK(j["routing"]["topk_ids"].size() == 12);
    CHECK(j["routing"]["topk_ids"][0].size() == 2);     // MoE layers
    CHECK(j["routing"]["topk_ids"][0][0].size() == 2);  // k
    CHECK(j["stats"]["generated_tokens"] == 12);
    CHECK(j["stats"]["decode_tok_s"].get<double>() > 0);
    CHECK(j["stop_reason"] == "max_tokens");

    const Run chat =
        run("generate --model " + tinyLiteDir().string() +
            " --backend cpu --chat --prompt 'Hello! What is a mixture of experts?' -n 12 --greedy --ignore-eos --json");
    REQUIRE_MESSAGE(chat.code == 0, chat.out);
    const nlohmann::json c = nlohmann::json::parse(chat.out);
    CHECK(c["prompt_tokens"].get<std::vector<int32_t>>() == cases[0].tokens);  // the chat template
    CHECK(c["tokens"].get<std::vector<int32_t>>() == cases[0].greedy);

    const Run cuda = run("generate --model " + tinyLiteDir().string() + " --backend cuda --tokens 1,2 -n 2");
    if (cuda.code != 0) CHECK(cuda.out.find("CUDA") != std::string::npos);
}

TEST_CASE("dsv2 chat streams replies and keeps the conversation") {
    const Run r = run("chat --model " + tinyLiteDir().string() + " --backend cpu -n 8 --greedy --stats",
                      "Hello\\nMore please\\n/reset\\nHi\\n/quit\\n");
    REQUIRE_MESSAGE(r.code == 0, r.out);
    CHECK(r.out.find("(new conversation)") != std::string::npos);
    // Stats of three replies; the second turn reused the first turn's prompt from the cache.
    size_t count = 0;
    for (size_t at = r.out.find("reused"); at != std::string::npos; at = r.out.find("reused", at + 1)) ++count;
    REQUIRE(count == 3);
    // "... prompt 37 (0 reused) ..." (no std::regex: GCC 12 warns inside it under the sanitizers)
    std::vector<long> reused;
    for (size_t at = r.out.find(" reused)"); at != std::string::npos; at = r.out.find(" reused)", at + 1)) {
        const size_t open = r.out.rfind('(', at);
        reused.push_back(std::stol(r.out.substr(open + 1, at - open - 1)));
    }
    REQUIRE(reused.size() == 3);
    CHECK(reused[0] == 0);
    CHECK(reused[1] > 0);   // turn 2 reused turn 1 from the cache
    CHECK(reused[2] == 0);  // after /reset
}
