#include "settings/gpu_dialog.h"

#include <QDialogButtonBox>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>

#include "settings/gpu_picker.h"

namespace dsv2::ui {

GpuDialog::GpuDialog(QWidget* parent) : QDialog(parent) {
    setObjectName(QStringLiteral("gpuDialog"));
    setWindowTitle(tr("GPUs"));
    auto* layout = new QVBoxLayout(this);
    auto* intro = new QLabel(tr("The model is spread over the checked GPUs when it runs on CUDA (Model → Backend: "
                                "Automatic or CUDA). The choice is remembered and applies from the next load."),
                             this);
    intro->setWordWrap(true);
    layout->addWidget(intro);
    m_picker = new GpuPicker(this);
    layout->addWidget(m_picker);
    layout->addStretch();
    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    connect(m_buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    layout->addWidget(m_buttons);
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(false);  // until there is something to choose
    resize(460, sizeHint().height());
}

void GpuDialog::setGpus(const GpuList& list, const GpuSelection& selection) {
    m_picker->setGpus(list, selection);
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(m_picker->hasGpus());
}

GpuSelection GpuDialog::selection() const { return m_picker->selection(); }

}  // namespace dsv2::ui
