#include "chat/prompt_input.h"

#include <QKeyEvent>
#include <QTextBlock>

namespace dsv2::ui {
namespace {
constexpr int kMinLines = 2;
constexpr int kMaxLines = 10;
}  // namespace

PromptInput::PromptInput(QWidget* parent) : QPlainTextEdit(parent) {
    setObjectName(QStringLiteral("promptInput"));
    setAccessibleName(tr("Message input"));
    setPlaceholderText(tr("Message (Enter sends, Shift+Enter for a new line)"));
    setTabChangesFocus(true);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    connect(this, &QPlainTextEdit::textChanged, this, [this] { updateGeometry(); });
}

int PromptInput::heightForLines(int lines) const {
    const QMargins m = contentsMargins();
    return fontMetrics().lineSpacing() * lines + static_cast<int>(2 * document()->documentMargin()) + m.top() +
           m.bottom() + 2;
}

QSize PromptInput::sizeHint() const {
    // Visual lines (wrapped) of the draft, within [kMinLines, kMaxLines].
    int lines = 0;
    for (QTextBlock b = document()->begin(); b.isValid(); b = b.next()) lines += std::max(1, b.lineCount());
    return {QPlainTextEdit::sizeHint().width(), heightForLines(std::clamp(lines, kMinLines, kMaxLines))};
}

QSize PromptInput::minimumSizeHint() const { return {100, heightForLines(kMinLines)}; }

void PromptInput::keyPressEvent(QKeyEvent* event) {
    const bool enter = event->key() == Qt::Key_Return || event->key() == Qt::Key_Enter;
    if (enter && !(event->modifiers() & (Qt::ShiftModifier | Qt::ControlModifier | Qt::AltModifier))) {
        event->accept();
        Q_EMIT submitted();
        return;
    }
    if (enter && (event->modifiers() & Qt::ControlModifier)) {
        insertPlainText(QStringLiteral("\n"));
        return;
    }
    QPlainTextEdit::keyPressEvent(event);
}

}  // namespace dsv2::ui
