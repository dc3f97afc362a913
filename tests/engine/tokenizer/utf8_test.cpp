// UTF-8 helpers and the \s translation that makes PCRE2 agree with HF's regex engines.
#include <doctest/doctest.h>

#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

using namespace dsv2;

TEST_CASE("lossy UTF-8 replaces each maximal invalid subsequence once") {
    CHECK(utf8::lossy("abc") == "abc");
    CHECK(utf8::lossy("\xC3\xBC") == "\xC3\xBC");
    CHECK(utf8::lossy("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
    CHECK(utf8::lossy("\xE2\x82") == "\xEF\xBF\xBD");                        // truncated: one U+FFFD
    CHECK(utf8::lossy("\xE2\x82" "A") == "\xEF\xBF\xBD" "A");
    CHECK(utf8::lossy("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: 3 (ED, A0, 80)
    CHECK(utf8::lossy("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");              // overlong
    CHECK(utf8::lossy("\xEF\xBF\xBD") == "\xEF\xBF\xBD");                     // a real U+FFFD stays one
    CHECK(utf8::isValid("\xF0\x9F\xA6\x99"));
    CHECK_FALSE(utf8::isValid("\xF0\x9F\xA6"));
    CHECK_FALSE(utf8::isValid("\xF4\x90\x80\x80"));  // past U+10FFFF
}

TEST_CASE("completePrefixLength holds back only a valid unfinished tail") {
    CHECK(utf8::completePrefixLength("") == 0);
    CHECK(utf8::completePrefixLength("abc") == 3);
    CHECK(utf8::completePrefixLength("ab\xF0") == 2);
    CHECK(utf8::completePrefixLength("ab\xF0\x9F") == 2);
    CHECK(utf8::completePrefixLength("ab\xF0\x9F\xA6") == 2);
    CHECK(utf8::completePrefixLength("ab\xF0\x9F\xA6\x99") == 6);
    CHECK(utf8::completePrefixLength("ab\xE0\x80") == 4);  // E0 80 can never become valid: emit (as U+FFFD)
    CHECK(utf8::completePrefixLength("ab\x80") == 3);      // stray continuation byte
    CHECK(utf8::completePrefixLength("\xC3") == 0);
}

TEST_CASE("\\s means Unicode White_Space, as in Oniguruma") {
    auto ws = Regex::compile(R"(^\s$)");
    REQUIRE(ws.isOk());
    Regex::MatchScratch scratch;
    auto matches = [&](const char* s) {
        size_t b = 0;
        size_t e = 0;
        return ws->find(s, 0, scratch, b, e);
    };
    CHECK(matches(" "));
    CHECK(matches("\n"));
    CHECK(matches("\xC2\x85"));       // U+0085 NEL: White_Space
    CHECK(matches("\xE3\x80\x80"));   // U+3000
    CHECK_FALSE(matches("\xE1\xA0\x8E"));  // U+180E: not White_Space (PCRE2's own \s says yes)
    CHECK_FALSE(matches("\xE2\x80\x8B"));  // U+200B
    CHECK_FALSE(matches("a"));

    auto inClass = Regex::compile(R"(^[\sa]+$)");
    REQUIRE(inClass.isOk());
    size_t b = 0;
    size_t e = 0;
    CHECK(inClass->find("a \xC2\x85" "a", 0, scratch, b, e));
    CHECK(translateWhiteSpaceClasses(R"([\]\s])").find(R"(\s)") == std::string::npos);
    CHECK(translateWhiteSpaceClasses(R"(\\s)") == R"(\\s)");  // an escaped backslash, then 's'
}
