#include "model/server_dialog.h"

#include <QDialogButtonBox>
#include <QFormLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>

#include "model/saved_servers.h"

namespace dsv2::ui {

ServerDialog::ServerDialog(const ServerEntry& initial, QWidget* parent) : QDialog(parent) {
    setWindowTitle(tr("Connect to a server"));
    setObjectName(QStringLiteral("serverDialog"));
    auto* layout = new QVBoxLayout(this);
    auto* intro = new QLabel(tr("Chat with a model served over the OpenAI API (dsv2 serve, vLLM, SGLang). "
                                "Routing heatmaps need a server that returns routed experts "
                                "(--enable-return-routed-experts)."),
                             this);
    intro->setWordWrap(true);
    layout->addWidget(intro);

    auto* form = new QFormLayout;
    m_url = new QLineEdit(initial.url.isEmpty() ? QStringLiteral("http://127.0.0.1:8000/v1") : initial.url, this);
    m_url->setObjectName(QStringLiteral("serverUrl"));
    m_url->setAccessibleName(tr("Server address"));
    m_model = new QLineEdit(initial.model, this);
    m_model->setObjectName(QStringLiteral("serverModel"));
    m_model->setAccessibleName(tr("Model on the server"));
    m_model->setPlaceholderText(tr("the server's first model"));
    m_key = new QLineEdit(initial.apiKey, this);
    m_key->setObjectName(QStringLiteral("serverApiKey"));
    m_key->setAccessibleName(tr("API key"));
    m_key->setEchoMode(QLineEdit::Password);
    m_key->setPlaceholderText(tr("none"));
    form->addRow(tr("&Address:"), m_url);
    form->addRow(tr("&Model:"), m_model);
    form->addRow(tr("API &key:"), m_key);
    layout->addLayout(form);

    m_problem = new QLabel(this);
    m_problem->setObjectName(QStringLiteral("serverProblem"));
    m_problem->setWordWrap(true);
    layout->addWidget(m_problem);

    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    m_buttons->button(QDialogButtonBox::Ok)->setText(tr("Connect"));
    connect(m_buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    layout->addWidget(m_buttons);

    connect(m_url, &QLineEdit::textChanged, this, &ServerDialog::validate);
    validate();
    resize(480, sizeHint().height());
}

QString ServerDialog::problem() const {
    QString error;
    normalizeServerUrl(m_url->text(), &error);
    return error;
}

void ServerDialog::validate() {
    const QString error = problem();
    m_problem->setText(error);
    m_problem->setVisible(!error.isEmpty());
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(error.isEmpty());
}

ServerEntry ServerDialog::entry() const {
    QString error;
    return {.url = normalizeServerUrl(m_url->text(), &error),
            .model = m_model->text().trimmed(),
            .apiKey = m_key->text().trimmed()};
}

}  // namespace dsv2::ui
