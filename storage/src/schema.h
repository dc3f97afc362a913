#pragma once
// The schema as an ordered list of migrations. PRAGMA user_version is the number of migrations
// applied; each runs in its own transaction, so a crash mid-upgrade leaves the previous version.
// Migrations only add (tables, columns, indexes): nothing an older version wrote is rewritten.

#include "sqlite_db.h"

#include <cstdint>
#include <vector>

namespace dsv2::storage::detail {

// PRAGMA application_id of our files ("DSV2"): how we recognise another program's SQLite file.
constexpr std::int64_t kApplicationId = 0x44535632;

struct Migration {
    int toVersion;
    const char* description;
    const char* sql;
};

const std::vector<Migration>& migrations();
int latestSchemaVersion();

// Applies the migrations after the file's current version, up to `targetVersion`. Safe against a
// second process doing the same (the version is re-read inside each transaction).
void migrate(Database& db, int targetVersion);

}  // namespace dsv2::storage::detail
