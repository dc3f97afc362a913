#include <doctest/doctest.h>

#include "model/safetensors_header.h"
#include "safetensors_builder.h"

using namespace dsv2;
using dsv2::test::safetensorsBytes;
using dsv2::test::TensorSpec;

namespace {
Result<SafetensorsHeader> parse(const std::vector<std::byte>& bytes) {
    return parseSafetensorsHeader(bytes, "x.safetensors");
}
Result<SafetensorsHeader> parseHeaderText(const std::string& header, size_t dataBytes) {
    return parse(safetensorsBytes(header, dataBytes));
}
bool mentions(const Status& s, const std::string& part) { return s.message().find(part) != std::string::npos; }
}  // namespace

TEST_CASE("a valid header yields every tensor with its dtype, shape and offsets") {
    const auto bytes = safetensorsBytes({{"b", "F32", {2, 3}, {}}, {"a", "BF16", {4}, {}}, {"s", "F16", {}, {}}});
    auto h = parse(bytes);
    REQUIRE_MESSAGE(h.isOk(), h.status().toString());
    REQUIRE(h->tensors.size() == 3);
    CHECK(h->tensors[0].name == "b");  // sorted by offset
    CHECK(h->tensors[0].dtype == DType::F32);
    CHECK(h->tensors[0].shape == std::vector<int64_t>{2, 3});
    CHECK(h->tensors[0].end == 24);
    CHECK(h->tensors[1].name == "a");
    CHECK(h->tensors[1].begin == 24);
    CHECK(h->tensors[2].shape.empty());  // a scalar: one element
    CHECK(h->tensors[2].end - h->tensors[2].begin == 2);
    CHECK(h->metadata.at("format") == "pt");
    CHECK(h->dataStart + h->dataBytes == bytes.size());
}

TEST_CASE("fp8 and integer dtypes are recognised by the parser") {
    auto h = parse(safetensorsBytes({{"w", "F8_E4M3", {4, 4}, {}}, {"scale", "F32", {1}, {}}, {"i", "I64", {2}, {}}}));
    REQUIRE(h.isOk());
    CHECK(h->tensors[0].dtype == DType::F8_E4M3);
    CHECK(h->tensors[2].dtype == DType::I64);
}

TEST_CASE("truncated and lying files are refused with a reason") {
    SUBCASE("shorter than the length prefix") {
        auto h = parse(std::vector<std::byte>(5));
        REQUIRE_FALSE(h.isOk());
        CHECK(h.status().code() == StatusCode::InvalidData);
        CHECK(mentions(h.status(), "x.safetensors"));
        CHECK(mentions(h.status(), "truncated"));
    }
    SUBCASE("header length beyond the file") {
        auto bytes = safetensorsBytes({{"a", "F32", {4}, {}}});
        bytes[7] = std::byte{0x40};  // 2^62 + n
        auto h = parse(bytes);
        REQUIRE_FALSE(h.isOk());
        CHECK(mentions(h.status(), "header length"));
    }
    SUBCASE("data cut off: offsets beyond the end") {
        auto bytes = safetensorsBytes({{"a", "F32", {4}, {}}, {"b", "F32", {1024}, {}}});
        bytes.resize(bytes.size() - 100);
        auto h = parse(bytes);
        REQUIRE_FALSE(h.isOk());
        CHECK(mentions(h.status(), "'b'"));
        CHECK(mentions(h.status(), "truncated"));
    }
    SUBCASE("byte size does not match dtype × shape") {
        auto h = parseHeaderText(R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,10]}})", 10);
        REQUIRE_FALSE(h.isOk());
        CHECK(mentions(h.status(), "'a'"));
        CHECK(mentions(h.status(), "needs 12"));
    }
    SUBCASE("overlapping tensors") {
        auto h = parseHeaderText(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                 R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                                 24);
        REQUIRE_FALSE(h.isOk());
        CHECK(mentions(h.status(), "overlap"));
        CHECK(mentions(h.status(), "'a'"));
        CHECK(mentions(h.status(), "'b'"));
    }
    SUBCASE("end before begin") {
        auto h = parseHeaderText(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8);
        REQUIRE_FALSE(h.isOk());
        CHECK(mentions(h.status(), "end before begin"));
    }
    SUBCASE("not JSON") {
        auto h = parseHeaderText("{\"a\": [1, 2", 0);
        REQUIRE_FALSE(h.isOk());
        CHECK(mentions(h.status(), "not valid JSON"));
    }
    SUBCASE("not an object") {
        auto h = parseHeaderText("[1, 2]", 0);
        REQUIRE_FALSE(h.isOk());
    }
    SUBCASE("duplicate tensor names") {
        auto h = parseHeaderText(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                 8);
        REQUIRE_FALSE(h.isOk());
        CHECK(mentions(h.status(), "twice"));
    }
    SUBCASE("absurd rank") {
        auto h = parseHeaderText(R"({"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})", 1);
        REQUIRE_FALSE(h.isOk());
        CHECK(mentions(h.status(), "rank 9"));
    }
    SUBCASE("element count overflows") {
        auto h = parseHeaderText(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4);
        REQUIRE_FALSE(h.isOk());
        CHECK(mentions(h.status(), "too large"));
    }
    SUBCASE("negative dimension") {
        auto h = parseHeaderText(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4);
        REQUIRE_FALSE(h.isOk());
    }
    SUBCASE("unknown dtype") {
        auto h = parseHeaderText(R"({"a":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,1]}})", 1);
        REQUIRE_FALSE(h.isOk());
        CHECK(h.status().code() == StatusCode::Unsupported);
        CHECK(mentions(h.status(), "Q4_K"));
    }
    SUBCASE("missing fields") {
        CHECK_FALSE(parseHeaderText(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4).isOk());
        CHECK_FALSE(parseHeaderText(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4).isOk());
        CHECK_FALSE(parseHeaderText(R"({"a":{"dtype":"F32","shape":[1]}})", 4).isOk());
        CHECK_FALSE(parseHeaderText(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4).isOk());
        CHECK_FALSE(parseHeaderText(R"({"a":7})", 4).isOk());
        CHECK_FALSE(parseHeaderText(R"({"__metadata__":{"k":1}})", 0).isOk());
    }
}

TEST_CASE("zero-sized tensors may share an offset") {
    auto h = parseHeaderText(R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                             4);
    REQUIRE_MESSAGE(h.isOk(), h.status().toString());
    CHECK(h->tensors.size() == 2);
}
