// The compact token-record BLOB, f16 conversion, UTF-8 helpers and the search query builder.
#include "storage_test_util.h"

#include "sqlite_db.h"
#include "store_internal.h"
#include "token_codec.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace dsv2::storage;
using namespace dsv2::storage::detail;
using namespace dsv2::storage::test;

TEST_CASE("f16 conversion is exact where it can be and rounds to nearest even elsewhere") {
    CHECK(floatToHalf(0.0f) == 0x0000);
    CHECK(floatToHalf(-0.0f) == 0x8000);
    CHECK(floatToHalf(1.0f) == 0x3c00);
    CHECK(floatToHalf(-2.0f) == 0xc000);
    CHECK(floatToHalf(65504.0f) == 0x7bff);                 // largest finite half
    CHECK(floatToHalf(65520.0f) == 0x7c00);                 // rounds up to infinity
    CHECK(floatToHalf(std::numeric_limits<float>::infinity()) == 0x7c00);
    CHECK(std::isnan(halfToFloat(floatToHalf(std::nanf("")))));
    CHECK(floatToHalf(std::ldexp(1.0f, -24)) == 0x0001);    // smallest subnormal
    CHECK(floatToHalf(std::ldexp(1.0f, -25)) == 0x0000);    // halfway to zero: ties to even
    CHECK(floatToHalf(std::ldexp(3.0f, -25)) == 0x0002);    // 1.5 ulp: ties to even (up)
    CHECK(floatToHalf(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // halfway: stays even
    CHECK(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
    // Every finite half survives half -> float -> half.
    for (std::uint32_t h = 0; h < 0x10000; ++h) {
        const auto half = static_cast<std::uint16_t>(h);
        if ((half & 0x7c00) == 0x7c00 && (half & 0x3ff)) continue;  // NaN payloads
        REQUIRE(floatToHalf(halfToFloat(half)) == half);
    }
    // Relative error of a routing weight stays within half an f16 ulp.
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(1e-3f, 1.0f);
    for (int i = 0; i < 10000; ++i) {
        const float w = dist(rng);
        CHECK(std::fabs(roundToHalf(w) - w) <= w * 0.00049f);
    }
}

TEST_CASE("token records round-trip through the BLOB format") {
    std::vector<TokenRecord> tokens;
    for (int i = 0; i < 50; ++i) {
        TokenRecord t = makeRecord(i);
        t.textOffset = static_cast<std::uint32_t>(i * 3);
        t.textLength = 3;
        tokens.push_back(t);
    }
    tokens[3].logprob.reset();
    tokens[4].topLogprobs.clear();
    tokens[5].moeLayers = 0;  // a token without routing (e.g. a dense layer only)
    tokens[5].topK = 0;
    tokens[5].expertIds.clear();
    tokens[5].expertWeights.clear();

    SUBCASE("expert ids that fit a byte") {
        const auto blob = encodeTokenRecords(tokens);
        CHECK(blob[0] == kTokenBlobVersion);
        CHECK((blob[1] & 1) == 1);
        CHECK(decodeTokenRecords(blob) == tokens);  // the weights above are exact in f16
    }
    SUBCASE("expert ids past 255 (DeepSeek-V2 has 160 experts; later models more)") {
        tokens[7].expertIds[0] = 300;
        const auto blob = encodeTokenRecords(tokens);
        CHECK((blob[1] & 1) == 0);
        CHECK(decodeTokenRecords(blob) == tokens);
    }
    SUBCASE("routing costs 3 bytes per expert with small ids") {
        std::vector<TokenRecord> one = {makeRecord(1, 26, 6)};
        one[0].topLogprobs.clear();
        one[0].logprob.reset();
        CHECK(encodeTokenRecords(one).size() == 6 + 4 + 4 + 4 + 1 + 1 + 2 + 1 + 26 * 6 * 3);
    }
}

TEST_CASE("malformed token BLOBs are refused with InvalidData, never read past their end") {
    std::vector<TokenRecord> tokens = {makeRecord(1), makeRecord(2)};
    auto blob = encodeTokenRecords(tokens);
    auto expectInvalid = [](const std::vector<std::uint8_t>& bytes) {
        try {
            (void)decodeTokenRecords(bytes);
            FAIL("decoded a malformed blob");
        } catch (const StorageException& e) {
            CHECK(e.error().code() == ErrorCode::InvalidData);
        }
    };
    for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{5}, blob.size() / 2, blob.size() - 1}) {
        expectInvalid(std::vector<std::uint8_t>(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(cut)));
    }
    auto newer = blob;
    newer[0] = kTokenBlobVersion + 1;
    expectInvalid(newer);
    auto trailing = blob;
    trailing.push_back(0);
    expectInvalid(trailing);
    auto absurdCount = blob;
    absurdCount[2] = absurdCount[3] = absurdCount[4] = absurdCount[5] = 0xff;
    expectInvalid(absurdCount);
}

TEST_CASE("UTF-8 helpers") {
    CHECK(isValidUtf8("plain ascii"));
    CHECK(isValidUtf8("café 深度求索 🙂"));
    CHECK_FALSE(isValidUtf8(std::string("\xe4\xb8", 2)));
    CHECK_FALSE(isValidUtf8("\xc0\xaf"));          // overlong
    CHECK_FALSE(isValidUtf8("\xed\xa0\x80"));      // surrogate
    CHECK_FALSE(isValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
    const std::string cjk = "深";                  // 3 bytes
    CHECK(utf8SafePrefix("ab" + cjk) == 5);
    CHECK(utf8SafePrefix("ab" + cjk.substr(0, 2)) == 2);
    CHECK(utf8SafePrefix("ab" + cjk.substr(0, 1)) == 2);
    const std::string emoji = "🙂";  // 4 bytes
    CHECK(utf8SafePrefix("x" + emoji.substr(0, 3)) == 1);
    CHECK(utf8SafePrefix("x" + emoji) == 5);
    CHECK(utf8SafePrefix("") == 0);
}

TEST_CASE("user search text becomes a safe FTS5 query") {
    CHECK(ftsQueryFromUserText("hello world") == "\"hello\" \"world\"");
    CHECK(ftsQueryFromUserText("  C++   templates ") == "\"C++\" \"templates\"");
    CHECK(ftsQueryFromUserText("\"exact phrase\" other") == "\"exact phrase\" \"other\"");
    CHECK(ftsQueryFromUserText("dedup*") == "\"dedup\"*");
    CHECK(ftsQueryFromUserText("say \"hi") == "\"say\" \"hi\"");
    CHECK(ftsQueryFromUserText("a\"b") == "\"a\"\"b\"");
    CHECK(ftsQueryFromUserText("OR AND NOT") == "\"OR\" \"AND\" \"NOT\"");  // words, not operators
    CHECK(ftsQueryFromUserText("++ -- **").empty());
    CHECK(ftsQueryFromUserText("深度求索").find("深度求索") != std::string::npos);
}
