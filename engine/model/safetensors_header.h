#pragma once
// The safetensors header parser: a pure function over the bytes of a whole file, so that the
// fuzzer and the tests can call it without touching the file system. Nothing in a header is
// trusted until checked: the length prefix, the JSON, each entry's dtype/shape/offsets, byte size =
// dtype size × element count, offsets inside the file, and no two tensors sharing bytes.
//
// Format (huggingface/safetensors): u64 little-endian N, then N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data; offsets are relative to the first byte after the header.

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "dsv2/status.h"
#include "model/tensor.h"

namespace dsv2 {

struct SafetensorsEntry {
    std::string name;
    DType dtype = DType::Unknown;  // recognised but non-computable dtypes (F8_E4M3...) are kept
    std::vector<int64_t> shape;
    uint64_t begin = 0;  // byte offsets relative to dataStart
    uint64_t end = 0;
};

struct SafetensorsHeader {
    uint64_t headerBytes = 0;               // N, the JSON length
    uint64_t dataStart = 0;                 // 8 + N
    uint64_t dataBytes = 0;                 // file size − dataStart
    std::vector<SafetensorsEntry> tensors;  // in file order (sorted by begin)
    std::map<std::string, std::string> metadata;
};

// Limits: the JSON header may not exceed 100 MB (as the reference implementation), ranks above 8 are
// refused (no real weight has them), and element counts must not overflow.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
inline constexpr int kSafetensorsMaxRank = 8;

// `file` is the complete file; `source` names it in error messages.
Result<SafetensorsHeader> parseSafetensorsHeader(std::span<const std::byte> file, const std::string& source);

}  // namespace dsv2
