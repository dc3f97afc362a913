// The SSE parser against one stream cut into pieces at every possible place: events must come out
// the same whatever the network's chunking.
#include <doctest/doctest.h>

#include <random>

#include "remote/sse_parser.h"

using dsv2::remote::SseEvent;
using dsv2::remote::SseParser;

namespace {

std::vector<SseEvent> parseInPieces(const std::string& stream, const std::vector<size_t>& cuts) {
    std::vector<SseEvent> events;
    SseParser parser([&](const SseEvent& e) {
        events.push_back(e);
        return true;
    });
    size_t at = 0;
    for (size_t cut : cuts) {
        parser.feed(std::string_view(stream).substr(at, cut - at));
        at = cut;
    }
    parser.feed(std::string_view(stream).substr(at));
    return events;
}

// CRLF, lone CR and LF line ends, a comment, a two-line data field, an event name, a field
// without a space after the colon, and [DONE].
const std::string kStream =
    ": keep-alive\r\n\r\n"
    "data: {\"a\": 1}\r\n\r\n"
    "event: error\ndata: line one\ndata: line two\n\n"
    "data:no-space\r\r"
    "data: \xC3\xA9t\xC3\xA9\n\n"
    "data: [DONE]\n\n";

void checkEvents(const std::vector<SseEvent>& e) {
    REQUIRE(e.size() == 5);
    CHECK(e[0].data == "{\"a\": 1}");
    CHECK(e[0].event.empty());
    CHECK(e[1].event == "error");
    CHECK(e[1].data == "line one\nline two");
    CHECK(e[2].data == "no-space");
    CHECK(e[3].data == "\xC3\xA9t\xC3\xA9");
    CHECK(e[4].data == "[DONE]");
}

}  // namespace

TEST_CASE("SSE: the whole stream at once") { checkEvents(parseInPieces(kStream, {})); }

TEST_CASE("SSE: cut once at every position (inside \\r\\n, inside UTF-8, inside 'data:')") {
    for (size_t cut = 0; cut <= kStream.size(); ++cut) {
        CAPTURE(cut);
        checkEvents(parseInPieces(kStream, {cut}));
    }
}

TEST_CASE("SSE: byte by byte, and random cuts") {
    std::vector<size_t> every;
    for (size_t i = 1; i < kStream.size(); ++i) every.push_back(i);
    checkEvents(parseInPieces(kStream, every));
    std::mt19937 rng(7);
    for (int round = 0; round < 200; ++round) {
        std::vector<size_t> cuts;
        for (size_t i = 1; i < kStream.size(); ++i)
            if (rng() % 4 == 0) cuts.push_back(i);
        checkEvents(parseInPieces(kStream, cuts));
    }
}

TEST_CASE("SSE: the handler can stop the parse; an unfinished event is not dispatched") {
    int seen = 0;
    SseParser parser([&](const SseEvent&) { return ++seen < 1; });
    CHECK_FALSE(parser.feed("data: one\n\ndata: two\n\n"));
    CHECK(seen == 1);

    std::vector<SseEvent> events;
    SseParser tail([&](const SseEvent& e) {
        events.push_back(e);
        return true;
    });
    CHECK(tail.feed("data: complete\n\ndata: cut off"));
    CHECK(events.size() == 1);
    CHECK_FALSE(tail.finish());
}
