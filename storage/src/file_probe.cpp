#include "file_probe.h"

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <system_error>

namespace dsv2::storage::detail {

namespace {

std::uint32_t bigEndian32(const unsigned char* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

}  // namespace

FileProbe probeDatabaseFile(const std::filesystem::path& file) {
    std::error_code ec;
    const auto status = std::filesystem::status(file, ec);
    if (ec || !std::filesystem::exists(status)) return {FileKind::Missing, {}};
    if (!std::filesystem::is_regular_file(status)) return {FileKind::NotSqlite, "it is not a regular file"};
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) return {FileKind::Unreadable, ec.message()};
    if (size == 0) return {FileKind::Empty, {}};

    std::ifstream in(file, std::ios::binary);
    if (!in) return {FileKind::Unreadable, "it cannot be read (permission denied?)"};
    // The 100-byte SQLite header: https://www.sqlite.org/fileformat2.html#the_database_header
    std::array<unsigned char, 100> header{};
    in.read(reinterpret_cast<char*>(header.data()), header.size());
    if (in.gcount() < 16 || std::memcmp(header.data(), "SQLite format 3\0", 16) != 0) {
        return {FileKind::NotSqlite, "it does not start with the SQLite header"};
    }
    if (in.gcount() < static_cast<std::streamsize>(header.size())) {
        return {FileKind::Truncated, fmt::format("it is only {} bytes long", size)};
    }
    std::uint32_t pageSize = (std::uint32_t(header[16]) << 8) | header[17];
    if (pageSize == 1) pageSize = 65536;
    if (pageSize < 512 || (pageSize & (pageSize - 1)) != 0) {
        return {FileKind::NotSqlite, fmt::format("its header has an impossible page size ({})", pageSize)};
    }
    // A non-empty write-ahead log may legitimately hold pages past the end of the main file (a
    // checkpoint cut short); SQLite recovers from it, so leave that case to SQLite.
    auto wal = file;
    wal += "-wal";
    const bool walHasData = std::filesystem::exists(wal, ec) && std::filesystem::file_size(wal, ec) > 0;
    const std::uint32_t changeCounter = bigEndian32(&header[24]);
    const std::uint32_t headerPages = bigEndian32(&header[28]);
    const std::uint32_t validFor = bigEndian32(&header[92]);
    if (!walHasData && headerPages > 0 && validFor == changeCounter) {
        const std::uint64_t expected = std::uint64_t(headerPages) * pageSize;
        if (size < expected) {
            return {FileKind::Truncated,
                    fmt::format("it is {} bytes long but its header says {} pages of {} bytes ({} bytes); it was "
                                "probably cut short",
                                size, headerPages, pageSize, expected)};
        }
    }
    if (!walHasData && size % pageSize != 0) {
        return {FileKind::Truncated,
                fmt::format("its size ({} bytes) is not a whole number of {}-byte pages", size, pageSize)};
    }
    return {FileKind::Sqlite, {}};
}

}  // namespace dsv2::storage::detail
