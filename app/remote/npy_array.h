#pragma once
// The routed-experts transport vLLM uses: a NumPy .npy file (format 1.0, C order, little endian),
// base64-encoded into a JSON string. `np.load(io.BytesIO(base64.b64decode(s)))` reads what
// encodeNpyBase64 writes; decodeNpyBase64 reads what vLLM writes (int32, or the narrow
// uint8/uint16 of older versions) and our float32 weights.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dsv2/status.h"

namespace dsv2::remote {

std::string base64Encode(std::string_view bytes);
Result<std::string> base64Decode(std::string_view text);  // standard alphabet, padding optional

// A decoded array: the values widened to double (exact for int32 and float32), its shape.
struct NpyArray {
    std::vector<int64_t> shape;
    std::vector<double> values;  // row-major, product(shape) values
    std::string dtype;           // as in the header: "<i4", "<f4", "|u1", ...
};

std::string encodeNpyBase64(const std::vector<int32_t>& values, const std::vector<int64_t>& shape);
std::string encodeNpyBase64(const std::vector<float>& values, const std::vector<int64_t>& shape);

// Errors name what is wrong (not base64, not .npy, an unsupported dtype, a size that does not
// match the shape).
Result<NpyArray> decodeNpyBase64(std::string_view text);

}  // namespace dsv2::remote
