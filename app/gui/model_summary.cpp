#include "model_summary.h"

#include <spdlog/spdlog.h>

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
    queryGpuMemory(&s.gpuMemoryUsedBytes, &s.gpuMemoryTotalBytes);
    s.shape = ui::modelShapeFromConfig(toQString((info.path / "config.json").string()));
    s.toyNote = toyNote(s.path, s.parametersTotal);
    s.isToy = !s.toyNote.isEmpty();
    s.defaults = settingsFromParams(engine.defaultParams());
    return s;
}

void queryGpuMemory(qint64* usedBytes, qint64* totalBytes) {
    *usedBytes = -1;
    *totalBytes = -1;
    auto gpus = listGpus();
    if (!gpus.isOk() || gpus->empty()) return;
    const GpuInfo& g = gpus->front();
    *totalBytes = static_cast<qint64>(g.totalMemoryBytes);
    *usedBytes = static_cast<qint64>(g.totalMemoryBytes - g.freeMemoryBytes);
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
