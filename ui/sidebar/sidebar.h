#pragma once
// Sidebar: "New chat", the search box and either the conversation list (lazy, renamable, delete with
// confirmation) or the search hits (selecting one opens the conversation at that message), plus an
// undo bar after a delete.

#include <QTimer>
#include <QWidget>

class QFrame;
class QLabel;
class QLineEdit;
class QListView;
class QPushButton;
class QStackedWidget;

namespace dsv2::ui {

class ChatBackend;
class ConversationListModel;
class SearchResultsModel;

class Sidebar : public QWidget {
    Q_OBJECT
public:
    static constexpr int kUndoMs = 10000;  // how long "Undo" stays offered

    explicit Sidebar(ChatBackend* backend, QWidget* parent = nullptr);

    QLineEdit* searchBox() const { return m_searchBox; }
    QListView* conversationList() const { return m_list; }
    QListView* searchResults() const { return m_results; }
    QPushButton* newChatButton() const { return m_newChatButton; }
    QPushButton* undoButton() const { return m_undoButton; }
    ConversationListModel* conversations() const { return m_conversations; }
    SearchResultsModel* hits() const { return m_hits; }
    bool isShowingSearch() const;

    // Marks the open conversation in the list (no activation).
    void setCurrentConversation(qint64 conversationId);
    void focusSearch();
    void renameCurrent();
    // Asks for confirmation (a non-modal dialog), then moves the conversation to the trash.
    void requestDelete(qint64 conversationId);

Q_SIGNALS:
    void newChatRequested();
    void conversationActivated(qint64 conversationId);
    void searchHitActivated(qint64 conversationId, qint64 messageId);
    void exportRequested(qint64 conversationId);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    void runSearch();
    void showUndo(qint64 conversationId, const QString& title);
    void reselectCurrent();

    ChatBackend* m_backend;
    QPushButton* m_newChatButton = nullptr;
    QLineEdit* m_searchBox = nullptr;
    QStackedWidget* m_stack = nullptr;
    QListView* m_list = nullptr;
    QListView* m_results = nullptr;
    QLabel* m_noHits = nullptr;
    ConversationListModel* m_conversations = nullptr;
    SearchResultsModel* m_hits = nullptr;
    QFrame* m_undoBar = nullptr;
    QLabel* m_undoLabel = nullptr;
    QPushButton* m_undoButton = nullptr;
    QTimer m_searchTimer;
    QTimer m_undoTimer;
    quint64 m_searchTag = 0;
    qint64 m_current = 0;
    qint64 m_lastDeleted = 0;
};

}  // namespace dsv2::ui
