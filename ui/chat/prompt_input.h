#pragma once
// PromptInput: the message box. Enter sends, Shift+Enter (or Ctrl+Enter) adds a line; it grows with
// its text up to a limit.

#include <QPlainTextEdit>

namespace dsv2::ui {

class PromptInput : public QPlainTextEdit {
    Q_OBJECT
public:
    explicit PromptInput(QWidget* parent = nullptr);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

Q_SIGNALS:
    void submitted();

protected:
    void keyPressEvent(QKeyEvent* event) override;

private:
    int heightForLines(int lines) const;
};

}  // namespace dsv2::ui
