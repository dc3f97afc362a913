#pragma once
// NullBackend: a ChatBackend with no model and no history, for a window built without one (layout
// tests, --help screenshots). Every request is ignored; nothing is ever loaded.

#include "backend/chat_backend.h"

namespace dsv2::ui {

class NullBackend : public ChatBackend {
    Q_OBJECT
public:
    using ChatBackend::ChatBackend;
    bool hasModel() const override { return false; }
    bool isLoadingModel() const override { return false; }
    bool isGenerating() const override { return false; }
    ModelSummary model() const override { return {}; }
    QString historyPath() const override { return {}; }
    void openHistory(const QString&) override {}
    void loadModel(const QString&, BackendPreference, const GpuSelection&) override {}
    void cancelModelLoad() override {}
    void requestConversations(int, int) override {}
    void openConversation(quint64, qint64, qint64) override {}
    void renameConversation(qint64, const QString&) override {}
    void deleteConversation(qint64) override {}
    void restoreConversation(qint64) override {}
    void saveSettings(qint64, const GenerationSettings&) override {}
    void sendPrompt(quint64, qint64, qint64, const QString&, const GenerationSettings&) override {}
    void regenerate(quint64, qint64, qint64, const GenerationSettings&) override {}
    void editPrompt(quint64, qint64, qint64, const QString&, const GenerationSettings&) override {}
    void switchBranch(quint64, qint64, qint64, int) override {}
    void stopGeneration() override {}
    void search(quint64, const QString&) override {}
    void exportConversations(const ExportRequest&) override {}
    void importConversations(const QString&) override {}
    void requestRouting(quint64, qint64, int) override {}
    void countTokens(quint64, const QString&) override {}
};

}  // namespace dsv2::ui
