#pragma once
// Which GPUs run the model: the choice made in Model → GPUs…, kept in QSettings by index and name,
// and what it means on the machine's GPUs now. The default, and the answer whenever the remembered
// GPUs are not all there any more (another machine, a card swapped), is every GPU.

#include <QVector>

class QSettings;

#include "backend/chat_types.h"

namespace dsv2::ui {

// In QSettings' "model/gpus" (an array of index + name); the overloads read and write `settings`.
GpuSelection savedGpuSelection();
GpuSelection savedGpuSelection(QSettings& settings);
void saveGpuSelection(const GpuSelection& selection);  // empty: all (the key is removed)
void saveGpuSelection(QSettings& settings, const GpuSelection& selection);

// The device indexes `selection` picks among `gpus`, ascending: all of them when the selection is
// empty or names a GPU (index + name) that is not in the list (`*fellBack` says which); none when
// there are no GPUs.
QVector<int> resolveGpuSelection(const GpuSelection& selection, const QVector<GpuItem>& gpus, bool* fellBack = nullptr);

// The selection to remember for `checked` (device indexes) among `gpus`: empty when that is all of them.
GpuSelection selectionFor(const QVector<GpuItem>& gpus, const QVector<int>& checked);

}  // namespace dsv2::ui
