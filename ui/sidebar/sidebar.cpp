#include "sidebar/sidebar.h"

#include <QContextMenuEvent>
#include <QFrame>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QStackedWidget>
#include <QVBoxLayout>

#include "backend/chat_backend.h"
#include "sidebar/conversation_delegate.h"
#include "sidebar/conversation_list_model.h"
#include "sidebar/search_results_model.h"

namespace dsv2::ui {

Sidebar::Sidebar(ChatBackend* backend, QWidget* parent) : QWidget(parent), m_backend(backend) {
    setObjectName(QStringLiteral("sidebar"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);

    m_newChatButton = new QPushButton(tr("New chat"), this);
    m_newChatButton->setObjectName(QStringLiteral("newChatButton"));
    m_newChatButton->setAccessibleName(tr("New chat"));
    m_newChatButton->setToolTip(tr("Start a new conversation (Ctrl+N)"));
    connect(m_newChatButton, &QPushButton::clicked, this, &Sidebar::newChatRequested);
    layout->addWidget(m_newChatButton);

    m_searchBox = new QLineEdit(this);
    m_searchBox->setObjectName(QStringLiteral("searchBox"));
    m_searchBox->setPlaceholderText(tr("Search conversations (Ctrl+F)"));
    m_searchBox->setAccessibleName(tr("Search conversations"));
    m_searchBox->setClearButtonEnabled(true);
    m_searchBox->installEventFilter(this);
    layout->addWidget(m_searchBox);

    m_stack = new QStackedWidget(this);
    m_conversations = new ConversationListModel(backend, this);
    m_list = new QListView(m_stack);
    m_list->setObjectName(QStringLiteral("conversationList"));
    m_list->setAccessibleName(tr("Conversations"));
    m_list->setModel(m_conversations);
    m_list->setUniformItemSizes(true);
    m_list->setItemDelegate(new ConversationDelegate(m_list));
    m_list->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_list->setTextElideMode(Qt::ElideRight);
    m_list->setEditTriggers(QAbstractItemView::EditKeyPressed | QAbstractItemView::DoubleClicked);
    m_list->setContextMenuPolicy(Qt::DefaultContextMenu);
    m_list->installEventFilter(this);
    m_list->viewport()->installEventFilter(this);

    m_hits = new SearchResultsModel(this);
    auto* resultsPage = new QWidget(m_stack);
    auto* resultsLayout = new QVBoxLayout(resultsPage);
    resultsLayout->setContentsMargins(0, 0, 0, 0);
    m_noHits = new QLabel(tr("No messages match."), resultsPage);
    m_noHits->setObjectName(QStringLiteral("noSearchHitsLabel"));
    m_noHits->setAlignment(Qt::AlignCenter);
    m_noHits->hide();
    m_results = new QListView(resultsPage);
    m_results->setObjectName(QStringLiteral("searchResults"));
    m_results->setAccessibleName(tr("Search results"));
    m_results->setModel(m_hits);
    m_results->setItemDelegate(new SearchResultDelegate(m_results));
    m_results->setUniformItemSizes(true);
    m_results->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_results->setEditTriggers(QAbstractItemView::NoEditTriggers);
    resultsLayout->addWidget(m_noHits);
    resultsLayout->addWidget(m_results, 1);
    m_stack->addWidget(m_list);
    m_stack->addWidget(resultsPage);
    layout->addWidget(m_stack, 1);

    m_undoBar = new QFrame(this);
    m_undoBar->setObjectName(QStringLiteral("undoBar"));
    m_undoBar->setFrameShape(QFrame::StyledPanel);
    auto* undoLayout = new QHBoxLayout(m_undoBar);
    undoLayout->setContentsMargins(6, 2, 2, 2);
    m_undoLabel = new QLabel(m_undoBar);
    m_undoLabel->setWordWrap(true);
    m_undoButton = new QPushButton(tr("Undo"), m_undoBar);
    m_undoButton->setObjectName(QStringLiteral("undoDeleteButton"));
    m_undoButton->setAccessibleName(tr("Undo delete"));
    undoLayout->addWidget(m_undoLabel, 1);
    undoLayout->addWidget(m_undoButton);
    m_undoBar->hide();
    layout->addWidget(m_undoBar);
    m_undoTimer.setSingleShot(true);
    m_undoTimer.setInterval(kUndoMs);
    connect(&m_undoTimer, &QTimer::timeout, m_undoBar, &QWidget::hide);
    connect(m_undoButton, &QPushButton::clicked, this, [this] {
        if (m_lastDeleted != 0) m_backend->restoreConversation(m_lastDeleted);
        m_lastDeleted = 0;
        m_undoBar->hide();
    });

    m_searchTimer.setSingleShot(true);
    m_searchTimer.setInterval(200);  // search once typing pauses
    connect(&m_searchTimer, &QTimer::timeout, this, &Sidebar::runSearch);
    connect(m_searchBox, &QLineEdit::textChanged, this, [this](const QString& text) {
        if (text.trimmed().isEmpty()) {
            m_searchTimer.stop();
            ++m_searchTag;  // drop answers in flight
            m_stack->setCurrentIndex(0);
            reselectCurrent();
        } else {
            m_searchTimer.start();
        }
    });
    connect(backend, &ChatBackend::searchFinished, this, [this](quint64 tag, const QVector<SearchHitItem>& hits) {
        if (tag != m_searchTag) return;
        m_hits->setHits(hits);
        m_noHits->setVisible(hits.isEmpty());
        m_stack->setCurrentIndex(1);
    });

    connect(m_list, &QListView::clicked, this, [this](const QModelIndex& index) {
        Q_EMIT conversationActivated(index.data(ConversationListModel::IdRole).toLongLong());
    });
    connect(m_list, &QListView::activated, this, [this](const QModelIndex& index) {
        Q_EMIT conversationActivated(index.data(ConversationListModel::IdRole).toLongLong());
    });
    auto openHit = [this](const QModelIndex& index) {
        Q_EMIT searchHitActivated(index.data(SearchResultsModel::ConversationIdRole).toLongLong(),
                                  index.data(SearchResultsModel::MessageIdRole).toLongLong());
    };
    connect(m_results, &QListView::clicked, this, openHit);
    connect(m_results, &QListView::activated, this, openHit);

    connect(backend, &ChatBackend::conversationDeleted, this, &Sidebar::showUndo);
    connect(m_conversations, &QAbstractItemModel::rowsInserted, this, &Sidebar::reselectCurrent);
    connect(backend, &ChatBackend::historyReady, this, [this] { m_conversations->reload(); });
    // Imported conversations keep their own dates, so they land anywhere in the list: reload it.
    connect(backend, &ChatBackend::importFinished, this, [this](const ImportOutcome& o) {
        if (o.ok && o.imported > 0) m_conversations->reload();
    });
}

bool Sidebar::isShowingSearch() const { return m_stack->currentIndex() == 1; }

void Sidebar::setCurrentConversation(qint64 conversationId) {
    m_current = conversationId;
    reselectCurrent();
}

void Sidebar::reselectCurrent() {
    const int row = m_current == 0 ? -1 : m_conversations->rowOf(m_current);
    if (row < 0) {
        m_list->clearSelection();
        return;
    }
    const QModelIndex index = m_conversations->index(row);
    m_list->selectionModel()->setCurrentIndex(index, QItemSelectionModel::ClearAndSelect);
    m_list->scrollTo(index);
}

void Sidebar::focusSearch() {
    m_searchBox->setFocus(Qt::ShortcutFocusReason);
    m_searchBox->selectAll();
}

void Sidebar::renameCurrent() {
    // The item under the keyboard when the list has focus, else the open conversation.
    const QModelIndex focused = m_list->hasFocus() ? m_list->currentIndex() : QModelIndex();
    const int row = focused.isValid() ? focused.row() : m_conversations->rowOf(m_current);
    if (row < 0) return;
    m_stack->setCurrentIndex(0);
    m_list->edit(m_conversations->index(row));
}

void Sidebar::runSearch() { m_backend->search(++m_searchTag, m_searchBox->text()); }

void Sidebar::requestDelete(qint64 conversationId) {
    if (conversationId == 0) return;
    const QString title = m_conversations->titleOf(conversationId);
    auto* box =
        new QMessageBox(QMessageBox::Question, tr("Delete conversation"),
                        tr("Delete “%1”?").arg(title.isEmpty() ? tr("Untitled") : title), QMessageBox::Cancel, this);
    box->setObjectName(QStringLiteral("confirmDeleteDialog"));
    box->setInformativeText(
        tr("You can undo this for a few seconds; deleted conversations are kept in the trash "
           "for 30 days."));
    QPushButton* yes = box->addButton(tr("Delete"), QMessageBox::DestructiveRole);
    yes->setObjectName(QStringLiteral("confirmDeleteButton"));
    box->setDefaultButton(QMessageBox::Cancel);
    box->setAttribute(Qt::WA_DeleteOnClose);
    connect(box, &QMessageBox::buttonClicked, this, [this, yes, conversationId](QAbstractButton* button) {
        if (button == yes) m_backend->deleteConversation(conversationId);
    });
    box->open();
}

void Sidebar::showUndo(qint64 conversationId, const QString& title) {
    m_lastDeleted = conversationId;
    m_undoLabel->setText(tr("Deleted “%1”.").arg(title.isEmpty() ? tr("Untitled") : title));
    m_undoBar->show();
    m_undoTimer.start();
}

bool Sidebar::eventFilter(QObject* watched, QEvent* event) {
    if (watched == m_searchBox && event->type() == QEvent::KeyPress) {
        auto* key = static_cast<QKeyEvent*>(event);
        if (key->key() == Qt::Key_Down && isShowingSearch() && m_hits->rowCount() > 0) {
            m_results->setFocus();
            m_results->setCurrentIndex(m_hits->index(0));
            return true;
        }
        if ((key->key() == Qt::Key_Return || key->key() == Qt::Key_Enter) && isShowingSearch() &&
            m_hits->rowCount() > 0) {
            const QModelIndex first = m_hits->index(0);
            m_results->setCurrentIndex(first);
            Q_EMIT m_results->activated(first);
            return true;
        }
        if (key->key() == Qt::Key_Escape && !m_searchBox->text().isEmpty()) {
            m_searchBox->clear();
            return true;
        }
    }
    if (watched == m_list && event->type() == QEvent::KeyPress) {
        auto* key = static_cast<QKeyEvent*>(event);
        if (key->key() == Qt::Key_Delete) {  // the rename editor gets its own keys, not this filter
            const QModelIndex index = m_list->currentIndex();
            if (index.isValid()) requestDelete(index.data(ConversationListModel::IdRole).toLongLong());
            return true;
        }
    }
    if (watched == m_list->viewport() && event->type() == QEvent::ContextMenu) {
        auto* menuEvent = static_cast<QContextMenuEvent*>(event);
        const QModelIndex index = m_list->indexAt(menuEvent->pos());
        if (!index.isValid()) return false;
        const qint64 id = index.data(ConversationListModel::IdRole).toLongLong();
        QMenu menu(this);
        menu.addAction(tr("Open"), this, [this, id] { Q_EMIT conversationActivated(id); });
        menu.addAction(tr("Rename"), this, [this, index] { m_list->edit(index); });
        menu.addAction(tr("Export…"), this, [this, id] { Q_EMIT exportRequested(id); });
        menu.addSeparator();
        menu.addAction(tr("Delete…"), this, [this, id] { requestDelete(id); });
        menu.exec(menuEvent->globalPos());
        return true;
    }
    return QWidget::eventFilter(watched, event);
}

}  // namespace dsv2::ui
