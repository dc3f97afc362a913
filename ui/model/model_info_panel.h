#pragma once
// ModelInfoPanel: what the loaded model is (name, folder, parameters total/active, layers, experts,
// checkpoint dtype, memory, backend, context) and, for a toy model, what that means.

#include <QWidget>

#include "backend/chat_types.h"

class QLabel;
class QFormLayout;

namespace dsv2::ui {

class ModelInfoPanel : public QWidget {
    Q_OBJECT
public:
    explicit ModelInfoPanel(QWidget* parent = nullptr);

    void setModel(const ModelSummary& summary);
    void setNoModel(const QString& why);
    QString fieldText(const QString& key) const;  // for tests: "parameters", "layers", ...

Q_SIGNALS:
    void openModelRequested();

private:
    QLabel* addField(const QString& key, const QString& label);
    void showServerFacts(const ModelSummary& summary);

    QFormLayout* m_form = nullptr;
    QLabel* m_note = nullptr;
    QHash<QString, QLabel*> m_fields;
};

}  // namespace dsv2::ui
