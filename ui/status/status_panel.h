#pragma once
// StatusPanel: the status bar's contents. The model (or the loading progress with Cancel), and while
// and after an answer: tok/s, time to first token, tokens, context used / limit (%), the memory of
// each GPU the model runs on, and the backend.

#include <QObject>

#include "backend/chat_types.h"

class QLabel;
class QProgressBar;
class QPushButton;
class QStatusBar;

namespace dsv2::ui {

class ChatBackend;

class StatusPanel : public QObject {
    Q_OBJECT
public:
    StatusPanel(ChatBackend* backend, QStatusBar* bar);

    void setBackendDescription(const QString& text);
    QLabel* modelLabel() const { return m_model; }
    QLabel* gpuLabel() const { return m_gpu; }

private:
    void showStream(const StreamUpdate& u);
    void showOutcome(const GenerationOutcome& o);
    void showContext(qint64 used, qint64 limit);
    void showGpus(const GpuList& modelGpus);
    void setLoading(bool loading);

    ChatBackend* m_backend;
    QLabel* m_model = nullptr;
    QProgressBar* m_progress = nullptr;
    QPushButton* m_cancel = nullptr;
    QLabel* m_speed = nullptr;
    QLabel* m_ttft = nullptr;
    QLabel* m_tokens = nullptr;
    QLabel* m_context = nullptr;
    QLabel* m_gpu = nullptr;
    QLabel* m_backendLabel = nullptr;
};

}  // namespace dsv2::ui
