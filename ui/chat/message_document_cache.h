#pragma once
// MessageDocumentCache: laid-out QTextDocuments for the messages on screen, and the heights of every
// message the view has measured. A document is built the first time its message is painted (the
// rest of a long conversation gets an estimated height until then), rebuilt when the message's
// revision, the width or the font changes, and evicted least-recently-used past kMaxDocuments.

#include <QFont>
#include <QHash>
#include <QRectF>
#include <QString>
#include <QVector>

#include <list>
#include <memory>
#include <optional>

class QTextDocument;

namespace dsv2::ui {

class MessageDocumentCache {
public:
    static constexpr int kMaxDocuments = 256;

    struct CodeBlock {
        QRectF rect;  // document coordinates
        QString text;
    };
    struct Entry {
        std::shared_ptr<QTextDocument> doc;
        quint32 revision = 0;
        int width = 0;
        qreal height = 0;
        QVector<CodeBlock> codeBlocks;
    };

    MessageDocumentCache();
    ~MessageDocumentCache();
    MessageDocumentCache(const MessageDocumentCache&) = delete;
    MessageDocumentCache& operator=(const MessageDocumentCache&) = delete;

    // The laid-out document of message `id` at `width` (built now if missing or stale).
    Entry document(qint64 id, quint32 revision, const QString& text, bool markdown, int width);
    // The exact height if this message was laid out at this revision and width, else nullopt.
    std::optional<qreal> knownHeight(qint64 id, quint32 revision, int width) const;
    // A cheap guess from the text length and line breaks, for messages not laid out yet.
    qreal estimateHeight(const QString& text, int width) const;

    void setFont(const QFont& font);
    const QFont& font() const { return m_font; }
    void clear();
    int documentCount() const { return static_cast<int>(m_docs.size()); }

private:
    struct Height {
        quint32 revision = 0;
        int width = 0;
        qreal height = 0;
    };
    void touch(qint64 id);

    QFont m_font;
    QHash<qint64, Entry> m_docs;
    std::list<qint64> m_lru;  // most recent first
    QHash<qint64, std::list<qint64>::iterator> m_lruPos;
    QHash<qint64, Height> m_heights;
};

}  // namespace dsv2::ui
