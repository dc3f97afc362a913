#pragma once
// MessageDelegate: paints one message (a role line, the Markdown body from the document cache, a
// footer with the branch switch "‹ 2/3 ›", stats and honest state notes) and the hover buttons
// (Copy, Edit, Regenerate, and Copy on each code block). Clicks come out as actionTriggered.
// Heights: exact for messages that were laid out, estimated for the rest (see the cache).

#include <QStyledItemDelegate>

#include <QColor>
#include <QVector>

#include "chat/message_document_cache.h"
#include "chat/token_span_mapping.h"

namespace dsv2::ui {

class MessageDelegate : public QStyledItemDelegate {
    Q_OBJECT
public:
    enum class Action { None, Copy, Edit, Regenerate, PreviousBranch, NextBranch, CopyCode };

    explicit MessageDelegate(QObject* parent = nullptr);

    void paint(QPainter* painter, const QStyleOptionViewItem& option, const QModelIndex& index) const override;
    QSize sizeHint(const QStyleOptionViewItem& option, const QModelIndex& index) const override;
    bool editorEvent(QEvent* event, QAbstractItemModel* model, const QStyleOptionViewItem& option,
                     const QModelIndex& index) override;

    // The viewport's width: every row is as wide as the view.
    void setViewportWidth(int width);
    int viewportWidth() const { return m_viewportWidth; }
    void setFont(const QFont& font);
    void setHoverPoint(const QPoint& viewportPos) { m_hover = viewportPos; }

    // Where an action's button is in a row (viewport coordinates), an empty rect when the row has
    // none. Used for hit-testing and by tests that click the real buttons.
    QRect actionRect(const QRect& rowRect, const QModelIndex& index, Action action, int codeBlock = 0) const;
    Action hitTest(const QRect& rowRect, const QModelIndex& index, const QPoint& pos, int* codeBlock) const;
    QString codeBlockText(const QModelIndex& index, int codeBlock) const;
    int codeBlockCount(const QModelIndex& index) const;

    // The rendered document of a message (built if needed), as painted.
    std::shared_ptr<QTextDocument> document(const QModelIndex& index) const { return documentFor(index).doc; }
    // Lays the message out now (instead of at its first paint) and tells the view its height.
    void measure(const QModelIndex& index) const;

    MessageDocumentCache& cache() const { return m_cache; }

    // Tokens to colour in one message (the inspector's selected expert): ranges of its rendered
    // document (mapSpansToRendered), painted behind the text. messageId 0 or no ranges: none.
    void setTokenHighlight(qint64 messageId, const QVector<TextRange>& ranges, const QColor& color);
    qint64 highlightedMessage() const { return m_highlightId; }
    const QVector<TextRange>& highlightRanges() const { return m_highlightRanges; }
    // The rendered document's character under a viewport point of a row; -1 when not on text.
    int documentPositionAt(const QRect& rowRect, const QModelIndex& index, const QPoint& pos) const;

Q_SIGNALS:
    void actionTriggered(const QModelIndex& index, dsv2::ui::MessageDelegate::Action action, int codeBlock);
    // A click on a message's text (not on a button): the character of its rendered document.
    void textClicked(const QModelIndex& index, int documentPosition);

private:
    struct Geometry {
        QRect bubble;
        QRect header;
        QPoint docOrigin;
        int docWidth = 0;
        qreal docHeight = 0;
        QRect footer;
    };
    Geometry geometry(const QRect& rowRect, const QModelIndex& index, qreal docHeight) const;
    void paintHighlight(QPainter* painter, const QTextDocument& doc) const;
    int docWidthFor(int rowWidth) const;
    MessageDocumentCache::Entry documentFor(const QModelIndex& index) const;
    bool hasFooter(const QModelIndex& index) const;
    QString footerNote(const QModelIndex& index) const;
    QRect headerButton(const Geometry& g, int slot, const QString& text) const;

    struct RowHeight {
        quint32 revision = 0;
        int width = 0;
        int height = 0;
        bool exact = false;
    };

    mutable MessageDocumentCache m_cache;
    // sizeHint is asked for every row at every relayout of the view: answered from here.
    mutable QHash<qint64, RowHeight> m_rowHeights;
    int m_viewportWidth = 600;
    QPoint m_hover{-1, -1};
    qint64 m_highlightId = 0;
    QVector<TextRange> m_highlightRanges;
    QColor m_highlightColor;
};

}  // namespace dsv2::ui

Q_DECLARE_METATYPE(dsv2::ui::MessageDelegate::Action)
