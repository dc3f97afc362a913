#include "status/status_panel.h"

#include <QLabel>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <QStatusBar>

#include "backend/chat_backend.h"
#include "format.h"

namespace dsv2::ui {
namespace {
QLabel* makeLabel(QStatusBar* bar, const char* name, const QString& accessible) {
    auto* l = new QLabel(bar);
    l->setObjectName(QLatin1String(name));
    l->setContentsMargins(8, 0, 8, 0);
    l->setAccessibleName(accessible);
    return l;
}
}  // namespace

StatusPanel::StatusPanel(ChatBackend* backend, QStatusBar* bar) : QObject(bar), m_backend(backend) {
    m_model = makeLabel(bar, "modelLabel", tr("Model"));
    m_model->setText(tr("No model loaded"));
    m_progress = new QProgressBar(bar);
    m_progress->setObjectName(QStringLiteral("modelLoadProgress"));
    m_progress->setAccessibleName(tr("Model loading progress"));
    m_progress->setMaximumWidth(180);
    m_progress->setTextVisible(true);  // "42%": the engine reports bytes loaded
    m_cancel = new QPushButton(tr("Cancel"), bar);
    m_cancel->setObjectName(QStringLiteral("cancelLoadButton"));
    m_cancel->setAccessibleName(tr("Cancel loading the model"));
    m_speed = makeLabel(bar, "speedLabel", tr("Generation speed"));
    m_ttft = makeLabel(bar, "ttftLabel", tr("Time to first token"));
    m_tokens = makeLabel(bar, "tokensLabel", tr("Tokens generated"));
    m_context = makeLabel(bar, "contextLabel", tr("Context used"));
    m_gpu = makeLabel(bar, "gpuMemoryLabel", tr("GPU memory"));
    m_backendLabel = makeLabel(bar, "backendLabel", tr("Backend"));
    bar->addWidget(m_model, 1);
    bar->addWidget(m_progress);
    bar->addWidget(m_cancel);
    for (QLabel* l : {m_speed, m_ttft, m_tokens, m_context, m_gpu, m_backendLabel}) bar->addPermanentWidget(l);
    setLoading(false);
    showGpus({{}, tr("No model loaded.")});

    if (!backend) return;
    connect(m_cancel, &QPushButton::clicked, backend, &ChatBackend::cancelModelLoad);
    connect(backend, &ChatBackend::modelLoadStarted, this, [this](const QString& dir) {
        setLoading(true);
        m_model->setText(tr("Loading %1…").arg(dir));
        showGpus({{}, tr("No model loaded.")});  // the previous model's memory is being released
        m_progress->setRange(0, 0);
    });
    connect(backend, &ChatBackend::modelLoadProgress, this, [this](const QString& stage, int percent) {
        m_model->setText(stage + QStringLiteral("…"));
        if (percent < 0) {
            m_progress->setRange(0, 0);  // busy: a step without a measure (reading config.json)
        } else {
            m_progress->setRange(0, 100);
            m_progress->setValue(percent);
        }
    });
    connect(backend, &ChatBackend::modelLoaded, this, [this](const ModelSummary& s) {
        setLoading(false);
        m_model->setText(s.isToy ? tr("%1 (a toy model)").arg(s.name) : s.name);
        m_model->setToolTip(s.path);
        m_backendLabel->setText(s.backend);
        showContext(0, s.contextLimit);
    });
    connect(backend, &ChatBackend::modelLoadFailed, this, [this] {
        setLoading(false);
        m_model->setText(tr("No model loaded (loading failed)"));
    });
    connect(backend, &ChatBackend::modelLoadCancelled, this, [this] {
        setLoading(false);
        m_model->setText(tr("No model loaded (loading cancelled)"));
    });
    connect(backend, &ChatBackend::modelGpusChanged, this, &StatusPanel::showGpus);
    connect(backend, &ChatBackend::streamed, this, &StatusPanel::showStream);
    connect(backend, &ChatBackend::generationFinished, this, &StatusPanel::showOutcome);
}

void StatusPanel::setBackendDescription(const QString& text) { m_backendLabel->setText(text); }

void StatusPanel::setLoading(bool loading) {
    m_progress->setVisible(loading);
    m_cancel->setVisible(loading);
}

void StatusPanel::showStream(const StreamUpdate& u) {
    if (u.tokensPerSecond > 0) m_speed->setText(tr("%1 tok/s").arg(u.tokensPerSecond, 0, 'f', 1));
    if (u.timeToFirstTokenMs > 0) m_ttft->setText(tr("first token %1 s").arg(u.timeToFirstTokenMs / 1000.0, 0, 'f', 2));
    m_tokens->setText(tokenCountText(u.generatedTokens));
    showContext(u.contextTokens, u.contextLimit);
}

void StatusPanel::showOutcome(const GenerationOutcome& o) {
    const MessageStats& s = o.stats;
    if (s.tokensPerSecond > 0) m_speed->setText(tr("%1 tok/s").arg(s.tokensPerSecond, 0, 'f', 1));
    if (s.timeToFirstTokenMs > 0) m_ttft->setText(tr("first token %1 s").arg(s.timeToFirstTokenMs / 1000.0, 0, 'f', 2));
    m_tokens->setText(tokenCountText(s.generatedTokens));
    showContext(o.contextTokens, o.contextLimit);
}

void StatusPanel::showContext(qint64 used, qint64 limit) {
    if (limit <= 0) return;
    const QLocale locale;
    m_context->setText(tr("context %1 / %2 (%3%)")
                           .arg(locale.toString(used), locale.toString(limit))
                           .arg(100.0 * static_cast<double>(used) / static_cast<double>(limit), 0, 'f', 1));
}

void StatusPanel::showGpus(const GpuList& modelGpus) {
    // Always shown, so that "no GPU" is a stated fact rather than a missing field. Refreshed after
    // each load and each answer (the adapter asks the driver on its GPU thread, never the GUI thread).
    m_gpu->setText(gpuStatusText(modelGpus));
    m_gpu->setToolTip(gpuStatusToolTip(modelGpus));
}

}  // namespace dsv2::ui
