// Tokenizer: llama.cpp's 46 DeepSeek cases, the tiny-lite prompt ids, added and special tokens,
// decode round trips, the streaming decoder, and clear errors for malformed tokenizer.json.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_data.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

using namespace dsv2;

namespace {

std::string readFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot open " << path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

const Tokenizer& deepseek() {
    static std::unique_ptr<Tokenizer> tokenizer = [] {
        auto r = Tokenizer::fromFile(test::deepseekTokenizerDir() / "tokenizer.json");
        REQUIRE_MESSAGE(r.isOk(), r.status().toString());
        return std::move(r).value();
    }();
    return *tokenizer;
}

struct Case {
    std::string text;
    std::vector<int32_t> ids;
};

// cases.inp: texts separated by "\n__ggml_vocab_test__\n"; cases.out: one line of ids per text.
std::vector<Case> llamaCppCases() {
    const std::string inp = readFile(test::deepseekTokenizerDir() / "cases.inp");
    const std::string out = readFile(test::deepseekTokenizerDir() / "cases.out");
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<Case> cases;
    size_t pos = 0;
    while (true) {
        const size_t next = inp.find(sep, pos);
        if (next == std::string::npos) break;
        cases.push_back({inp.substr(pos, next - pos), {}});
        pos = next + sep.size();
    }
    std::istringstream lines(out);
    std::string line;
    for (auto& c : cases) {
        REQUIRE(std::getline(lines, line));
        std::istringstream ids(line);
        int32_t id = 0;
        while (ids >> id) c.ids.push_back(id);
    }
    return cases;
}

std::string idsToString(const std::vector<int32_t>& ids) {
    std::string s;
    for (const int32_t id : ids) s += " " + std::to_string(id);
    return s;
}

}  // namespace

TEST_CASE("the 46 llama.cpp DeepSeek cases encode exactly and round-trip") {
    const auto cases = llamaCppCases();
    REQUIRE(cases.size() == 46);
    int mismatches = 0;
    for (const auto& c : cases) {
        const auto ids = deepseek().encode(c.text);
        if (ids != c.ids) ++mismatches;
        CHECK_MESSAGE(ids == c.ids, "text '" << c.text << "'\n got:" << idsToString(ids) << "\nwant:" << idsToString(c.ids));
        CHECK_MESSAGE(deepseek().decode(ids) == c.text, "round trip of '" << c.text << "'");
    }
    CHECK(mismatches == 0);
}

TEST_CASE("single-character added tokens are always matched; special ones only when allowed") {
    const Tokenizer& t = deepseek();
    CHECK(t.encode("Führer") == std::vector<int32_t>{37, 100014, 71, 6245});
    CHECK(t.encode("Führer", SpecialTokens::Allow) == std::vector<int32_t>{37, 100014, 71, 6245});
    CHECK(t.decode(std::vector<int32_t>{37, 100014, 71, 6245}) == "Führer");

    const std::string eos = "<｜end▁of▁sentence｜>";
    REQUIRE(t.findToken(eos) == 100001);
    REQUIRE(t.findToken("<｜begin▁of▁sentence｜>") == 100000);
    CHECK(t.encode(eos, SpecialTokens::Allow) == std::vector<int32_t>{100001});
    const auto asText = t.encode(eos);
    CHECK(asText.size() > 1);
    CHECK(std::find(asText.begin(), asText.end(), 100001) == asText.end());
    CHECK(t.decode(asText) == eos);
    CHECK(t.isSpecial(100001));
    CHECK_FALSE(t.isSpecial(100014));
    CHECK_FALSE(t.isSpecial(37));
    CHECK(t.size() == 100015);
    CHECK(t.decode(std::vector<int32_t>{100000, 37, 100001}, /*skipSpecial=*/true) == "F");
    CHECK(t.decode(std::vector<int32_t>{100000, 37}) == "<｜begin▁of▁sentence｜>F");
}

TEST_CASE("encodeWithSpecialRanges: special tokens only inside the allowed ranges") {
    const Tokenizer& t = deepseek();
    const std::string eos = "<｜end▁of▁sentence｜>";
    const std::string text = "Hi" + eos + "user says " + eos;
    // Allow only the first eos.
    const std::vector<TextRange> allowed{{2, 2 + eos.size()}};
    const auto ids = t.encodeWithSpecialRanges(text, allowed);
    CHECK(std::count(ids.begin(), ids.end(), 100001) == 1);
    CHECK(t.decode(ids) == text);
    // A range that covers only part of the token does not allow it.
    const std::vector<TextRange> partial{{0, 2 + eos.size() - 1}};
    const auto ids2 = t.encodeWithSpecialRanges(text, partial);
    CHECK(std::count(ids2.begin(), ids2.end(), 100001) == 0);
    // Ranges must hold the token whole even if two adjacent ranges together would.
    const std::vector<TextRange> split{{0, 10}, {10, text.size()}};
    const auto ids3 = t.encodeWithSpecialRanges(text, split);
    CHECK(std::count(ids3.begin(), ids3.end(), 100001) == 1);  // only the second eos is inside one range
}

