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
    // The model's GPUs and their memory (arrives after setModel, and again after each answer).
    void setGpus(const GpuList& modelGpus);
    QString fieldText(const QString& key) const;  // for tests: "parameters", "layers", ...

Q_SIGNALS:
    void openModelRequested();

private:
    QLabel* addField(const QString& key, const QString& label);
    void showServerFacts(const ModelSummary& summary);

    QFormLayout* m_form = nullptr;
    QLabel* m_note = nullptr;
    QHash<QString, QLabel*> m_fields;
    bool m_served = false;
};

}  // namespace dsv2::ui
