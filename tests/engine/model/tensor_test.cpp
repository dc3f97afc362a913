#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "model/tensor.h"

using namespace dsv2;

namespace {
uint32_t bitsOf(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float floatOf(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
}  // namespace

TEST_CASE("dtype names and sizes follow the safetensors format") {
    CHECK(dtypeFromName("BF16") == DType::BF16);
    CHECK(dtypeFromName("F8_E4M3") == DType::F8_E4M3);
    CHECK(dtypeFromName("bf16") == DType::Unknown);  // the format is case-sensitive
    CHECK(dtypeFromName("unknown") == DType::Unknown);
    CHECK(dtypeSize(DType::BF16) == 2);
    CHECK(dtypeSize(DType::F32) == 4);
    CHECK(dtypeSize(DType::F8_E5M2) == 1);
    CHECK(dtypeSize(DType::I64) == 8);
    CHECK(dtypeSize(DType::Unknown) == 0);
    CHECK(std::string(dtypeName(DType::F16)) == "F16");
    CHECK(dtypeComputable(DType::F16));
    CHECK_FALSE(dtypeComputable(DType::F8_E4M3));
    CHECK_FALSE(dtypeComputable(DType::I32));
}

TEST_CASE("bf16 conversion rounds to nearest even and keeps specials") {
    CHECK(floatToBf16(1.0f) == 0x3f80);
    CHECK(bf16ToFloat(0x3f80) == 1.0f);
    CHECK(bf16ToFloat(0xc000) == -2.0f);
    // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
    CHECK(floatToBf16(floatOf(0x3f808000)) == 0x3f80);
    // 1.0078125 + half ulp ties up to the even neighbour 1.015625.
    CHECK(floatToBf16(floatOf(0x3f818000)) == 0x3f82);
    CHECK(floatToBf16(floatOf(0x3f808001)) == 0x3f81);  // just above half: rounds up
    CHECK(std::isnan(bf16ToFloat(floatToBf16(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(bf16ToFloat(floatToBf16(std::numeric_limits<float>::infinity())) == std::numeric_limits<float>::infinity());
    // Every bf16 value survives a round trip through float.
    for (uint32_t b = 0; b < 0x10000; ++b) {
        const float f = bf16ToFloat(static_cast<uint16_t>(b));
        if (std::isnan(f)) continue;
        REQUIRE(floatToBf16(f) == b);
    }
}

TEST_CASE("f16 conversion: exhaustive round trip, subnormals, overflow, ties") {
    for (uint32_t b = 0; b < 0x10000; ++b) {
        const float f = f16ToFloat(static_cast<uint16_t>(b));
        if (std::isnan(f)) {
            REQUIRE(std::isnan(f16ToFloat(floatToF16(f))));
            continue;
        }
        REQUIRE(floatToF16(f) == b);
    }
    CHECK(f16ToFloat(0x3c00) == 1.0f);
    CHECK(f16ToFloat(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK(f16ToFloat(0x7bff) == 65504.0f);
    CHECK(floatToF16(65519.0f) == 0x7bff);  // below the rounding boundary
    CHECK(floatToF16(65520.0f) == 0x7c00);  // rounds to inf
    CHECK(floatToF16(1e-8f) == 0x0000);     // below half the smallest subnormal
    CHECK(floatToF16(std::ldexp(1.0f, -25)) == 0x0000);                 // exact half: ties to even 0
    CHECK(floatToF16(std::ldexp(1.5f, -25)) == 0x0001);                 // above half: up
    CHECK(floatToF16(std::ldexp(3.0f, -25)) == 0x0002);                 // 1.5 units: ties to even 2
    CHECK(floatToF16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);          // halfway: even
    CHECK(floatToF16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);      // halfway: even (up)
    CHECK(floatToF16(-2.0f) == 0xc000);
    CHECK(bitsOf(f16ToFloat(0x8000)) == 0x80000000u);  // negative zero
}

TEST_CASE("readRow widens BF16, F16 and F32 views at any offset") {
    const std::vector<float> values{0.5f, -1.25f, 3.0f, 1024.0f, -0.0078125f};
    std::vector<uint16_t> bf(values.size()), hf(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
        bf[i] = floatToBf16(values[i]);
        hf[i] = floatToF16(values[i]);
    }
    for (auto [dtype, ptr, bytes] : {std::tuple{DType::BF16, static_cast<const void*>(bf.data()), bf.size() * 2},
                                     std::tuple{DType::F16, static_cast<const void*>(hf.data()), hf.size() * 2},
                                     std::tuple{DType::F32, static_cast<const void*>(values.data()), values.size() * 4}}) {
        CAPTURE(dtypeName(dtype));
        TensorView t;
        t.dtype = dtype;
        t.shape = {5};
        t.data = static_cast<const std::byte*>(ptr);
        t.nbytes = bytes;
        float out[3] = {};
        readRow(t, 1, 3, out);
        CHECK(out[0] == -1.25f);
        CHECK(out[1] == 3.0f);
        CHECK(out[2] == 1024.0f);
        CHECK(readElement(t, 4) == -0.0078125f);
        CHECK(toFloatVector(t) == values);
    }
}

TEST_CASE("TensorView shape helpers") {
    TensorView t;
    t.shape = {3, 4, 5};
    CHECK(t.numel() == 60);
    CHECK(t.rank() == 3);
    CHECK(t.dim(1) == 4);
    CHECK(t.shapeString() == "[3, 4, 5]");
    CHECK_FALSE(t.valid());
}
