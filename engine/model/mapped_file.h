#pragma once
// A read-only memory mapping of a whole file (POSIX mmap). The bytes stay valid while the object
// lives; moving it keeps the address. Weights are read straight from here (zero copy).

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>

#include "dsv2/status.h"

namespace dsv2 {

// Tells the kernel these mapped bytes will be read soon (madvise WILLNEED); a hint, never fails.
void adviseWillNeed(std::span<const std::byte> bytes);

class MappedFile {
public:
    static Result<MappedFile> open(const std::filesystem::path& path);

    MappedFile() = default;
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile();

    std::span<const std::byte> bytes() const { return {m_data, m_size}; }
    size_t size() const { return m_size; }
    const std::filesystem::path& path() const { return m_path; }

private:
    void release();

    std::filesystem::path m_path;
    const std::byte* m_data = nullptr;
    size_t m_size = 0;
};

}  // namespace dsv2
