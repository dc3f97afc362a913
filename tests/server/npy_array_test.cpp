// The .npy + base64 codec of routed_experts: round trips, NumPy's own bytes, and bad payloads.
#include <doctest/doctest.h>

#include "remote/npy_array.h"

using namespace dsv2::remote;

TEST_CASE("base64 round-trips every length and matches the standard") {
    CHECK(base64Encode("") == "");
    CHECK(base64Encode("f") == "Zg==");
    CHECK(base64Encode("fo") == "Zm8=");
    CHECK(base64Encode("foo") == "Zm9v");
    CHECK(base64Encode("foobar") == "Zm9vYmFy");
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    for (size_t n = 0; n <= all.size(); n += 17) {
        auto back = base64Decode(base64Encode(all.substr(0, n)));
        REQUIRE(back.isOk());
        CHECK(*back == all.substr(0, n));
    }
    CHECK_FALSE(base64Decode("Zm9v!").isOk());
}

TEST_CASE("int32 and float32 arrays round-trip with their shape") {
    std::vector<int32_t> ids = {-1, -1, 3, 7, 0, 5, -1, -1, 2, 1, 4, 6};
    auto a = decodeNpyBase64(encodeNpyBase64(ids, {2, 3, 2}));
    REQUIRE(a.isOk());
    CHECK(a->dtype == "<i4");
    CHECK(a->shape == std::vector<int64_t>{2, 3, 2});
    for (size_t i = 0; i < ids.size(); ++i) CHECK(a->values[i] == ids[i]);

    std::vector<float> w = {0.25f, 0.75f, -1.5f};
    auto b = decodeNpyBase64(encodeNpyBase64(w, {3}));
    REQUIRE(b.isOk());
    CHECK(b->shape == std::vector<int64_t>{3});
    CHECK(b->values[2] == doctest::Approx(-1.5));

    auto empty = decodeNpyBase64(encodeNpyBase64(std::vector<int32_t>{}, {0, 3, 2}));
    REQUIRE(empty.isOk());
    CHECK(empty->values.empty());
}

TEST_CASE("the header is what numpy writes: 64-byte aligned, ends in a newline") {
    auto raw = base64Decode(encodeNpyBase64(std::vector<int32_t>{1, 2}, {2}));
    REQUIRE(raw.isOk());
    const size_t headerLen = static_cast<uint8_t>((*raw)[8]) | (static_cast<uint8_t>((*raw)[9]) << 8);
    CHECK((10 + headerLen) % 64 == 0);
    CHECK((*raw)[10 + headerLen - 1] == '\n');
    CHECK(raw->find("'shape': (2,)") != std::string::npos);
    CHECK(raw->size() == 10 + headerLen + 8);
}

TEST_CASE("a uint8 array as older vLLM versions send it is read") {
    // np.save of np.array([[[1, 4]], [[0, 3]]], dtype=np.uint8), header padded to a multiple of 64.
    std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2), }";
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string file = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) + '\0' + header;
    file += std::string("\x01\x04\x00\x03", 4);
    auto a = decodeNpyBase64(base64Encode(file));
    REQUIRE(a.isOk());
    CHECK(a->shape == std::vector<int64_t>{2, 1, 2});
    CHECK(a->values == std::vector<double>{1, 4, 0, 3});
}

TEST_CASE("bad payloads are refused with a reason") {
    auto notNpy = decodeNpyBase64(base64Encode("hello world, not numpy"));
    REQUIRE_FALSE(notNpy.isOk());
    CHECK(notNpy.status().message().find("not a .npy") != std::string::npos);

    std::string truncated = *base64Decode(encodeNpyBase64(std::vector<int32_t>{1, 2, 3}, {3}));
    truncated.pop_back();
    auto cut = decodeNpyBase64(base64Encode(truncated));
    REQUIRE_FALSE(cut.isOk());
    CHECK(cut.status().message().find("bytes but the shape needs") != std::string::npos);
}
