#pragma once
// Where the app keeps its history by default.

#include <filesystem>

namespace dsv2::storage {

// $XDG_DATA_HOME/dsv2-chat/history.sqlite, or ~/.local/share/dsv2-chat/history.sqlite.
// (The folder is created by ConversationStore::open when it creates the file.)
std::filesystem::path defaultDatabasePath();

}  // namespace dsv2::storage
