#include "chat/chat_panel.h"

#include <QFrame>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QStackedWidget>
#include <QVBoxLayout>

#include "chat/chat_view.h"
#include "chat/prompt_input.h"

namespace dsv2::ui {

ChatPanel::ChatPanel(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("chatArea"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 6);
    layout->setSpacing(4);

    m_toyBanner = new QLabel(this);
    m_toyBanner->setObjectName(QStringLiteral("toyModelBanner"));
    m_toyBanner->setAccessibleName(tr("About this model"));
    m_toyBanner->setWordWrap(true);
    m_toyBanner->setTextFormat(Qt::RichText);
    m_toyBanner->setMargin(8);
    m_toyBanner->setAutoFillBackground(true);
    m_toyBanner->setBackgroundRole(QPalette::ToolTipBase);
    m_toyBanner->setForegroundRole(QPalette::ToolTipText);
    m_toyBanner->hide();
    connect(m_toyBanner, &QLabel::linkActivated, this, [this] { Q_EMIT openModelRequested(); });
    layout->addWidget(m_toyBanner);

    m_stack = new QStackedWidget(this);
    m_stack->setObjectName(QStringLiteral("chatStack"));
    m_emptyLabel =
        new QLabel(tr("<h2>No conversation yet</h2><p>Type a message below to start chatting.</p>"), m_stack);
    m_emptyLabel->setObjectName(QStringLiteral("emptyChatLabel"));
    m_emptyLabel->setAlignment(Qt::AlignCenter);
    m_emptyLabel->setWordWrap(true);
    m_view = new ChatView(m_stack);
    m_stack->addWidget(m_emptyLabel);
    m_stack->addWidget(m_view);
    layout->addWidget(m_stack, 1);

    m_editBar = new QFrame(this);
    m_editBar->setObjectName(QStringLiteral("editBar"));
    m_editBar->setFrameShape(QFrame::StyledPanel);
    auto* editLayout = new QHBoxLayout(m_editBar);
    editLayout->setContentsMargins(8, 2, 4, 2);
    auto* editText =
        new QLabel(tr("Editing a prompt: sending saves it as a new branch (the old one stays)."), m_editBar);
    editText->setWordWrap(true);
    auto* cancelEdit = new QPushButton(tr("Cancel edit"), m_editBar);
    cancelEdit->setObjectName(QStringLiteral("cancelEditButton"));
    cancelEdit->setAccessibleName(tr("Cancel editing"));
    connect(cancelEdit, &QPushButton::clicked, this, &ChatPanel::cancelEditRequested);
    editLayout->addWidget(editText, 1);
    editLayout->addWidget(cancelEdit);
    m_editBar->hide();
    layout->addWidget(m_editBar);

    auto* inputRow = new QHBoxLayout;
    inputRow->setContentsMargins(8, 0, 8, 0);
    m_input = new PromptInput(this);
    inputRow->addWidget(m_input, 1);
    auto* buttons = new QVBoxLayout;
    m_sendButton = new QPushButton(tr("Send"), this);
    m_sendButton->setObjectName(QStringLiteral("sendButton"));
    m_sendButton->setAccessibleName(tr("Send message"));
    m_sendButton->setToolTip(tr("Send (Enter)"));
    m_sendButton->setEnabled(false);
    m_stopButton = new QPushButton(tr("Stop"), this);
    m_stopButton->setObjectName(QStringLiteral("stopButton"));
    m_stopButton->setAccessibleName(tr("Stop the answer"));
    m_stopButton->setToolTip(tr("Stop generating (Esc)"));
    m_stopButton->hide();
    m_settingsButton = new QPushButton(tr("Settings…"), this);
    m_settingsButton->setObjectName(QStringLiteral("conversationSettingsButton"));
    m_settingsButton->setAccessibleName(tr("Conversation settings"));
    m_settingsButton->setToolTip(tr("System prompt, temperature, top-p, top-k, max tokens, seed"));
    buttons->addWidget(m_sendButton);
    buttons->addWidget(m_stopButton);
    buttons->addWidget(m_settingsButton);
    buttons->addStretch();
    inputRow->addLayout(buttons);
    layout->addLayout(inputRow);

    m_tokenLabel = new QLabel(this);
    m_tokenLabel->setObjectName(QStringLiteral("draftTokenLabel"));
    m_tokenLabel->setAccessibleName(tr("Draft token count"));
    m_tokenLabel->setContentsMargins(10, 0, 10, 0);
    m_tokenLabel->setForegroundRole(QPalette::PlaceholderText);
    layout->addWidget(m_tokenLabel);

    connect(m_input, &PromptInput::submitted, this, [this] {
        if (m_sendButton->isEnabled()) m_sendButton->click();
    });
    connect(m_sendButton, &QPushButton::clicked, this, [this] {
        const QString text = takeDraft();
        if (!text.isEmpty()) Q_EMIT sendRequested(text);
    });
    connect(m_stopButton, &QPushButton::clicked, this, &ChatPanel::stopRequested);
    connect(m_settingsButton, &QPushButton::clicked, this, &ChatPanel::settingsRequested);
    connect(m_input, &QPlainTextEdit::textChanged, this, [this] {
        updateSendEnabled();
        Q_EMIT draftChanged(m_input->toPlainText());
    });
}

void ChatPanel::setModelState(ModelState state) {
    m_modelState = state;
    switch (state) {
    case ModelState::None:
        m_input->setPlaceholderText(tr("No model loaded: open a model folder (Ctrl+O) to chat."));
        break;
    case ModelState::Loading:
        m_input->setPlaceholderText(tr("Loading the model… you can type already; Send waits for it."));
        break;
    case ModelState::Ready: m_input->setPlaceholderText(tr("Message (Enter sends, Shift+Enter for a new line)")); break;
    }
    updateSendEnabled();
}

void ChatPanel::setGenerating(bool generating) {
    m_generating = generating;
    m_stopButton->setVisible(generating);
    m_sendButton->setVisible(!generating);
    updateSendEnabled();
}

void ChatPanel::updateSendEnabled() {
    const bool ready = m_modelState == ModelState::Ready && !m_generating;
    m_sendButton->setEnabled(ready && !m_input->toPlainText().trimmed().isEmpty());
    m_sendButton->setToolTip(m_modelState != ModelState::Ready ? tr("No model is ready yet")
                             : m_generating                    ? tr("Wait for the answer or stop it (Esc)")
                                                               : tr("Send (Enter)"));
}

void ChatPanel::setToyNote(const QString& note) {
    m_toyBanner->setVisible(!note.isEmpty());
    m_toyBanner->setText(note.toHtmlEscaped() +
                         QStringLiteral(" <a href=\"open\">%1</a>").arg(tr("Open a model folder…")));
}

void ChatPanel::setEditing(bool editing) {
    m_editing = editing;
    m_editBar->setVisible(editing);
    m_sendButton->setText(editing ? tr("Save && send") : tr("Send"));
}

void ChatPanel::setTokenInfo(const QString& text) { m_tokenLabel->setText(text); }

void ChatPanel::setShowEmptyState(bool empty) {
    m_stack->setCurrentWidget(empty ? static_cast<QWidget*>(m_emptyLabel) : m_view);
}

QString ChatPanel::takeDraft() {
    const QString text = m_input->toPlainText().trimmed();
    if (!text.isEmpty()) m_input->clear();
    return text;
}

}  // namespace dsv2::ui
