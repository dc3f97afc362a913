#pragma once
// A read-only view of one tensor in a memory-mapped safetensors file: zero copy, the bytes stay in
// the mapping. Shapes follow the hub's convention, [out, in] for linear weights.

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsv2 {

enum class DType : uint8_t {
    BF16,
    F16,
    F32,
    // Recognised in headers so that the error can say what they are, not yet computable:
    F64,
    F8_E4M3,
    F8_E5M2,
    F8_E8M0,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    BOOL,
    Unknown,
};

const char* dtypeName(DType dtype);          // "BF16", as written in safetensors headers
size_t dtypeSize(DType dtype);               // bytes per element (0 for Unknown)
bool dtypeComputable(DType dtype);           // BF16, F16, F32: what the engine can read
DType dtypeFromName(std::string_view name);  // "BF16" -> BF16; anything else -> Unknown

struct TensorView {
    std::string name;
    DType dtype = DType::Unknown;
    std::vector<int64_t> shape;
    const std::byte* data = nullptr;  // inside the mapping; valid while the owning file is open
    size_t nbytes = 0;

    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
    int rank() const { return static_cast<int>(shape.size()); }
    int64_t dim(int i) const { return shape.at(static_cast<size_t>(i)); }
    bool valid() const { return data != nullptr; }
    std::string shapeString() const;  // "[2048, 102400]"
};

// Tensors by hub name ("model.layers.0.self_attn.q_proj.weight"), sorted so that listings are stable.
using TensorMap = std::map<std::string, TensorView>;

// Widening helpers used by the CPU backend: the weights stay bf16/f16 in the mapping and are
// converted on the fly, a row at a time.
float bf16ToFloat(uint16_t bits);
uint16_t floatToBf16(float value);  // round to nearest even
float f16ToFloat(uint16_t bits);
uint16_t floatToF16(float value);

// Reads element i of a BF16/F16/F32 tensor as float.
float readElement(const TensorView& t, int64_t i);
// Widens `count` elements starting at element `offset` into `out`.
void readRow(const TensorView& t, int64_t offset, int64_t count, float* out);
// Widens the whole tensor (numel floats), e.g. for small tensors such as norms.
std::vector<float> toFloatVector(const TensorView& t);

}  // namespace dsv2
