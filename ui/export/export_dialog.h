#pragma once
// ExportDialog: which conversations (the open one or all), which of storage's formats (Markdown,
// text, JSON with every branch and token record, HTML) and where. The export itself runs on the
// storage thread; the window reports the result.

#include <QDialog>

#include "backend/chat_types.h"

class QComboBox;
class QLineEdit;
class QRadioButton;
class QPushButton;

namespace dsv2::ui {

class ExportDialog : public QDialog {
    Q_OBJECT
public:
    // conversationId 0: only "all conversations" is possible.
    ExportDialog(qint64 conversationId, const QString& title, const QString& directory, QWidget* parent = nullptr);

    ExportRequest request() const;
    void setFormat(ExportFormat format);
    void setAllConversations(bool all);
    void setFilePath(const QString& path);
    QString filePath() const;

    static QString extension(ExportFormat format);  // "md", "txt", "json", "html"

private:
    void browse();
    void formatChanged();
    void updateOk();

    qint64 m_conversationId;
    QComboBox* m_format = nullptr;
    QRadioButton* m_current = nullptr;
    QRadioButton* m_all = nullptr;
    QLineEdit* m_path = nullptr;
    QPushButton* m_ok = nullptr;
};

}  // namespace dsv2::ui
