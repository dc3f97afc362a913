#include "schema.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace dsv2::storage::detail {

namespace {

// v1: conversations and the message tree. Each node remembers its active child, so switching back to
// an old branch shows the continuation that was last chosen there.
constexpr const char* kV1 = R"sql(
PRAGMA application_id = 1146312242;  -- "DSV2" = kApplicationId
CREATE TABLE settings(
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE conversations(
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid           TEXT NOT NULL UNIQUE,
    title          TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    model_dir      TEXT NOT NULL DEFAULT '',
    model_name     TEXT NOT NULL DEFAULT '',
    system_prompt  TEXT NOT NULL DEFAULT '',
    sampling_json  TEXT NOT NULL DEFAULT '{}',
    active_root_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    deleted_at     INTEGER
);
CREATE TABLE messages(
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    parent_id       INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    active_child_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'complete'
                    CHECK (status IN ('complete', 'streaming', 'interrupted', 'error')),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
CREATE INDEX messages_by_parent ON messages(parent_id);
CREATE INDEX messages_by_active_child ON messages(active_child_id);
CREATE INDEX conversations_by_updated ON conversations(updated_at);
CREATE INDEX conversations_by_active_root ON conversations(active_root_id);
CREATE INDEX conversations_in_trash ON conversations(deleted_at) WHERE deleted_at IS NOT NULL;
)sql";

// v2: what the inspection views need after a restart: generation stats, per-token routing and
// logprobs (compact BLOBs, one per committed batch), and who is streaming a message (crash recovery).
constexpr const char* kV2 = R"sql(
ALTER TABLE conversations ADD COLUMN settings_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE messages ADD COLUMN writer TEXT;
ALTER TABLE messages ADD COLUMN error_text TEXT NOT NULL DEFAULT '';
CREATE INDEX messages_streaming ON messages(id) WHERE status = 'streaming';
CREATE TABLE generation_stats(
    message_id             INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    prompt_tokens          INTEGER NOT NULL DEFAULT 0,
    generated_tokens       INTEGER NOT NULL DEFAULT 0,
    tokens_per_second      REAL NOT NULL DEFAULT 0,
    time_to_first_token_ms REAL NOT NULL DEFAULT 0,
    total_ms               REAL NOT NULL DEFAULT 0,
    stop_reason            TEXT NOT NULL DEFAULT '',
    backend                TEXT NOT NULL DEFAULT '',
    extra_json             TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE token_chunks(
    message_id  INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    first_token INTEGER NOT NULL,
    token_count INTEGER NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;
)sql";

// v3: full-text search over message text. External content (the text is stored once, in messages),
// kept in sync by triggers; 'rebuild' indexes what older versions stored.
constexpr const char* kV3 = R"sql(
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content = 'messages', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
)sql";

// v4: the routing of the prompt tokens each answer added (PromptRouting): one row per answer, the
// records in the token_chunks BLOB format, their text concatenated beside them.
constexpr const char* kV4 = R"sql(
CREATE TABLE prompt_routing(
    message_id     INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    first_position INTEGER NOT NULL,
    prompt_tokens  INTEGER NOT NULL,
    text           BLOB NOT NULL,
    data           BLOB NOT NULL
);
)sql";

}  // namespace

const std::vector<Migration>& migrations() {
    static const std::vector<Migration> list = {
        {1, "conversations and the message tree", kV1},
        {2, "generation stats, token records, crash recovery", kV2},
        {3, "full-text search", kV3},
        {4, "prompt-token routing", kV4},
    };
    return list;
}

int latestSchemaVersion() { return migrations().back().toVersion; }

void migrate(Database& db, int targetVersion) {
    for (const Migration& m : migrations()) {
        if (m.toVersion > targetVersion) break;
        Transaction tx(db);
        const auto current = db.queryInt("PRAGMA user_version");
        if (current >= m.toVersion) continue;  // another process upgraded it meanwhile
        if (current != m.toVersion - 1) {
            throwError(ErrorCode::Internal, fmt::format("{}: schema version {} cannot be upgraded to {}",
                                                        db.file().string(), current, m.toVersion));
        }
        db.exec(m.sql, fmt::format("upgrading to schema version {}", m.toVersion));
        db.exec(fmt::format("PRAGMA user_version = {}", m.toVersion));
        tx.commit();
        spdlog::info("storage: {} upgraded to schema version {} ({})", db.file().string(), m.toVersion, m.description);
    }
}

}  // namespace dsv2::storage::detail
