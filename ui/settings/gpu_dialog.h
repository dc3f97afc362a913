#pragma once
// GpuDialog (Model → GPUs…): the GPU picker with what the choice means. It opens at once with
// "Looking for GPUs…"; the window fills it when the backend has listed them (off the GUI thread).

#include <QDialog>

#include "backend/chat_types.h"

class QDialogButtonBox;

namespace dsv2::ui {

class GpuPicker;

class GpuDialog : public QDialog {
    Q_OBJECT
public:
    explicit GpuDialog(QWidget* parent = nullptr);

    void setGpus(const GpuList& list, const GpuSelection& selection);
    GpuSelection selection() const;
    GpuPicker* picker() const { return m_picker; }
    QDialogButtonBox* buttons() const { return m_buttons; }

private:
    GpuPicker* m_picker = nullptr;
    QDialogButtonBox* m_buttons = nullptr;
};

}  // namespace dsv2::ui
