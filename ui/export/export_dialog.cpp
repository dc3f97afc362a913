#include "export/export_dialog.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QPushButton>
#include <QRadioButton>
#include <QRegularExpression>
#include <QVBoxLayout>

namespace dsv2::ui {
namespace {
QString safeFileName(QString title) {
    static const QRegularExpression bad(QStringLiteral("[^\\w\\- ]+"));
    title.replace(bad, QStringLiteral(" "));
    title = title.simplified().left(60);
    return title.isEmpty() ? QStringLiteral("conversations") : title;
}
}  // namespace

ExportDialog::ExportDialog(qint64 conversationId, const QString& title, const QString& directory, QWidget* parent)
    : QDialog(parent), m_conversationId(conversationId) {
    setObjectName(QStringLiteral("exportDialog"));
    setWindowTitle(tr("Export conversations"));
    auto* layout = new QVBoxLayout(this);
    auto* form = new QFormLayout;

    m_current = new QRadioButton(
        conversationId != 0 ? tr("This conversation: “%1”").arg(title) : tr("This conversation"), this);
    m_current->setObjectName(QStringLiteral("exportCurrentRadio"));
    m_current->setEnabled(conversationId != 0);
    m_all = new QRadioButton(tr("All conversations"), this);
    m_all->setObjectName(QStringLiteral("exportAllRadio"));
    (conversationId != 0 ? m_current : m_all)->setChecked(true);
    auto* scope = new QVBoxLayout;
    scope->addWidget(m_current);
    scope->addWidget(m_all);
    form->addRow(tr("Export:"), scope);

    m_format = new QComboBox(this);
    m_format->setObjectName(QStringLiteral("exportFormatCombo"));
    m_format->setAccessibleName(tr("Export format"));
    m_format->addItem(tr("Markdown (.md): the shown branch"), static_cast<int>(ExportFormat::Markdown));
    m_format->addItem(tr("Plain text (.txt): the shown branch"), static_cast<int>(ExportFormat::Text));
    m_format->addItem(tr("JSON (.json): everything, every branch; can be imported again"),
                      static_cast<int>(ExportFormat::Json));
    m_format->addItem(tr("HTML (.html): the shown branch, for a browser"), static_cast<int>(ExportFormat::Html));
    form->addRow(tr("&Format:"), m_format);

    auto* pathRow = new QHBoxLayout;
    m_path = new QLineEdit(this);
    m_path->setObjectName(QStringLiteral("exportPathEdit"));
    m_path->setAccessibleName(tr("Export file"));
    auto* browse = new QPushButton(tr("Browse…"), this);
    browse->setAccessibleName(tr("Choose the export file"));
    pathRow->addWidget(m_path, 1);
    pathRow->addWidget(browse);
    form->addRow(tr("F&ile:"), pathRow);
    layout->addLayout(form);

    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Cancel, this);
    m_ok = buttons->addButton(tr("Export"), QDialogButtonBox::AcceptRole);
    m_ok->setObjectName(QStringLiteral("exportButton"));
    layout->addWidget(buttons);

    const QString base = conversationId != 0 ? safeFileName(title) : QStringLiteral("dsv2-chat-conversations");
    m_path->setText(QDir(directory).filePath(base + QStringLiteral(".md")));
    connect(browse, &QPushButton::clicked, this, &ExportDialog::browse);
    connect(m_format, &QComboBox::currentIndexChanged, this, &ExportDialog::formatChanged);
    connect(m_path, &QLineEdit::textChanged, this, &ExportDialog::updateOk);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    updateOk();
}

QString ExportDialog::extension(ExportFormat format) {
    switch (format) {
    case ExportFormat::Markdown: return QStringLiteral("md");
    case ExportFormat::Text: return QStringLiteral("txt");
    case ExportFormat::Json: return QStringLiteral("json");
    case ExportFormat::Html: return QStringLiteral("html");
    }
    return QStringLiteral("md");
}

ExportRequest ExportDialog::request() const {
    ExportRequest r;
    if (m_current->isChecked() && m_conversationId != 0) r.conversationIds = {m_conversationId};
    r.format = static_cast<ExportFormat>(m_format->currentData().toInt());
    r.filePath = filePath();
    return r;
}

void ExportDialog::setFormat(ExportFormat format) {
    m_format->setCurrentIndex(m_format->findData(static_cast<int>(format)));
}
void ExportDialog::setAllConversations(bool all) { (all ? m_all : m_current)->setChecked(true); }
void ExportDialog::setFilePath(const QString& path) { m_path->setText(path); }
QString ExportDialog::filePath() const { return m_path->text().trimmed(); }

void ExportDialog::formatChanged() {
    // Keep the name, follow the format with the extension.
    const QFileInfo info(filePath());
    if (info.fileName().isEmpty()) return;
    const QString ext = extension(static_cast<ExportFormat>(m_format->currentData().toInt()));
    m_path->setText(info.dir().filePath(info.completeBaseName() + QLatin1Char('.') + ext));
}

void ExportDialog::browse() {
    const QString ext = extension(static_cast<ExportFormat>(m_format->currentData().toInt()));
    const QString chosen =
        QFileDialog::getSaveFileName(this, tr("Export to"), filePath(), tr("%1 files (*.%2)").arg(ext.toUpper(), ext));
    if (!chosen.isEmpty()) m_path->setText(chosen);
}

void ExportDialog::updateOk() { m_ok->setEnabled(!filePath().isEmpty()); }

}  // namespace dsv2::ui
