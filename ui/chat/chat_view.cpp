#include "chat/chat_view.h"

#include <QApplication>
#include <QClipboard>
#include <QContextMenuEvent>
#include <QMenu>
#include <QScrollBar>
#include <QTimer>
#include <QToolButton>

#include "chat/message_model.h"

namespace dsv2::ui {
namespace {
constexpr int kBottomSlack = 8;  // pixels from the end that still count as "at the bottom"
}

ChatView::ChatView(QWidget* parent) : QListView(parent) {
    setObjectName(QStringLiteral("chatView"));
    setAccessibleName(tr("Messages"));
    setVerticalScrollMode(QAbstractItemView::ScrollPerPixel);
    setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    // Always there, so the viewport's width never depends on the content's height: with "as
    // needed", a width at which the messages fit only without the bar (the chat narrowed by the
    // inspector dock) made every relayout in resizeEvent add and remove it, recursing until the
    // stack overflowed.
    setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOn);
    setUniformItemSizes(false);
    setResizeMode(QListView::Adjust);
    setSelectionMode(QAbstractItemView::SingleSelection);
    setEditTriggers(QAbstractItemView::NoEditTriggers);
    setMouseTracking(true);
    setFrameShape(QFrame::NoFrame);
    verticalScrollBar()->setSingleStep(24);

    m_delegate = new MessageDelegate(this);
    m_delegate->setFont(font());
    setItemDelegate(m_delegate);
    connect(m_delegate, &MessageDelegate::actionTriggered, this, &ChatView::onAction);

    QScrollBar* bar = verticalScrollBar();
    connect(bar, &QScrollBar::rangeChanged, this, &ChatView::onRangeChanged);
    connect(bar, &QScrollBar::actionTriggered, this, [this, bar](int) {
        m_follow = bar->sliderPosition() >= bar->maximum() - kBottomSlack;
        placeJumpButton();
    });
    connect(bar, &QScrollBar::sliderMoved, this, [this, bar](int value) {
        m_follow = value >= bar->maximum() - kBottomSlack;
        placeJumpButton();
    });

    m_jumpButton = new QToolButton(viewport());
    m_jumpButton->setObjectName(QStringLiteral("jumpToLatestButton"));
    m_jumpButton->setText(tr("↓ Latest"));
    m_jumpButton->setAccessibleName(tr("Jump to the latest message"));
    m_jumpButton->setToolTip(tr("Scroll to the end and follow new text"));
    m_jumpButton->hide();
    connect(m_jumpButton, &QToolButton::clicked, this, [this] { setFollowing(true); });
}

void ChatView::setMessageModel(MessageModel* model) {
    m_model = model;
    setModel(model);
    connect(model, &QAbstractItemModel::dataChanged, this,
            [this](const QModelIndex& first, const QModelIndex& last) { remeasure(first, last); });
    connect(model, &QAbstractItemModel::modelReset, this, [this] { placeJumpButton(); });
}

bool ChatView::isAtBottom() const {
    const QScrollBar* bar = verticalScrollBar();
    return bar->value() >= bar->maximum() - kBottomSlack;
}

void ChatView::setFollowing(bool follow) {
    m_follow = follow;
    if (follow) scrollToBottom();
    placeJumpButton();
}

void ChatView::scrollToMessage(qint64 messageId) {
    if (!m_model) return;
    const int row = m_model->rowOf(messageId);
    if (row < 0) return;
    m_follow = false;
    const QModelIndex index = m_model->index(row);
    setCurrentIndex(index);
    // Lay out the target (and so its neighbours' estimates settle) before scrolling, then once more
    // after the view has applied the exact heights.
    m_delegate->measure(index);
    doItemsLayout();
    scrollTo(index, QAbstractItemView::PositionAtCenter);
    QPersistentModelIndex target(index);
    QTimer::singleShot(0, this, [this, target] {
        if (target.isValid() && !m_follow) scrollTo(target, QAbstractItemView::PositionAtCenter);
        placeJumpButton();
    });
}

void ChatView::onRangeChanged(int, int max) {
    if (m_follow) verticalScrollBar()->setValue(max);
    placeJumpButton();
}

void ChatView::updateFollowFromUser() {
    m_follow = isAtBottom();
    placeJumpButton();
}

void ChatView::placeJumpButton() {
    const bool show = !m_follow && verticalScrollBar()->maximum() > 0 && !isAtBottom();
    m_jumpButton->setVisible(show);
    if (!show) return;
    m_jumpButton->adjustSize();
    const QSize s = m_jumpButton->size();
    m_jumpButton->move(viewport()->width() - s.width() - 16, viewport()->height() - s.height() - 12);
    m_jumpButton->raise();
}

void ChatView::remeasure(const QModelIndex& first, const QModelIndex& last) {
    // A streaming answer grows every frame: measure it now so the layout is right before the paint.
    for (int row = first.row(); row <= last.row(); ++row) {
        const QModelIndex index = m_model->index(row);
        const QRect rect = visualRect(index);
        if (rect.isValid() && viewport()->rect().intersects(rect)) m_delegate->measure(index);
    }
}

