#pragma once
// ConversationStore: the one entry point to the chat history (one SQLite file). The GUI and the CLI
// call the same methods. Every method is thread-safe (calls are serialised on one connection) and
// returns Expected<T>; nothing throws.
//
// Typical turn (what `dsv2 chat --db` and the GUI do):
//   auto store = ConversationStore::open(defaultDatabasePath());
//   auto conv  = store->createConversation({.title = "...", .modelDir = dir, .modelName = name});
//   auto user  = store->appendMessage(*conv, parentOrNullopt, Role::User, prompt);
//   auto w     = store->beginAssistantMessage(*conv, *user);   // row exists now, status streaming
//   for each token: (*w)->append(deltaText, record);            // batched, committed every 250 ms
//   (*w)->finish(stats);                                        // status complete + stats

#include "dsv2/storage/error.h"
#include "dsv2/storage/types.h"

#include <chrono>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dsv2::storage {

namespace detail {
struct Connection;
}
class StreamingWriter;
struct WriterOptions;

enum class OpenMode {
    ReadWrite,  // create if missing, upgrade older schemas, recover interrupted answers
    ReadOnly,   // never writes a byte: for viewing, search, export, check, backup
};

struct OpenOptions {
    OpenMode mode = OpenMode::ReadWrite;
    // How long a write waits for another process's transaction before giving up with Busy.
    std::chrono::milliseconds busyTimeout{5000};
    // Before upgrading an existing file, copy it to "<file>.v<N>.bak" (online backup).
    bool backupBeforeMigration = true;
    // Mark answers whose writing process is gone as interrupted (ReadWrite only).
    bool recoverInterrupted = true;
};

struct ListOptions {
    bool includeDeleted = false;  // list the trash too
    bool onlyDeleted = false;
    int limit = -1;  // -1: all
    int offset = 0;
};

enum class ExportFormat { Markdown, Text, Json, Html };
std::optional<ExportFormat> exportFormatFromName(std::string_view name);  // md|txt|json|html

class ConversationStore {
public:
    static Expected<ConversationStore> open(const std::filesystem::path& path, const OpenOptions& options = {});

    ConversationStore(ConversationStore&&) noexcept;
    ConversationStore& operator=(ConversationStore&&) noexcept;
    ConversationStore(const ConversationStore&) = delete;
    ConversationStore& operator=(const ConversationStore&) = delete;
    ~ConversationStore();

    static int latestSchemaVersion();
    const std::filesystem::path& path() const;
    bool isReadOnly() const;

    // Conversations -----------------------------------------------------------------------------
    Expected<ConversationId> createConversation(const ConversationMeta& meta);
    Expected<Conversation> conversation(ConversationId id);
    Expected<std::optional<ConversationId>> findConversationByUuid(const std::string& uuid);
    Expected<std::vector<ConversationSummary>> listConversations(const ListOptions& options = {});
    // The most recently updated conversation that is not in the trash.
    Expected<std::optional<ConversationId>> lastConversation();
    Expected<void> updateConversationMeta(ConversationId id, const ConversationMeta& meta);
    Expected<void> renameConversation(ConversationId id, const std::string& title);

    // Deleting is two-step so the caller can offer undo: softDelete moves to the trash (hidden from
    // lists and search, restorable); purge removes a conversation that is already in the trash.
    Expected<void> softDeleteConversation(ConversationId id);
    Expected<void> restoreConversation(ConversationId id);
    Expected<void> purgeConversation(ConversationId id);
    // Purges everything in the trash deleted before `before` (default: all). Returns the count.
    Expected<int> purgeDeleted(std::optional<TimestampMs> before = std::nullopt);

