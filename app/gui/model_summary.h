#pragma once
// The model information panel's facts: from the loaded engine (ModelInfo), the folder's config
// (parameter counts through the engine's model_stats, which the UI may not include) and the GPU.

#include <vector>

#include "backend/chat_types.h"
#include "dsv2/status.h"

namespace dsv2 {
class Engine;
struct EngineOptions;
struct GenerateParams;
struct GpuInfo;
}  // namespace dsv2

namespace dsv2::gui {

ui::ModelSummary summarizeModel(const Engine& engine);

// listGpus()'s answer as the UI shows it: the GPUs, or its message saying why there are none.
ui::GpuList toGpuList(const Result<std::vector<GpuInfo>>& listed);

// The model's GPUs among the machine's (`devices` in their order: ModelInfo::devices), or, when it
// runs on none, the reason: the CPU backend, and why when the machine has no usable GPU.
ui::GpuList modelGpus(const ui::GpuList& machine, const QVector<int>& devices);

// Puts the chosen CUDA devices (resolved on the machine's GPUs: ui::resolveGpuSelection) into the
// load's options: two or more spread the model (`devices`), one is `device` alone, none leaves the
// default (device 0, or the CPU when there is no GPU).
void applyDevices(EngineOptions& options, const QVector<int>& devices);

// The model's defaults as conversation settings, and the settings applied over the defaults.
ui::GenerationSettings settingsFromParams(const GenerateParams& params);
GenerateParams applySettings(GenerateParams params, const ui::GenerationSettings& settings);

}  // namespace dsv2::gui
