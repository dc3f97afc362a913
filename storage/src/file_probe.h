#pragma once
// Looks at a database file's header before SQLite opens it, so that a file that is not SQLite, or
// that was cut short, is refused without SQLite ever writing to it (not even a journal).

#include <filesystem>
#include <string>

namespace dsv2::storage::detail {

enum class FileKind {
    Missing,    // no such file
    Empty,      // zero bytes: treated like a new database
    Sqlite,     // header looks sound
    NotSqlite,  // wrong magic (random bytes, a text file, ...)
    Truncated,  // the header promises more pages than the file has
    Unreadable, // the OS refused to read it
};

struct FileProbe {
    FileKind kind = FileKind::Missing;
    std::string detail;  // for the message: what exactly is wrong
};

FileProbe probeDatabaseFile(const std::filesystem::path& file);

}  // namespace dsv2::storage::detail
