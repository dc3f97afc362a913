#include "settings/gpu_choice.h"

#include <QSettings>

#include <algorithm>

namespace dsv2::ui {
namespace {
const QString kGpusKey = QStringLiteral("model/gpus");
const QString kIndexKey = QStringLiteral("index");
const QString kNameKey = QStringLiteral("name");

QVector<int> allIndexes(const QVector<GpuItem>& gpus) {
    QVector<int> all;
    for (const GpuItem& g : gpus) all.append(g.index);
    std::sort(all.begin(), all.end());
    return all;
}
}  // namespace

GpuSelection savedGpuSelection() {
    QSettings settings;
    return savedGpuSelection(settings);
}

void saveGpuSelection(const GpuSelection& selection) {
    QSettings settings;
    saveGpuSelection(settings, selection);
}

GpuSelection savedGpuSelection(QSettings& settings) {
    GpuSelection selection;
    const int n = settings.beginReadArray(kGpusKey);
    for (int i = 0; i < n; ++i) {
        settings.setArrayIndex(i);
        bool ok = false;
        const int index = settings.value(kIndexKey).toInt(&ok);
        const QString name = settings.value(kNameKey).toString();
        if (ok && index >= 0 && !name.isEmpty()) selection.append({index, name});
    }
    settings.endArray();
    return selection;
}

void saveGpuSelection(QSettings& settings, const GpuSelection& selection) {
    settings.remove(kGpusKey);
    if (selection.isEmpty()) return;
    settings.beginWriteArray(kGpusKey, static_cast<int>(selection.size()));
    for (int i = 0; i < selection.size(); ++i) {
        settings.setArrayIndex(i);
        settings.setValue(kIndexKey, selection[i].index);
        settings.setValue(kNameKey, selection[i].name);
    }
    settings.endArray();
}

QVector<int> resolveGpuSelection(const GpuSelection& selection, const QVector<GpuItem>& gpus, bool* fellBack) {
    if (fellBack) *fellBack = false;
    if (selection.isEmpty() || gpus.isEmpty()) return allIndexes(gpus);
    QVector<int> chosen;
    for (const GpuKey& key : selection) {
        const bool present = std::any_of(gpus.begin(), gpus.end(),
                                         [&](const GpuItem& g) { return g.index == key.index && g.name == key.name; });
        if (!present) {
            if (fellBack) *fellBack = true;
            return allIndexes(gpus);
        }
        if (!chosen.contains(key.index)) chosen.append(key.index);
    }
    std::sort(chosen.begin(), chosen.end());
    return chosen;
}

GpuSelection selectionFor(const QVector<GpuItem>& gpus, const QVector<int>& checked) {
    GpuSelection selection;
    for (const GpuItem& g : gpus)
        if (checked.contains(g.index)) selection.append({g.index, g.name});
    if (selection.size() == gpus.size()) return {};  // all: new GPUs join in later too
    return selection;
}

}  // namespace dsv2::ui