TEST_CASE("tiny-lite reference prompts encode to the reference ids") {
    auto r = Tokenizer::fromFile(test::tinyLiteDir() / "tokenizer.json");
    REQUIRE_MESSAGE(r.isOk(), r.status().toString());
    const Tokenizer& t = **r;
    CHECK(t.size() == 512);
    const auto ref = nlohmann::json::parse(readFile(test::tinyLiteDir() / "reference.json"));
    REQUIRE(ref["cases"].size() == 2);
    for (const auto& c : ref["cases"]) {
        const std::string prompt = c["prompt_text"].get<std::string>();
        const auto want = c["token_ids"].get<std::vector<int32_t>>();
        CHECK(t.encode(prompt, SpecialTokens::Allow) == want);
        CHECK(t.decode(want) == prompt);
    }
}

TEST_CASE("streaming decoder never emits half a character") {
    const Tokenizer& t = deepseek();
    const std::string text = "Llama 🦙 says ½ нещо 你好世界 កាន់តែ — done";
    const auto ids = t.encode(text);
    // The test only means something if some token holds an incomplete character.
    int partialTokens = 0;
    for (const int32_t id : ids) partialTokens += utf8::isValid(t.tokenBytes(id)) ? 0 : 1;
    REQUIRE(partialTokens > 0);

    StreamingDecoder decoder(t);
    std::string joined;
    int heldBack = 0;
    for (const int32_t id : ids) {
        const std::string piece = decoder.push(id);
        CHECK(utf8::isValid(piece));
        if (piece.empty()) ++heldBack;
        joined += piece;
    }
    CHECK(heldBack > 0);
    joined += decoder.flush();
    CHECK(joined == text);
}

TEST_CASE("streaming decoder: specials skipped, dangling bytes become U+FFFD on flush") {
    const Tokenizer& t = deepseek();
    const auto llama = t.encode("🦙");
    REQUIRE(llama.size() >= 2);
    StreamingDecoder decoder(t);
    CHECK(decoder.push(100000).empty());  // bos: special, skipped
    CHECK(decoder.push(llama[0]).empty());
    CHECK(decoder.flush() == std::string(utf8::kReplacement));
    CHECK(decoder.flush().empty());

    StreamingDecoder keepSpecial(t, /*skipSpecial=*/false);
    CHECK(keepSpecial.push(100001) == "<｜end▁of▁sentence｜>");
}

TEST_CASE("invalid UTF-8 input is repaired, not a crash") {
    const Tokenizer& t = deepseek();
    const std::string bad = "ab\xff\xfe" "cd\xe2\x82";
    const auto ids = t.encode(bad);
    CHECK(t.decode(ids) == "ab\xEF\xBF\xBD\xEF\xBF\xBD" "cd\xEF\xBF\xBD");
    CHECK(t.encode("").empty());
    CHECK(t.decode(std::vector<int32_t>{-5, 999999999}).empty());
    CHECK(t.tokenBytes(-1).empty());
}

TEST_CASE("findToken: added tokens, spelled vocab entries, raw bytes") {
    const Tokenizer& t = deepseek();
    const auto newline = t.findToken("\n");
    REQUIRE(newline.has_value());
    CHECK(t.tokenBytes(*newline) == "\n");
    CHECK(t.tokenSpelling(*newline) == "Ċ");
    CHECK(t.findToken("Ċ") == newline);
    CHECK(t.findToken("ü") == 100014);
    CHECK_FALSE(t.findToken("no such token, surely").has_value());
}

namespace {

// A minimal byte-level tokenizer.json with the given pre-tokenizer and merges.
std::string tinyJson(const std::string& preTokenizer, const std::string& merges = "[]",
                     const std::string& extra = "") {
    std::string vocab = "{";
    for (int b = 0; b < 256; ++b) {
        // The 256 GPT-2 stand-ins, ids 0..255 in byte order.
        std::string standIn;
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        static int shifted = 0;
        if (b == 0) shifted = 256;
        utf8::append(standIn, printable ? static_cast<char32_t>(b) : static_cast<char32_t>(shifted++));
        vocab += nlohmann::json(standIn).dump() + ":" + std::to_string(b) + ",";
    }
    vocab += "\"ab\":256,\"abc\":257,\"Ġa\":258}";
    return "{\"model\":{\"type\":\"BPE\",\"vocab\":" + vocab + ",\"merges\":" + merges + "}," +
           "\"pre_tokenizer\":" + preTokenizer + extra + "}";
}

}  // namespace