void ChatView::resizeEvent(QResizeEvent* event) {
    m_delegate->setViewportWidth(viewport()->width());
    QListView::resizeEvent(event);
    doItemsLayout();
    if (m_follow) scrollToBottom();
    placeJumpButton();
}

void ChatView::wheelEvent(QWheelEvent* event) {
    QListView::wheelEvent(event);
    updateFollowFromUser();
}

void ChatView::keyPressEvent(QKeyEvent* event) {
    QListView::keyPressEvent(event);
    updateFollowFromUser();
}

void ChatView::mouseMoveEvent(QMouseEvent* event) {
    m_delegate->setHoverPoint(event->position().toPoint());
    const QModelIndex index = indexAt(event->position().toPoint());
    if (m_hoverIndex.isValid() && m_hoverIndex != index) viewport()->update(visualRect(m_hoverIndex));
    if (index.isValid()) viewport()->update(visualRect(index));
    m_hoverIndex = index;
    QListView::mouseMoveEvent(event);
}

void ChatView::leaveEvent(QEvent* event) {
    m_delegate->setHoverPoint({-1, -1});
    if (m_hoverIndex.isValid()) viewport()->update(visualRect(m_hoverIndex));
    m_hoverIndex = QPersistentModelIndex();
    QListView::leaveEvent(event);
}

void ChatView::changeEvent(QEvent* event) {
    QListView::changeEvent(event);
    if (event->type() == QEvent::FontChange) {
        m_delegate->setFont(font());
        doItemsLayout();
    } else if (event->type() == QEvent::PaletteChange || event->type() == QEvent::StyleChange) {
        // Rendered documents carry colours (links) from the palette they were built with.
        m_delegate->cache().clear();
        viewport()->update();
    }
}

void ChatView::contextMenuEvent(QContextMenuEvent* event) {
    // From the keyboard (Menu key, Shift+F10) the menu is about the selected message.
    const QModelIndex index = event->reason() == QContextMenuEvent::Keyboard
                                  ? currentIndex()
                                  : indexAt(viewport()->mapFromGlobal(event->globalPos()));
    if (!index.isValid()) return;
    const MessageItem& m = m_model->at(index.row());
    QMenu menu(this);
    menu.addAction(tr("Copy message"), this, [this, index] { onAction(index, MessageDelegate::Action::Copy, -1); });
    const int blocks = m_delegate->codeBlockCount(index);
    for (int i = 0; i < blocks; ++i)
        menu.addAction(blocks == 1 ? tr("Copy code block") : tr("Copy code block %1").arg(i + 1), this,
                       [this, index, i] { onAction(index, MessageDelegate::Action::CopyCode, i); });
    menu.addSeparator();
    if (m.role == MessageRole::User)
        menu.addAction(tr("Edit (new branch)"), this,
                       [this, index] { onAction(index, MessageDelegate::Action::Edit, -1); });
    if (m.role == MessageRole::Assistant && m.state != MessageState::Streaming)
        menu.addAction(tr("Regenerate"), this,
                       [this, index] { onAction(index, MessageDelegate::Action::Regenerate, -1); });
    if (m.siblingCount > 1) {
        QAction* prev = menu.addAction(tr("Previous branch"), this,
                                       [this, index] { onAction(index, MessageDelegate::Action::PreviousBranch, -1); });
        prev->setEnabled(m.siblingIndex > 0);
        QAction* next = menu.addAction(tr("Next branch"), this,
                                       [this, index] { onAction(index, MessageDelegate::Action::NextBranch, -1); });
        next->setEnabled(m.siblingIndex + 1 < m.siblingCount);
    }
    menu.exec(event->reason() == QContextMenuEvent::Keyboard ? viewport()->mapToGlobal(visualRect(index).topLeft())
                                                             : event->globalPos());
}

void ChatView::onAction(const QModelIndex& index, MessageDelegate::Action action, int codeBlock) {
    if (!index.isValid() || !m_model) return;
    const MessageItem& m = m_model->at(index.row());
    switch (action) {
    case MessageDelegate::Action::Copy:
        QApplication::clipboard()->setText(m.content);
        Q_EMIT copied(tr("Message copied"));
        return;
    case MessageDelegate::Action::CopyCode:
        QApplication::clipboard()->setText(m_delegate->codeBlockText(index, codeBlock));
        Q_EMIT copied(tr("Code copied"));
        return;
    case MessageDelegate::Action::None: return;
    case MessageDelegate::Action::Edit:
    case MessageDelegate::Action::Regenerate:
    case MessageDelegate::Action::PreviousBranch:
    case MessageDelegate::Action::NextBranch: Q_EMIT messageAction(m.id, action); return;
    }
}

}  // namespace dsv2::ui
