#include "settings/gpu_picker.h"

#include <QCheckBox>
#include <QLabel>
#include <QVBoxLayout>

#include <algorithm>

#include "format.h"
#include "settings/gpu_choice.h"

namespace dsv2::ui {

GpuPicker::GpuPicker(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("gpuPicker"));
    setAccessibleName(tr("GPUs that run the model"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_list = new QVBoxLayout;
    layout->addLayout(m_list);
    m_message = new QLabel(this);
    m_message->setObjectName(QStringLiteral("gpuPickerMessage"));
    m_message->setWordWrap(true);
    m_message->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_message);
    m_hint = new QLabel(tr("At least one GPU runs the model."), this);
    m_hint->setObjectName(QStringLiteral("gpuPickerHint"));
    m_hint->setWordWrap(true);
    m_hint->hide();
    layout->addWidget(m_hint);
    showSearching();
}

QString GpuPicker::label(const GpuItem& gpu) {
    return tr("GPU %1 · %2 — %3 free of %4")
        .arg(gpu.index)
        .arg(gpu.name, formatBytes(gpu.freeBytes), formatBytes(gpu.totalBytes));
}

void GpuPicker::clearBoxes() {
    for (QCheckBox* box : std::as_const(m_boxes)) delete box;
    m_boxes.clear();
    m_gpus.clear();
    m_hint->hide();
}

void GpuPicker::showSearching() {
    clearBoxes();
    m_message->setText(tr("Looking for GPUs…"));
    m_message->show();
    setEnabled(false);
}

void GpuPicker::setGpus(const GpuList& list, const GpuSelection& selection) {
    clearBoxes();
    m_gpus = list.gpus;
    std::sort(m_gpus.begin(), m_gpus.end(), [](const GpuItem& a, const GpuItem& b) { return a.index < b.index; });
    if (m_gpus.isEmpty()) {
        m_fellBack = false;
        m_message->setText(list.message.isEmpty() ? tr("No GPU found: the model runs on the CPU.")
                                                  : tr("No GPU can be used: %1").arg(list.message));
        m_message->show();
        setEnabled(false);
        return;
    }
    const QVector<int> checked = resolveGpuSelection(selection, m_gpus, &m_fellBack);
    for (const GpuItem& gpu : std::as_const(m_gpus)) {
        auto* box = new QCheckBox(label(gpu), this);
        box->setObjectName(QStringLiteral("gpuCheck%1").arg(gpu.index));
        box->setAccessibleName(tr("Run the model on GPU %1 (%2)").arg(gpu.index).arg(gpu.name));
        box->setToolTip(tr("%1 in use by all processes").arg(formatBytes(gpu.usedBytes())));
        box->setChecked(checked.contains(gpu.index));
        connect(box, &QCheckBox::toggled, this, [this, box](bool on) { onToggled(box, on); });
        m_list->addWidget(box);
        m_boxes.append(box);
    }
    if (m_fellBack) {
        m_message->setText(tr("The GPUs chosen before are not all in this machine; all of them are checked."));
        m_message->show();
    } else {
        m_message->hide();
    }
    setEnabled(true);
}

void GpuPicker::onToggled(QCheckBox* box, bool checked) {
    if (!checked && checkedIndexes().isEmpty()) {
        // The last one stays: a model needs a GPU to run on (the CPU is Model → Backend → CPU).
        const QSignalBlocker block(box);
        box->setChecked(true);
        m_hint->show();
        return;
    }
    m_hint->hide();
    Q_EMIT selectionChanged();
}

QVector<int> GpuPicker::checkedIndexes() const {
    QVector<int> indexes;
    for (int i = 0; i < m_boxes.size(); ++i)
        if (m_boxes[i]->isChecked()) indexes.append(m_gpus[i].index);
    return indexes;
}

GpuSelection GpuPicker::selection() const { return selectionFor(m_gpus, checkedIndexes()); }

QString GpuPicker::message() const { return m_message->isHidden() ? QString() : m_message->text(); }

}  // namespace dsv2::ui
