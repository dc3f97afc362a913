#include "settings/presets.h"

#include <QCoreApplication>

namespace dsv2::ui {

QVector<SamplingPreset> samplingPresets() {
    auto tr = [](const char* s) { return QCoreApplication::translate("SamplingPreset", s); };
    GenerationSettings precise;
    precise.temperature = 0.0;
    precise.topP = 1.0;
    precise.topK = 0;
    GenerationSettings balanced;
    balanced.temperature = 0.7;
    balanced.topP = 0.9;
    balanced.topK = 40;
    GenerationSettings creative;
    creative.temperature = 1.0;
    creative.topP = 0.95;
    creative.topK = 0;
    return {
        {QStringLiteral("model"), tr("Model defaults"), tr("What the model's generation_config.json says."), {}},
        {QStringLiteral("precise"), tr("Precise"), tr("Greedy: always the most likely token. Repeatable."), precise},
        {QStringLiteral("balanced"), tr("Balanced"), tr("Some variety, stays on topic."), balanced},
        {QStringLiteral("creative"), tr("Creative"), tr("More variety; can wander."), creative},
    };
}

namespace {
bool sameSampling(const GenerationSettings& a, const GenerationSettings& b) {
    return a.temperature == b.temperature && a.topP == b.topP && a.topK == b.topK;
}
}  // namespace

QString matchingPreset(const GenerationSettings& settings) {
    for (const SamplingPreset& p : samplingPresets())
        if (sameSampling(p.settings, settings)) return p.id;
    return {};
}

GenerationSettings applyPreset(GenerationSettings settings, const SamplingPreset& preset) {
    settings.temperature = preset.settings.temperature;
    settings.topP = preset.settings.topP;
    settings.topK = preset.settings.topK;
    return settings;
}

}  // namespace dsv2::ui
