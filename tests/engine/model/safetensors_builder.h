#pragma once
// Test helper: builds safetensors files in memory (valid ones, and broken ones on purpose) and
// copies model folders into temporary directories so that tests can damage them.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsv2::test {

struct TensorSpec {
    std::string name;
    std::string dtype;             // "BF16", "F8_E4M3", ...
    std::vector<int64_t> shape;
    std::vector<std::byte> bytes;  // empty: zero-filled to dtype size × numel
};

inline size_t specElementSize(const std::string& dtype) {
    if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
    if (dtype == "BF16" || dtype == "F16" || dtype == "I16" || dtype == "U16") return 2;
    if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
    return 1;
}

// The header JSON for `tensors` laid out back to back.
inline nlohmann::json safetensorsHeaderJson(const std::vector<TensorSpec>& tensors) {
    nlohmann::json header = nlohmann::json::object();
    header["__metadata__"] = {{"format", "pt"}};
    uint64_t offset = 0;
    for (const auto& t : tensors) {
        uint64_t numel = 1;
        for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
        const uint64_t size = t.bytes.empty() ? numel * specElementSize(t.dtype) : t.bytes.size();
        header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + size}}};
        offset += size;
    }
    return header;
}

// A whole file from an explicit header text and data bytes (lets tests lie in the header).
inline std::vector<std::byte> safetensorsBytes(const std::string& headerText, size_t dataBytes) {
    std::vector<std::byte> out(8 + headerText.size() + dataBytes);
    uint64_t n = headerText.size();
    for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
    std::memcpy(out.data() + 8, headerText.data(), headerText.size());
    for (size_t i = 0; i < dataBytes; ++i) out[8 + headerText.size() + i] = static_cast<std::byte>(i * 7 + 1);
    return out;
}

inline std::vector<std::byte> safetensorsBytes(const std::vector<TensorSpec>& tensors) {
    const std::string header = safetensorsHeaderJson(tensors).dump();
    std::vector<std::byte> out = safetensorsBytes(header, 0);
    for (const auto& t : tensors) {
        if (!t.bytes.empty()) {
            out.insert(out.end(), t.bytes.begin(), t.bytes.end());
        } else {
            uint64_t numel = 1;
            for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
            out.resize(out.size() + numel * specElementSize(t.dtype));
        }
    }
    return out;
}

inline void writeBytes(const std::filesystem::path& path, const std::vector<std::byte>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<std::byte> readBytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(chars.size());
    std::memcpy(out.data(), chars.data(), chars.size());
    return out;
}

inline std::string readText(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void writeText(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
public:
    TempDir() {
        std::random_device rd;
        m_path = std::filesystem::temp_directory_path() /
                 ("dsv2-model-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
        std::filesystem::create_directories(m_path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
};

// Copies every file of `from` into `to` (flat folders only, as the hub's).
inline void copyFolder(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::filesystem::create_directories(to);
    for (const auto& entry : std::filesystem::directory_iterator(from))
        if (entry.is_regular_file()) std::filesystem::copy_file(entry.path(), to / entry.path().filename());
}

}  // namespace dsv2::test
