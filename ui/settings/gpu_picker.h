#pragma once
// GpuPicker: the machine's GPUs, one checkbox each ("GPU 0 · NVIDIA H200 — 120.5 GiB free of
// 139.8 GiB"), for choosing which of them run the model. At least one stays checked. Without GPUs it
// shows why (listGpus()'s message) and is disabled.

#include <QWidget>

#include "backend/chat_types.h"

class QCheckBox;
class QLabel;
class QVBoxLayout;

namespace dsv2::ui {

class GpuPicker : public QWidget {
    Q_OBJECT
public:
    explicit GpuPicker(QWidget* parent = nullptr);

    // The GPUs to offer, checked as `selection` resolves on them (all by default or when the
    // remembered GPUs are not all there).
    void setGpus(const GpuList& list, const GpuSelection& selection);
    void showSearching();  // until setGpus: "Looking for GPUs…", disabled

    bool hasGpus() const { return !m_gpus.isEmpty(); }
    QVector<int> checkedIndexes() const;
    GpuSelection selection() const;  // empty: all checked
    bool fellBack() const { return m_fellBack; }
    QVector<QCheckBox*> checkBoxes() const { return m_boxes; }
    QString message() const;

    static QString label(const GpuItem& gpu);

Q_SIGNALS:
    void selectionChanged();

private:
    void clearBoxes();
    void onToggled(QCheckBox* box, bool checked);

    QVBoxLayout* m_list = nullptr;
    QLabel* m_message = nullptr;
    QLabel* m_hint = nullptr;
    QVector<GpuItem> m_gpus;
    QVector<QCheckBox*> m_boxes;
    bool m_fellBack = false;
};

}  // namespace dsv2::ui
