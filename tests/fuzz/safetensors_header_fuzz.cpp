// libFuzzer target for the safetensors header parser. Beyond "no crash, no sanitizer report", it
// checks the promises a successful parse makes to the rest of the engine: every tensor's bytes lie
// inside the file, match dtype × shape, and no two tensors overlap.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "model/safetensors_header.h"

namespace {

void require(bool condition) {
    if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
    auto header = dsv2::parseSafetensorsHeader(file, "fuzz.safetensors");
    if (!header) {
        require(!header.status().message().empty());
        return 0;
    }
    require(header->dataStart == 8 + header->headerBytes);
    require(header->dataStart + header->dataBytes == size);
    uint64_t previousEnd = 0;
    for (const auto& t : header->tensors) {
        require(t.begin <= t.end && t.end <= header->dataBytes);
        require(t.shape.size() <= static_cast<size_t>(dsv2::kSafetensorsMaxRank));
        uint64_t numel = 1;
        for (int64_t d : t.shape) {
            require(d >= 0);
            numel *= static_cast<uint64_t>(d);
        }
        require(t.end - t.begin == numel * dsv2::dtypeSize(t.dtype));
        if (t.begin != t.end) {
            require(t.begin >= previousEnd);
            previousEnd = t.end;
        }
    }
    return 0;
}
