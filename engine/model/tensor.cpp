#include "model/tensor.h"

#include <array>
#include <cassert>
#include <cstring>

namespace dsv2 {
namespace {

struct DTypeInfo {
    DType dtype;
    const char* name;
    size_t size;
};

// The dtype strings of the safetensors format (huggingface/safetensors, Dtype enum).
constexpr std::array<DTypeInfo, 17> kDTypes{{
    {DType::BF16, "BF16", 2},       {DType::F16, "F16", 2},         {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},         {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::F8_E8M0, "F8_E8M0", 1}, {DType::I8, "I8", 1},           {DType::U8, "U8", 1},
    {DType::I16, "I16", 2},         {DType::U16, "U16", 2},         {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},         {DType::I64, "I64", 8},         {DType::U64, "U64", 8},
    {DType::BOOL, "BOOL", 1},       {DType::Unknown, "unknown", 0},
}};

uint32_t floatBits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

float bitsFloat(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

}  // namespace

const char* dtypeName(DType dtype) {
    for (const auto& info : kDTypes)
        if (info.dtype == dtype) return info.name;
    return "unknown";
}

size_t dtypeSize(DType dtype) {
    for (const auto& info : kDTypes)
        if (info.dtype == dtype) return info.size;
    return 0;
}

bool dtypeComputable(DType dtype) {
    return dtype == DType::BF16 || dtype == DType::F16 || dtype == DType::F32;
}

DType dtypeFromName(std::string_view name) {
    for (const auto& info : kDTypes)
        if (info.dtype != DType::Unknown && name == info.name) return info.dtype;
    return DType::Unknown;
}

std::string TensorView::shapeString() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

float bf16ToFloat(uint16_t bits) { return bitsFloat(static_cast<uint32_t>(bits) << 16); }

uint16_t floatToBf16(float value) {
    const uint32_t u = floatBits(value);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
    const uint32_t roundingBias = 0x7fffu + ((u >> 16) & 1u);  // ties to even
    return static_cast<uint16_t>((u + roundingBias) >> 16);
}

float f16ToFloat(uint16_t bits) {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
    const uint32_t exponent = (bits >> 10) & 0x1fu;
    uint32_t mantissa = bits & 0x3ffu;
    if (exponent == 0x1f) return bitsFloat(sign | 0x7f800000u | (mantissa << 13));  // inf / NaN
    if (exponent != 0) return bitsFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    if (mantissa == 0) return bitsFloat(sign);
    // Subnormal: mantissa · 2^-24, exact in float.
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
}

uint16_t floatToF16(float value) {
    const uint32_t u = floatBits(value);
    const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t absBits = u & 0x7fffffffu;
    if (absBits >= 0x7f800000u)  // inf stays inf; NaN stays a (quiet) NaN
        return static_cast<uint16_t>(sign | 0x7c00u | (absBits > 0x7f800000u ? 0x0200u | ((absBits >> 13) & 0x3ffu) : 0u));
    if (absBits >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // ≥ 65520 rounds to inf
    if (absBits <= 0x33000000u) return sign;                                   // ≤ 2^-25 rounds to 0
    uint32_t result;
    uint32_t remainder;
    uint32_t half;
    if (absBits < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24
        const uint32_t exponent = absBits >> 23;
        const uint32_t mantissa = (absBits & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - exponent;  // 14..24
        result = mantissa >> shift;
        remainder = mantissa & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
    } else {
        result = (((absBits >> 23) - 112u) << 10) | ((absBits & 0x7fffffu) >> 13);
        remainder = absBits & 0x1fffu;
        half = 0x1000u;
    }
    if (remainder > half || (remainder == half && (result & 1u))) ++result;  // carries into the exponent
    return static_cast<uint16_t>(sign | result);
}

float readElement(const TensorView& t, int64_t i) {
    float value = 0.0f;
    readRow(t, i, 1, &value);
    return value;
}

void readRow(const TensorView& t, int64_t offset, int64_t count, float* out) {
    assert(offset >= 0 && count >= 0);
    assert(static_cast<size_t>(offset + count) * dtypeSize(t.dtype) <= t.nbytes);
    // memcpy per element: safetensors does not promise aligned offsets, and compilers turn this
    // into plain loads.
    const std::byte* base = t.data + static_cast<size_t>(offset) * dtypeSize(t.dtype);
    switch (t.dtype) {
    case DType::BF16:
        for (int64_t i = 0; i < count; ++i) {
            uint16_t bits;
            std::memcpy(&bits, base + 2 * i, 2);
            out[i] = bf16ToFloat(bits);
        }
        return;
    case DType::F16:
        for (int64_t i = 0; i < count; ++i) {
            uint16_t bits;
            std::memcpy(&bits, base + 2 * i, 2);
            out[i] = f16ToFloat(bits);
        }
        return;
    case DType::F32:
        std::memcpy(out, base, static_cast<size_t>(count) * 4);
        return;
    default:
        // The weight binding rejects every other dtype before a TensorView reaches compute code.
        assert(false && "readRow on a non-computable dtype");
        for (int64_t i = 0; i < count; ++i) out[i] = 0.0f;
        return;
    }
}

std::vector<float> toFloatVector(const TensorView& t) {
    std::vector<float> out(static_cast<size_t>(t.numel()));
    readRow(t, 0, t.numel(), out.data());
    return out;
}

}  // namespace dsv2
