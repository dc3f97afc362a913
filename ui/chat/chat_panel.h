#pragma once
// ChatPanel: the right side of the window. A banner when the model is a toy, the message list, an
// "editing a prompt" bar, the input row (message box, Send/Stop, conversation settings) and a line
// with the draft's token count and the context it would use. Layout and widget state only; the
// ChatController decides what happens.

#include <QWidget>

class QLabel;
class QPushButton;
class QStackedWidget;
class QFrame;

namespace dsv2::ui {

class ChatView;
class PromptInput;

class ChatPanel : public QWidget {
    Q_OBJECT
public:
    enum class ModelState { None, Loading, Ready };

    explicit ChatPanel(QWidget* parent = nullptr);

    ChatView* view() const { return m_view; }
    PromptInput* input() const { return m_input; }
    QPushButton* sendButton() const { return m_sendButton; }
    QPushButton* stopButton() const { return m_stopButton; }

    void setModelState(ModelState state);
    ModelState modelState() const { return m_modelState; }
    void setGenerating(bool generating);
    bool isGenerating() const { return m_generating; }
    void setToyNote(const QString& note);  // empty: hide the banner
    void setEditing(bool editing);
    void setTokenInfo(const QString& text);
    void setShowEmptyState(bool empty);
    // Text of the input, trimmed; clears it.
    QString takeDraft();

Q_SIGNALS:
    void sendRequested(const QString& text);
    void stopRequested();
    void cancelEditRequested();
    void settingsRequested();
    void openModelRequested();
    void draftChanged(const QString& text);

private:
    void updateSendEnabled();

    QLabel* m_toyBanner = nullptr;
    QStackedWidget* m_stack = nullptr;
    QLabel* m_emptyLabel = nullptr;
    ChatView* m_view = nullptr;
    QFrame* m_editBar = nullptr;
    PromptInput* m_input = nullptr;
    QPushButton* m_sendButton = nullptr;
    QPushButton* m_stopButton = nullptr;
    QPushButton* m_settingsButton = nullptr;
    QLabel* m_tokenLabel = nullptr;
    ModelState m_modelState = ModelState::None;
    bool m_generating = false;
    bool m_editing = false;
};

}  // namespace dsv2::ui
