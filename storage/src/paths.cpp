#include "dsv2/storage/paths.h"

#include <cstdlib>

namespace dsv2::storage {

std::filesystem::path defaultDatabasePath() {
    // XDG Base Directory: an unset or relative XDG_DATA_HOME is ignored.
    if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg && std::filesystem::path(xdg).is_absolute()) {
        return std::filesystem::path(xdg) / "dsv2-chat" / "history.sqlite";
    }
    const char* home = std::getenv("HOME");
    const std::filesystem::path base = (home && *home) ? std::filesystem::path(home) : std::filesystem::current_path();
    return base / ".local" / "share" / "dsv2-chat" / "history.sqlite";
}

}  // namespace dsv2::storage
