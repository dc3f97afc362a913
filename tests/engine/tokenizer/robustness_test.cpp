// Malformed input never crashes: random bytes through encode/decode/streaming, and mutated
// chat templates and tokenizer.json texts through the parsers (each must give a value or a
// Status). Seeded, so a failure reproduces.
#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "test_data.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

using namespace dsv2;

namespace {

std::string readFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string mutate(std::string s, std::mt19937& rng) {
    std::uniform_int_distribution<int> op(0, 3);
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
        const size_t pos = rng() % s.size();
        switch (op(rng)) {
        case 0: s.erase(pos, 1 + rng() % 8); break;
        case 1: s.insert(pos, 1, static_cast<char>(rng() % 256)); break;
        case 2: s[pos] = "{}%#-|()[]'\".,:~+ \n"[rng() % 19]; break;
        default: s.insert(pos, s.substr(rng() % s.size(), rng() % 16)); break;
        }
    }
    return s;
}

}  // namespace

TEST_CASE("random bytes: encode, decode and the streaming decoder hold up") {
    auto t = Tokenizer::fromFile(test::tinyLiteDir() / "tokenizer.json");
    REQUIRE(t.isOk());
    std::mt19937 rng(1234);
    for (int i = 0; i < 300; ++i) {
        std::string bytes(rng() % 200, '\0');
        for (char& c : bytes) c = static_cast<char>(rng() % 256);
        const auto ids = (*t)->encode(bytes, i % 2 ? SpecialTokens::Allow : SpecialTokens::AsText);
        const std::string decoded = (*t)->decode(ids);
        CHECK(utf8::isValid(decoded));
        CHECK(decoded == utf8::lossy(bytes));  // encoding repairs, then round-trips exactly
        StreamingDecoder stream(**t);
        std::string joined;
        for (const int32_t id : ids) joined += stream.push(id);
        joined += stream.flush();
        CHECK(joined == decoded);
    }
    // Arbitrary ids, including out-of-range ones.
    StreamingDecoder stream(**t);
    std::string out;
    for (int i = 0; i < 500; ++i) out += stream.push(static_cast<int32_t>(rng() % 1200) - 100);
    out += stream.flush();
    CHECK(utf8::isValid(out));
}

TEST_CASE("mutated chat templates: a Status or a result, never a crash") {
    const std::string base = readFile(std::filesystem::path(__FILE__).parent_path() / "chat_templates" / "deepseek-v2.5.jinja") +
                             readFile(std::filesystem::path(__FILE__).parent_path() / "chat_templates" / "features.jinja");
    REQUIRE(base.size() > 1000);
    const std::vector<ChatMessage> messages{{"system", "s"}, {"user", "u ü"}, {"assistant", "a"}, {"user", "v"}};
    std::mt19937 rng(99);
    int parsed = 0;
    int failed = 0;
    for (int i = 0; i < 400; ++i) {
        auto t = ChatTemplate::fromString(mutate(base, rng), "<s>", "</s>");
        if (!t) {
            ++failed;
            CHECK_FALSE(t.status().message().empty());
            continue;
        }
        ++parsed;
        auto r = t->render(messages, true);
        if (!r) CHECK_FALSE(r.status().message().empty());
    }
    CHECK(parsed + failed == 400);
    CHECK(failed > 0);  // the mutations do break things; the point is that they fail cleanly
}

TEST_CASE("mutated tokenizer.json: a Status or a tokenizer, never a crash") {
    const std::string base = readFile(test::tinyLiteDir() / "tokenizer.json");
    std::mt19937 rng(7);
    int ok = 0;
    for (int i = 0; i < 150; ++i) {
        auto t = Tokenizer::fromJson(mutate(base, rng), "mutated");
        if (t) {
            ++ok;
            const auto ids = (*t)->encode("Hello, world! 2024 ü");
            CHECK(utf8::isValid((*t)->decode(ids)));
        } else {
            CHECK_FALSE(t.status().message().empty());
        }
    }
    MESSAGE(ok << " of 150 mutated tokenizer.json files still loaded");
}
