#pragma once
// ServerDialog: Model → Connect to a server…: the address of an OpenAI-compatible server, the model
// to use there (empty: its first) and an optional API key. It checks the address as it is typed;
// connecting happens after it closes (on the backend's thread, never here).

#include <QDialog>

#include "backend/chat_types.h"

class QDialogButtonBox;
class QLabel;
class QLineEdit;

namespace dsv2::ui {

class ServerDialog : public QDialog {
    Q_OBJECT
public:
    explicit ServerDialog(const ServerEntry& initial = {}, QWidget* parent = nullptr);

    ServerEntry entry() const;  // the URL normalized (normalizeServerUrl)
    QLineEdit* urlEdit() const { return m_url; }
    QLineEdit* modelEdit() const { return m_model; }
    QLineEdit* keyEdit() const { return m_key; }
    QString problem() const;  // what is wrong with the address; empty when it can be used

private:
    void validate();

    QLineEdit* m_url = nullptr;
    QLineEdit* m_model = nullptr;
    QLineEdit* m_key = nullptr;
    QLabel* m_problem = nullptr;
    QDialogButtonBox* m_buttons = nullptr;
};

}  // namespace dsv2::ui
