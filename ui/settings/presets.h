#pragma once
// Sampling presets offered in the conversation settings. A preset sets only the sampling fields it
// names; "Model defaults" clears them all (generation_config.json decides).

#include <QString>
#include <QVector>

#include "backend/chat_types.h"

namespace dsv2::ui {

struct SamplingPreset {
    QString id;    // stable, for tests and QSettings
    QString name;  // shown
    QString description;
    GenerationSettings settings;  // systemPrompt unused
};

QVector<SamplingPreset> samplingPresets();

// The preset whose sampling fields equal those of `settings`, else empty.
QString matchingPreset(const GenerationSettings& settings);

// `settings` with the preset's sampling fields (the system prompt and seed are kept).
GenerationSettings applyPreset(GenerationSettings settings, const SamplingPreset& preset);

}  // namespace dsv2::ui
