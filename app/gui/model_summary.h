#pragma once
// The model information panel's facts: from the loaded engine (ModelInfo), the folder's config
// (parameter counts through the engine's model_stats, which the UI may not include) and the GPU.

#include "backend/chat_types.h"

namespace dsv2 {
class Engine;
struct GenerateParams;
}  // namespace dsv2

namespace dsv2::gui {

ui::ModelSummary summarizeModel(const Engine& engine);

// GPU memory in use / total on the first GPU; both -1 without a usable GPU.
void queryGpuMemory(qint64* usedBytes, qint64* totalBytes);

// The model's defaults as conversation settings, and the settings applied over the defaults.
ui::GenerationSettings settingsFromParams(const GenerateParams& params);
GenerateParams applySettings(GenerateParams params, const ui::GenerationSettings& settings);

}  // namespace dsv2::gui
