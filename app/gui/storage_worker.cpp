#include "storage_worker.h"

#include <QDateTime>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

#include "dsv2/storage/conversation_store.h"
#include "dsv2/storage/streaming_writer.h"
#include "inspect/storage_routing.h"
#include "storage_convert.h"

namespace dsv2::gui {
namespace {

using storage::ConversationStore;
using storage::Expected;

constexpr const char* kLastConversationKey = "gui.lastConversation";
constexpr qint64 kTrashDays = 30;  // deleted conversations stay restorable this long

// Inside this file a failed storage call unwinds to the slot that made it, which turns it into a
// signal; nothing escapes a slot (Qt's event loop must never see an exception).
struct StorageFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <typename T>
T take(Expected<T>&& e) {
    if (!e) throw StorageFailure(e.error().toString());
    return std::move(e).value();
}
inline void check(Expected<void>&& e) {
    if (!e) throw StorageFailure(e.error().toString());
}

QVector<ui::MessageItem> loadActivePath(ConversationStore& store, qint64 conversationId) {
    const auto path = take(store.activePath(conversationId));
    const auto all = take(store.allMessages(conversationId));
    QVector<ui::MessageItem> items;
    items.reserve(static_cast<qsizetype>(path.size()));
    for (const storage::Message& m : path) items.append(toUiMessage(m));
    fillSiblingInfo(items, all);
    return items;
}

int indexOfMessage(const QVector<ui::MessageItem>& path, qint64 id) {
    for (int i = 0; i < path.size(); ++i)
        if (path[i].id == id) return i;
    return -1;
}

storage::ExportFormat toStorageFormat(ui::ExportFormat f) {
    switch (f) {
    case ui::ExportFormat::Markdown: return storage::ExportFormat::Markdown;
    case ui::ExportFormat::Text: return storage::ExportFormat::Text;
    case ui::ExportFormat::Json: return storage::ExportFormat::Json;
    case ui::ExportFormat::Html: return storage::ExportFormat::Html;
    }
    return storage::ExportFormat::Markdown;
}

std::string roleText(ui::MessageRole role) {
    switch (role) {
    case ui::MessageRole::System: return "system";
    case ui::MessageRole::User: return "user";
    case ui::MessageRole::Assistant: return "assistant";
    }
    return "user";
}

}  // namespace

StorageWorker::StorageWorker(QObject* parent) : QObject(parent) {}
StorageWorker::~StorageWorker() = default;

bool StorageWorker::ensureOpen(const QString& what) {
    if (m_store) return true;
    Q_EMIT failed(tr("No chat history"), tr("Cannot %1: the chat history is not open.").arg(what));
    return false;
}

void StorageWorker::open(const QString& path) {
    m_store.reset();
    auto store = ConversationStore::open(toStd(path));
    if (!store) {
        spdlog::error("cannot open the history {}: {}", path.toStdString(), store.error().toString());
        Q_EMIT openFailed(path, toQString(store.error().message()));
        return;
    }
    m_store = std::make_unique<ConversationStore>(std::move(store).value());
    // Empty the trash of what was deleted long ago; a failure here is not worth bothering anyone.
    const qint64 before = QDateTime::currentMSecsSinceEpoch() - kTrashDays * 24 * 3600 * 1000;
    if (auto purged = m_store->purgeDeleted(before); purged && *purged > 0)
        spdlog::info("purged {} conversations deleted more than {} days ago", *purged, kTrashDays);

    qint64 last = 0;
    if (auto saved = m_store->setting(kLastConversationKey); saved && *saved) {
        const qint64 id = QString::fromStdString(**saved).toLongLong();
        if (auto c = m_store->conversation(id); c && !c->deletedAt) last = id;
    }
    if (last == 0)
        if (auto recent = m_store->lastConversation(); recent && *recent) last = **recent;
    spdlog::info("history open: {}", path.toStdString());
    Q_EMIT opened(path, last);
}

void StorageWorker::listConversations(int offset, int limit) {
    if (!ensureOpen(tr("list conversations"))) return;
    // One row more than asked tells whether another page exists.
    auto list = m_store->listConversations({.limit = limit + 1, .offset = offset});
    if (!list) {
        Q_EMIT failed(tr("Cannot list conversations"), toQString(list.error().message()));
        return;
    }
    QVector<ui::ConversationItem> items;
    const bool more = static_cast<int>(list->size()) > limit;
    for (size_t i = 0; i < list->size() && static_cast<int>(i) < limit; ++i) items.append(toUiConversation((*list)[i]));
    Q_EMIT conversationsListed(offset, items, more);
}

void StorageWorker::openConversation(quint64 tag, qint64 conversationId, qint64 focusMessageId) {
    if (!ensureOpen(tr("open the conversation"))) return;
    try {
        const storage::Conversation conversation = take(m_store->conversation(conversationId));
        ui::ConversationData data;
        data.id = conversationId;
        data.title = toQString(conversation.meta.title);
        data.settings = settingsFromJson(conversation.meta.sampling, conversation.meta.systemPrompt);
        data.messages = loadActivePath(*m_store, conversationId);
        if (focusMessageId != 0 && indexOfMessage(data.messages, focusMessageId) < 0) {
            // A search hit on another branch: show that branch.
            check(m_store->setActiveMessage(focusMessageId));
            data.messages = loadActivePath(*m_store, conversationId);
        }
        data.focusMessageId = focusMessageId;
        check(m_store->setSetting(kLastConversationKey, std::to_string(conversationId)));
        Q_EMIT conversationOpened(tag, data);
    } catch (const StorageFailure& e) {
        Q_EMIT failed(tr("Cannot open the conversation"), QString::fromStdString(e.what()));
    }
}

void StorageWorker::prepareTurn(const TurnRequest& request) {
    if (!m_store) {
        Q_EMIT turnFailed(request.tag, tr("The chat history is not open, so the conversation cannot be saved."));
        return;
    }
    try {
        doPrepareTurn(request);
    } catch (const StorageFailure& e) {
        spdlog::error("preparing a turn failed: {}", e.what());
        Q_EMIT turnFailed(request.tag, QString::fromStdString(e.what()));
    }
}

void StorageWorker::doPrepareTurn(const TurnRequest& request) {
    PreparedTurn turn;
    turn.tag = request.tag;
    turn.settings = request.settings;
    qint64 conversationId = request.conversationId;
    qint64 promptId = 0;  // the user message the answer replies to

    switch (request.kind) {
    case TurnKind::Send: {
        if (conversationId == 0) {
            storage::ConversationMeta meta;
            meta.title = toStd(autoTitle(request.text));
            meta.modelDir = toStd(request.modelDir);
            meta.modelName = toStd(request.modelName);
            meta.systemPrompt = toStd(request.settings.systemPrompt);
            meta.sampling = settingsToJson(request.settings);
            conversationId = take(m_store->createConversation(meta));
            turn.createdConversation = toUiConversation(take(m_store->conversation(conversationId)));
            check(m_store->setSetting(kLastConversationKey, std::to_string(conversationId)));
        }
        const std::optional<storage::MessageId> parent =
            request.messageId != 0 ? std::optional<storage::MessageId>(request.messageId) : std::nullopt;
        promptId = take(m_store->appendMessage(conversationId, parent, storage::Role::User, toStd(request.text)));
        break;
    }
    case TurnKind::Regenerate: {
        const storage::Message target = take(m_store->message(request.messageId));
        promptId = target.role == storage::Role::Assistant ? target.parentId.value_or(0) : target.id;
        if (promptId == 0) throw StorageFailure("this answer has no prompt to answer again");
        break;
    }
    case TurnKind::Edit: promptId = take(m_store->editMessage(request.messageId, toStd(request.text))); break;
    }

    auto writer = take(m_store->beginAssistantMessage(conversationId, promptId));
    turn.writer = std::shared_ptr<storage::StreamingWriter>(std::move(writer));
    turn.conversationId = conversationId;
    turn.assistantMessageId = turn.writer->messageId();

    // The active branch now ends with the prompt and the new (empty) answer.
    const QVector<ui::MessageItem> path = loadActivePath(*m_store, conversationId);
    const int promptIndex = indexOfMessage(path, promptId);
    if (promptIndex < 0) throw StorageFailure("the prompt is not on the active branch");
    // Sending appends below what is shown; regenerating keeps the prompt; editing replaces it.
    const int keep = request.kind == TurnKind::Regenerate ? promptIndex + 1 : promptIndex;
    turn.path = {.tag = request.tag, .conversationId = conversationId, .keep = keep, .tail = path.mid(keep)};

    if (!request.settings.systemPrompt.isEmpty())
        turn.turns.push_back({"system", toStd(request.settings.systemPrompt)});
    for (int i = 0; i <= promptIndex; ++i) {
        const ui::MessageItem& m = path[i];
        // A failed or empty answer taught the model nothing; leave it out of the prompt.
        if (m.role == ui::MessageRole::Assistant && m.content.isEmpty()) continue;
        turn.turns.push_back({roleText(m.role), toStd(m.content)});
    }
    Q_EMIT turnPrepared(turn);
}

void StorageWorker::switchBranch(quint64 tag, qint64 conversationId, qint64 messageId, int step) {
    if (!ensureOpen(tr("switch branches"))) return;
    try {
        const auto ids = take(m_store->siblings(messageId));
        const auto it = std::find(ids.begin(), ids.end(), messageId);
        if (it == ids.end()) throw StorageFailure("the message is not among its siblings");
        const auto index =
            std::clamp<std::ptrdiff_t>((it - ids.begin()) + step, 0, static_cast<std::ptrdiff_t>(ids.size()) - 1);
        const qint64 target = ids[static_cast<size_t>(index)];
        check(m_store->setActiveMessage(target));
        const QVector<ui::MessageItem> path = loadActivePath(*m_store, conversationId);
        const int at = indexOfMessage(path, target);
        if (at < 0) throw StorageFailure("the chosen branch is not active after switching");
        Q_EMIT pathChanged({.tag = tag, .conversationId = conversationId, .keep = at, .tail = path.mid(at)});
    } catch (const StorageFailure& e) {
        Q_EMIT failed(tr("Cannot switch branches"), QString::fromStdString(e.what()));
    }
}

void StorageWorker::renameConversation(qint64 conversationId, const QString& title) {
    if (!ensureOpen(tr("rename the conversation"))) return;
    try {
        check(m_store->renameConversation(conversationId, toStd(title.simplified())));
        Q_EMIT conversationUpdated(toUiConversation(take(m_store->conversation(conversationId))));
    } catch (const StorageFailure& e) {
        Q_EMIT failed(tr("Cannot rename the conversation"), QString::fromStdString(e.what()));
    }
}

void StorageWorker::deleteConversation(qint64 conversationId) {
    if (!ensureOpen(tr("delete the conversation"))) return;
    try {
        const storage::Conversation c = take(m_store->conversation(conversationId));
        check(m_store->softDeleteConversation(conversationId));
        Q_EMIT conversationDeleted(conversationId, toQString(c.meta.title));
    } catch (const StorageFailure& e) {
        Q_EMIT failed(tr("Cannot delete the conversation"), QString::fromStdString(e.what()));
    }
}

void StorageWorker::restoreConversation(qint64 conversationId) {
    if (!ensureOpen(tr("restore the conversation"))) return;
    try {
        check(m_store->restoreConversation(conversationId));
        Q_EMIT conversationRestored(toUiConversation(take(m_store->conversation(conversationId))));
    } catch (const StorageFailure& e) {
        Q_EMIT failed(tr("Cannot restore the conversation"), QString::fromStdString(e.what()));
    }
}

void StorageWorker::saveSettings(qint64 conversationId, const ui::GenerationSettings& settings) {
    if (!ensureOpen(tr("save the settings"))) return;
    try {
        storage::Conversation c = take(m_store->conversation(conversationId));
        c.meta.systemPrompt = toStd(settings.systemPrompt);
        c.meta.sampling = settingsToJson(settings);
        check(m_store->updateConversationMeta(conversationId, c.meta));
    } catch (const StorageFailure& e) {
        Q_EMIT failed(tr("Cannot save the conversation settings"), QString::fromStdString(e.what()));
    }
}

void StorageWorker::search(quint64 tag, const QString& text) {
    QVector<ui::SearchHitItem> hits;
    if (!m_store || text.trimmed().isEmpty()) {
        Q_EMIT searchFinished(tag, hits);
        return;
    }
    storage::SearchQuery query;
    query.text = toStd(text);
    query.limit = 100;
    query.highlightOpen = std::string(1, static_cast<char>(ui::kHighlightOpen.unicode()));
    query.highlightClose = std::string(1, static_cast<char>(ui::kHighlightClose.unicode()));
    query.snippetTokens = 12;
    auto found = m_store->search(query);
    if (!found) {
        // Half-typed queries ("foo AND") are normal while typing: no dialog, just no hits.
        spdlog::debug("search '{}' failed: {}", query.text, found.error().toString());
        Q_EMIT searchFinished(tag, hits);
        return;
    }
    for (const storage::SearchHit& h : *found)
        hits.append({.messageId = h.messageId,
                     .conversationId = h.conversationId,
                     .conversationTitle = toQString(h.conversationTitle),
                     .role = toUiRole(h.role),
                     .createdAtMs = h.createdAt,
                     .snippet = toQString(h.snippet)});
    Q_EMIT searchFinished(tag, hits);
}

void StorageWorker::exportConversations(const ui::ExportRequest& request) {
    if (!m_store) {
        Q_EMIT exportFinished(request.filePath, false, tr("The chat history is not open."));
        return;
    }
    std::vector<storage::ConversationId> ids(request.conversationIds.begin(), request.conversationIds.end());
    auto done = m_store->exportToFile(ids, toStorageFormat(request.format), toStd(request.filePath));
    if (!done) {
        Q_EMIT exportFinished(request.filePath, false, toQString(done.error().message()));
        return;
    }
    Q_EMIT exportFinished(request.filePath, true, QString());
}

void StorageWorker::importConversations(const QString& filePath) {
    ui::ImportOutcome outcome;
    outcome.filePath = filePath;
    if (!m_store) {
        outcome.errorText = tr("The chat history is not open.");
        Q_EMIT importFinished(outcome);
        return;
    }
    // All or nothing (one transaction): a bad file leaves the history as it was.
    auto report = m_store->importJsonFile(toStd(filePath));
    if (!report) {
        outcome.errorText = toQString(report.error().message());
        Q_EMIT importFinished(outcome);
        return;
    }
    outcome.ok = true;
    outcome.imported = report->conversationsImported;
    outcome.skipped = report->conversationsSkipped;
    outcome.messages = report->messagesImported;
    if (!report->importedIds.empty()) outcome.firstImportedId = report->importedIds.front();
    Q_EMIT importFinished(outcome);
}

void StorageWorker::loadRouting(quint64 tag, qint64 messageId, int experts) {
    ui::RoutingData data;
    data.messageId = messageId;
    auto fail = [&](const storage::Error& e) {
        data.errorText = toQString(e.message());
        Q_EMIT routingLoaded(tag, data);
    };
    if (!m_store) {
        data.errorText = tr("The chat history is not open.");
        Q_EMIT routingLoaded(tag, data);
        return;
    }
    auto message = m_store->message(messageId);
    if (!message) return fail(message.error());
    auto table = inspect::loadMessageRouting(*m_store, messageId, experts);
    if (!table) return fail(table.error());
    data.table = std::move(table).value();
    // A remote answer without routing stored why (RemoteWorker: the server returned none).
    if (message->stats && message->stats->extra.is_object()) {
        if (auto note = message->stats->extra.find("routingNote");
            note != message->stats->extra.end() && note->is_string())
            data.note = toQString(note->get<std::string>());
    }
    auto conversation = inspect::loadConversationRouting(*m_store, message->conversationId, experts);
    if (!conversation) return fail(conversation.error());
    data.conversation = std::move(conversation).value();
    Q_EMIT routingLoaded(tag, data);
}

void StorageWorker::touchConversation(qint64 conversationId) {
    if (!m_store) return;
    if (auto c = m_store->conversation(conversationId)) Q_EMIT conversationUpdated(toUiConversation(*c));
}

}  // namespace dsv2::gui
