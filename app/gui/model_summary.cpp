#include "model_summary.h"

#include <QCoreApplication>
#include <QStringList>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "dsv2/engine.h"
#include "dsv2/version.h"
#include "model/model_config.h"
#include "model/model_stats.h"
#include "model_locator.h"
#include "storage_convert.h"

namespace dsv2::gui {

ui::ModelSummary summarizeModel(const Engine& engine) {
    const ModelInfo& info = engine.info();
    ui::ModelSummary s;
    s.name = toQString(info.name);
    s.path = QString::fromStdString(info.path.string());
    s.backend = toQString(info.backend);
    s.layers = info.numLayers;
    s.routedExperts = info.nRoutedExperts;
    s.sharedExperts = info.nSharedExperts;
    s.expertsPerToken = info.expertsPerToken;
    s.moeLayers = info.moeLayers;
    s.contextLimit = info.defaultContext;
    s.weightFileBytes = static_cast<qint64>(info.weightFileBytes);
    s.cacheBytesPerToken = info.cacheBytesPerToken;
    s.hasChatTemplate = info.hasChatTemplate;
    // The engine validated config.json already; reading it again only for the counts cannot fail
    // in practice, and if it does the panel shows "unknown" rather than refusing the model.
    if (auto config = loadModelConfig(info.path / "config.json"); config.isOk()) {
        const ParameterCounts counts = countParameters(*config);
        s.parametersTotal = counts.total;
        s.parametersActive = counts.activePerToken;
        s.dtype = toQString(config->torchDtype);
    } else {
        spdlog::warn("model summary: {}", config.status().message());
    }
    for (int d : info.devices) s.devices.append(d);
    s.shape = ui::modelShapeFromConfig(toQString((info.path / "config.json").string()));
    s.toyNote = toyNote(s.path, s.parametersTotal);
    s.isToy = !s.toyNote.isEmpty();
    s.defaults = settingsFromParams(engine.defaultParams());
    return s;
}

ui::GpuList toGpuList(const Result<std::vector<GpuInfo>>& listed) {
    ui::GpuList list;
    if (!listed.isOk()) {
        list.message = toQString(listed.status().message());
        return list;
    }
    for (const GpuInfo& g : *listed)
        list.gpus.append({.index = g.index,
                          .name = toQString(g.name),
                          .totalBytes = static_cast<qint64>(g.totalMemoryBytes),
                          .freeBytes = static_cast<qint64>(g.freeMemoryBytes)});
    if (list.gpus.isEmpty()) list.message = QCoreApplication::translate("dsv2", "no NVIDIA GPU found");
    return list;
}

ui::GpuList modelGpus(const ui::GpuList& machine, const QVector<int>& devices) {
    ui::GpuList model;
    if (devices.isEmpty()) {
        model.message = machine.gpus.isEmpty()
                            ? QCoreApplication::translate("dsv2", "No GPU in use: the model runs on the CPU (%1).")
                                  .arg(machine.message)
                            : QCoreApplication::translate("dsv2", "No GPU in use: the model runs on the CPU.");
        return model;
    }
    for (int d : devices) {
        const auto it =
            std::find_if(machine.gpus.begin(), machine.gpus.end(), [d](const ui::GpuItem& g) { return g.index == d; });
        if (it != machine.gpus.end()) model.gpus.append(*it);
    }
    if (model.gpus.isEmpty()) {
        QStringList indexes;
        for (int d : devices) indexes << QString::number(d);
        model.message =
            QCoreApplication::translate("dsv2", "The model runs on GPU %1, which the driver did not report now%2.")
                .arg(indexes.join(QStringLiteral(", ")),
                     machine.message.isEmpty() ? QString() : QStringLiteral(": ") + machine.message);
    }
    return model;
}

void applyDevices(EngineOptions& options, const QVector<int>& devices) {
    options.devices.clear();
    if (devices.isEmpty()) return;
    options.device = devices.front();
    if (devices.size() >= 2) options.devices.assign(devices.begin(), devices.end());
}

ui::GenerationSettings settingsFromParams(const GenerateParams& p) {
    ui::GenerationSettings s;
    s.temperature = p.temperature;
    s.topP = p.topP;
    s.topK = static_cast<int>(p.topK);
    s.maxTokens = static_cast<int>(p.maxNewTokens);
    s.repetitionPenalty = p.repetitionPenalty;
    if (p.seed) s.seed = *p.seed;
    return s;
}

GenerateParams applySettings(GenerateParams p, const ui::GenerationSettings& s) {
    if (s.temperature) p.temperature = std::max(0.0, *s.temperature);
    if (s.topP) p.topP = std::clamp(*s.topP, 0.0, 1.0);
    if (s.topK) p.topK = std::max(0, *s.topK);
    if (s.maxTokens) p.maxNewTokens = std::max(1, *s.maxTokens);
    if (s.repetitionPenalty) p.repetitionPenalty = std::max(0.01, *s.repetitionPenalty);
    if (s.seed) p.seed = *s.seed;
    return p;
}

}  // namespace dsv2::gui