TEST_CASE("a hand-made tokenizer.json: merges by rank, both merge spellings, GPT-2 regex") {
    const std::string byteLevel = R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":true})";
    auto r = Tokenizer::fromJson(tinyJson(byteLevel, R"(["a b", ["ab", "c"], "Ġ a"])"), "test");
    REQUIRE_MESSAGE(r.isOk(), r.status().toString());
    CHECK((*r)->encode("abc") == std::vector<int32_t>{257});
    CHECK((*r)->encode("abcab a") == std::vector<int32_t>{257, 256, 258});  // a b c a b → ab c ab → abc ab; " a"
    CHECK((*r)->size() == 259);

    // add_prefix_space puts a space before the piece.
    auto p = Tokenizer::fromJson(tinyJson(R"({"type":"ByteLevel","add_prefix_space":true,"use_regex":true})",
                                          R"(["Ġ a"])"),
                                 "test");
    REQUIRE(p.isOk());
    CHECK((*p)->encode("a") == std::vector<int32_t>{258});
}

TEST_CASE("malformed or unsupported tokenizer.json gives a clear error") {
    const std::string byteLevel = R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":true})";
    auto check = [](const Result<std::unique_ptr<Tokenizer>>& r, StatusCode code, const std::string& needle) {
        REQUIRE_FALSE(r.isOk());
        CHECK(r.status().code() == code);
        CHECK_MESSAGE(r.status().message().find(needle) != std::string::npos, r.status().toString());
    };
    check(Tokenizer::fromJson("{not json", "bad.json"), StatusCode::InvalidData, "bad.json");
    check(Tokenizer::fromJson("[1,2]", "x"), StatusCode::InvalidData, "object");
    check(Tokenizer::fromJson(tinyJson(R"({"type":"Metaspace"})"), "x"), StatusCode::Unsupported, "Metaspace");
    check(Tokenizer::fromJson(tinyJson(byteLevel, R"(["a zz"])"), "x"), StatusCode::InvalidData, "zz");
    check(Tokenizer::fromJson(tinyJson(byteLevel, R"([42])"), "x"), StatusCode::InvalidData, "merge #0");
    check(Tokenizer::fromJson(tinyJson(R"({"type":"Split","pattern":{"Regex":"(["},"behavior":"Isolated"})"), "x"),
          StatusCode::InvalidData, "regex");
    check(Tokenizer::fromJson(tinyJson(R"({"type":"Digits","individual_digits":true})"), "x"), StatusCode::Unsupported,
          "ByteLevel");
    check(Tokenizer::fromJson(tinyJson(byteLevel, "[]", R"(,"normalizer":{"type":"NFKC"})"), "x"),
          StatusCode::Unsupported, "NFKC");
    check(Tokenizer::fromJson(tinyJson(byteLevel, "[]", R"(,"added_tokens":[{"id":"x"}])"), "x"),
          StatusCode::InvalidData, "added token");
    check(Tokenizer::fromFile("/nonexistent/tokenizer.json"), StatusCode::NotFound, "/nonexistent");
    check(Tokenizer::fromFile(test::tinyLiteDir()), StatusCode::InvalidArgument, "folder");
}

TEST_CASE("added-token options lstrip, rstrip, single_word behave as in HF") {
    // The tiny-lite tokenizer plus three added tokens; expected ids from HF tokenizers 0.23.3.
    auto json = nlohmann::json::parse(readFile(test::tinyLiteDir() / "tokenizer.json"));
    json["added_tokens"].push_back({{"id", 512}, {"content", "<tag>"}, {"single_word", false}, {"lstrip", true},
                                    {"rstrip", true}, {"normalized", false}, {"special", true}});
    json["added_tokens"].push_back({{"id", 513}, {"content", "cat"}, {"single_word", true}, {"lstrip", false},
                                    {"rstrip", false}, {"normalized", true}, {"special", false}});
    json["added_tokens"].push_back({{"id", 514}, {"content", "<ta"}, {"single_word", false}, {"lstrip", false},
                                    {"rstrip", false}, {"normalized", false}, {"special", false}});
    auto r = Tokenizer::fromJson(json.dump(), "tiny+added");
    REQUIRE_MESSAGE(r.isOk(), r.status().toString());
    const Tokenizer& t = **r;
    const auto allow = SpecialTokens::Allow;
    CHECK(t.encode("a  <tag>  b", allow) == std::vector<int32_t>{64, 512, 65});
    CHECK(t.encode("concat cat cats", allow) == std::vector<int32_t>{488, 66, 271, 220, 513, 282, 271, 82});
    CHECK(t.encode("cat", allow) == std::vector<int32_t>{513});
    CHECK(t.encode("x cat.", allow) == std::vector<int32_t>{87, 220, 513, 13});
    CHECK(t.encode("<ta<tag>", allow) == std::vector<int32_t>{514, 512});
    CHECK(t.encode(" \n<tag>\n z", allow) == std::vector<int32_t>{512, 89});
    CHECK(t.encode("a<｜end▁of▁sentence｜>b", allow) == std::vector<int32_t>{64, 511, 65});
    CHECK(t.size() == 515);
    // Not allowed: "<tag>" is text, and the non-special "<ta" inside it still matches.
    const auto asText = t.encode("<tag>");
    CHECK(asText.front() == 514);
    CHECK(std::find(asText.begin(), asText.end(), 512) == asText.end());
}
