#include "model/model_info_panel.h"

#include <QFormLayout>
#include <QLabel>
#include <QLocale>
#include <QPushButton>
#include <QVBoxLayout>

#include "format.h"

namespace dsv2::ui {

ModelInfoPanel::ModelInfoPanel(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("modelInfoPanel"));
    setAccessibleName(tr("Model information"));
    auto* layout = new QVBoxLayout(this);
    m_form = new QFormLayout;
    addField(QStringLiteral("name"), tr("Name"));
    addField(QStringLiteral("path"), tr("Folder"));
    addField(QStringLiteral("parameters"), tr("Parameters"));
    addField(QStringLiteral("layers"), tr("Layers"));
    addField(QStringLiteral("experts"), tr("Experts"));
    addField(QStringLiteral("dtype"), tr("Checkpoint dtype"));
    addField(QStringLiteral("weights"), tr("Weights on disk"));
    addField(QStringLiteral("backend"), tr("Backend"));
    addField(QStringLiteral("context"), tr("Context limit"));
    addField(QStringLiteral("cache"), tr("KV cache per token"));
    addField(QStringLiteral("gpu"), tr("GPU memory"));
    layout->addLayout(m_form);
    m_note = new QLabel(this);
    m_note->setObjectName(QStringLiteral("modelNote"));
    m_note->setWordWrap(true);
    layout->addWidget(m_note);
    auto* open = new QPushButton(tr("Open model folder…"), this);
    open->setAccessibleName(tr("Open model folder"));
    connect(open, &QPushButton::clicked, this, &ModelInfoPanel::openModelRequested);
    layout->addWidget(open);
    layout->addStretch();
    setNoModel(tr("No model loaded."));
}

QLabel* ModelInfoPanel::addField(const QString& key, const QString& label) {
    auto* value = new QLabel(this);
    value->setObjectName(key + QStringLiteral("Value"));
    value->setTextInteractionFlags(Qt::TextSelectableByMouse);
    value->setWordWrap(true);
    value->setAccessibleName(label);
    m_form->addRow(label + QLatin1Char(':'), value);
    m_fields.insert(key, value);
    return value;
}

QString ModelInfoPanel::fieldText(const QString& key) const {
    const QLabel* l = m_fields.value(key);
    return l ? l->text() : QString();
}

void ModelInfoPanel::setNoModel(const QString& why) {
    for (QLabel* l : std::as_const(m_fields)) l->setText(QStringLiteral("—"));
    m_fields.value(QStringLiteral("gpu"))->setToolTip({});
    m_served = false;
    m_note->setText(why);
}

void ModelInfoPanel::setModel(const ModelSummary& s) {
    const QLocale locale;
    auto set = [this](const char* key, const QString& text) { m_fields.value(QLatin1String(key))->setText(text); };
    set("name", s.name);
    set("path", s.path);
    set("parameters",
        s.parametersTotal > 0
            ? tr("%1 total, %2 active per token").arg(formatCount(s.parametersTotal), formatCount(s.parametersActive))
            : tr("unknown"));
    set("layers", locale.toString(s.layers));
    set("experts",
        s.routedExperts > 0
            ? tr("%1 routed + %2 shared, %3 per token").arg(s.routedExperts).arg(s.sharedExperts).arg(s.expertsPerToken)
            : tr("none (dense)"));
    set("dtype", s.dtype.isEmpty() ? tr("unknown") : s.dtype);
    set("weights", formatBytes(s.weightFileBytes));
    set("backend", s.backend);
    set("context", tr("%1 tokens").arg(locale.toString(s.contextLimit)));
    set("cache", formatBytes(s.cacheBytesPerToken));
    QStringList devices;
    for (int d : s.devices) devices << tr("GPU %1").arg(d);
    set("gpu", devices.isEmpty() ? tr("no GPU in use") : devices.join(QStringLiteral(", ")));  // setGpus adds memory
    m_served = s.server.has_value();
    m_note->setText(s.toyNote);
    if (s.server) showServerFacts(s);
}

void ModelInfoPanel::setGpus(const GpuList& modelGpus) {
    QLabel* field = m_fields.value(QStringLiteral("gpu"));
    field->setToolTip(gpuStatusToolTip(modelGpus));
    if (modelGpus.gpus.isEmpty()) {
        field->setText(m_served ? tr("on the server") : tr("no GPU in use"));
        return;
    }
    QStringList lines;
    for (const GpuItem& g : modelGpus.gpus)
        lines << tr("GPU %1 · %2: %3").arg(g.index).arg(g.name, gibPair(g.usedBytes(), g.totalBytes));
    field->setText(lines.join(QLatin1Char('\n')));
}

void ModelInfoPanel::showServerFacts(const ModelSummary& s) {
    // A served model: what the server does not tell (OpenAI's /models says little) is said to be
    // unknown rather than shown as zero.
    auto set = [this](const char* key, const QString& text) { m_fields.value(QLatin1String(key))->setText(text); };
    const QString unknown = tr("not reported by the server");
    set("path", s.server->url);
    if (s.parametersTotal <= 0) set("parameters", unknown);
    if (s.layers <= 0) set("layers", unknown);
    if (s.routedExperts <= 0)
        set("experts", s.expertsPerToken > 0 ? tr("%1 per token").arg(s.expertsPerToken) : unknown);
    else  // the server does not say how many are shared
        set("experts", tr("%1 routed, %2 per token").arg(s.routedExperts).arg(s.expertsPerToken));
    set("weights", tr("on the server"));
    if (s.contextLimit <= 0) set("context", unknown);
    if (s.cacheBytesPerToken <= 0) set("cache", unknown);
    set("gpu", tr("on the server"));
    m_note->setText(tr("Served by %1. Answers are stored here like local ones; routing heatmaps appear when the "
                       "server returns routed experts.")
                        .arg(s.server->url));
}

}  // namespace dsv2::ui