    // Messages: a tree per conversation ------------------------------------------------------
    // Adds a message under `parent` (nullopt: a new root) and makes it the active branch.
    Expected<MessageId> appendMessage(ConversationId conversation, std::optional<MessageId> parent, Role role,
                                      const std::string& content);
    Expected<MessageId> appendUserMessage(ConversationId conversation, std::optional<MessageId> parent,
                                          const std::string& content);
    // Editing a prompt keeps the old one: a sibling with the new text becomes active.
    Expected<MessageId> editMessage(MessageId message, const std::string& newContent);
    Expected<Message> message(MessageId id);
    // Root to leaf along the remembered active children.
    Expected<std::vector<Message>> activePath(ConversationId conversation);
    Expected<std::optional<MessageId>> activeLeaf(ConversationId conversation);
    // Every message of every branch, in creation order (parents before children).
    Expected<std::vector<Message>> allMessages(ConversationId conversation);
    // The message and its siblings (same parent), in creation order: the "< 2/3 >" switcher.
    Expected<std::vector<MessageId>> siblings(MessageId message);
    // Makes the branch through `message` active (its ancestors point to it; below it, the branch
    // remembered last time is kept).
    Expected<void> setActiveMessage(MessageId message);
    // Per-token records (routing, logprobs) of a message, in order.
    Expected<std::vector<TokenRecord>> tokens(MessageId message);
    // The routing of the prompt tokens an answer stored (StreamingWriter::setPromptRouting);
    // none for user messages and for answers written before schema v4 or without it.
    Expected<std::optional<PromptRouting>> promptRouting(MessageId message);

    // Streaming: creates the assistant message now (status streaming, empty) under `parent` and
    // returns the writer that fills it. Regenerating = another beginAssistantMessage on the same
    // parent: the old answer stays as a sibling.
    Expected<std::unique_ptr<StreamingWriter>> beginAssistantMessage(ConversationId conversation,
                                                                     std::optional<MessageId> parent,
                                                                     const WriterOptions& options);
    Expected<std::unique_ptr<StreamingWriter>> beginAssistantMessage(ConversationId conversation,
                                                                     std::optional<MessageId> parent);
    // Marks streaming messages whose writer process is gone as interrupted (done by open()).
    Expected<int> recoverInterrupted();

    // Search (FTS5, bm25-ranked, with snippets). Conversations in the trash are not searched.
    Expected<std::vector<SearchHit>> search(const SearchQuery& query);

    // Application settings (key -> text, typically JSON).
    Expected<std::optional<std::string>> setting(const std::string& key);
    Expected<void> setSetting(const std::string& key, const std::string& value);
    Expected<void> removeSetting(const std::string& key);
    Expected<std::map<std::string, std::string>> allSettings();

    // Export / import ---------------------------------------------------------------------------
    // `ids` empty: every conversation not in the trash. JSON is full fidelity (all branches, stats,
    // routing, logprobs); Markdown, text and HTML show the active branch.
    Expected<void> exportConversations(const std::vector<ConversationId>& ids, ExportFormat format, std::ostream& out);
    Expected<void> exportToFile(const std::vector<ConversationId>& ids, ExportFormat format,
                                const std::filesystem::path& file);
    // Imports a JSON export. Conversations whose uuid is already present are skipped. All or nothing.
    Expected<ImportReport> importJson(std::istream& in, const std::string& sourceName = "input");
    Expected<ImportReport> importJsonFile(const std::filesystem::path& file);

    // Maintenance --------------------------------------------------------------------------------
    // SQLite online backup to a new file (refuses to overwrite an existing one).
    Expected<void> backupTo(const std::filesystem::path& destination);
    // PRAGMA integrity_check + foreign keys + FTS index + our own tree/record invariants.
    Expected<IntegrityReport> checkIntegrity();

    // Runs `body` in one transaction (nested calls are savepoints); rolls back when body returns
    // false. For bulk work (benchmarks, migrations of app data).
    Expected<void> transaction(const std::function<bool()>& body);

private:
    explicit ConversationStore(std::shared_ptr<detail::Connection> connection);
    std::shared_ptr<detail::Connection> m_conn;
};

}  // namespace dsv2::storage
