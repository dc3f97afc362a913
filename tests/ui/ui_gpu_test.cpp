// The GPU choice and the GPU status field without engine or driver: a machine is injected as a
// GpuList. The picker (all by default, at least one, the machine's message without GPUs), the choice
// in QSettings by index + name (read back from the file, another machine falls back to all), the
// status text and tooltip for 1, 2 and 4 GPUs, and Model → GPUs… offering a reload that carries
// the choice to the backend.
#include <QCheckBox>
#include <QDialogButtonBox>
#include <QFile>
#include <QLabel>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QtTest>

#include "backend/null_backend.h"
#include "format.h"
#include "main_window.h"
#include "model/model_info_panel.h"
#include "settings/gpu_choice.h"
#include "settings/gpu_dialog.h"
#include "settings/gpu_picker.h"
#include "status/status_panel.h"

using namespace dsv2::ui;

Q_DECLARE_METATYPE(dsv2::ui::GpuSelection)

namespace {

constexpr qint64 kGiB = qint64{1} << 30;
const QString kH200 = QStringLiteral("NVIDIA H200");
const QString kNoGpu = QStringLiteral("no NVIDIA GPU found (cudaGetDeviceCount: no CUDA-capable device)");

GpuItem gpu(int index, double usedGiB, const QString& name = kH200, qint64 totalGiB = 140) {
    const auto used = static_cast<qint64>(usedGiB * static_cast<double>(kGiB));
    return {.index = index, .name = name, .totalBytes = totalGiB * kGiB, .freeBytes = totalGiB * kGiB - used};
}

GpuList machine(int n) {
    GpuList list;
    for (int i = 0; i < n; ++i) list.gpus.append(gpu(i, 1.0 + i));
    return list;
}

// A backend with a model on CUDA and a machine of GPUs: answers requestGpus at once and records the
// loads it is asked for.
class FakeBackend : public NullBackend {
public:
    using NullBackend::NullBackend;
    bool hasModel() const override { return true; }
    ModelSummary model() const override {
        ModelSummary s;
        s.name = QStringLiteral("model");
        s.path = QStringLiteral("/models/model");
        s.devices = devices;
        return s;
    }
    void requestGpus(quint64 tag) override {
        ++gpuRequests;
        Q_EMIT gpusListed(tag, gpus);
    }
    void loadModel(const QString& dir, BackendPreference backend, const GpuSelection& selection) override {
        loads.append({dir, backend, selection});
    }
    struct Load {
        QString dir;
        BackendPreference backend;
        GpuSelection gpus;
    };
    GpuList gpus = machine(4);
    QVector<int> devices{0, 1, 2, 3};  // where the model runs
    int gpuRequests = 0;
    QVector<Load> loads;
};

QCheckBox* box(const GpuPicker& picker, int index) {
    return picker.findChild<QCheckBox*>(QStringLiteral("gpuCheck%1").arg(index));
}

}  // namespace

class GpuTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() {
        QVERIFY(m_dir.isValid());
        QCoreApplication::setOrganizationName(QStringLiteral("dsv2-chat-test"));
        QCoreApplication::setApplicationName(QStringLiteral("ui_gpu_test"));
        QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, m_dir.path());
    }
    void init() { QSettings().clear(); }

    void allGpusAreCheckedByDefault() {
        QCOMPARE(savedGpuSelection(), GpuSelection{});
        GpuPicker picker;
        picker.setGpus(machine(2), savedGpuSelection());
        QVERIFY(picker.isEnabled());
        QCOMPARE(picker.checkBoxes().size(), 2);
        QCOMPARE(picker.checkedIndexes(), (QVector<int>{0, 1}));
        QCOMPARE(picker.selection(), GpuSelection{});  // all: nothing to remember
        QVERIFY(!picker.fellBack());
        // Each with its name and "free of total".
        QCOMPARE(box(picker, 1)->text(), QStringLiteral("GPU 1 · NVIDIA H200 — 138.0 GiB free of 140.0 GiB"));
        QCOMPARE(resolveGpuSelection({}, machine(4).gpus), (QVector<int>{0, 1, 2, 3}));
        QCOMPARE(selectionFor(machine(3).gpus, {2, 0, 1}), GpuSelection{});
    }

    void theChoiceIsKeptAcrossARestart() {
        const GpuSelection chosen{{1, kH200}, {3, kH200}};
        saveGpuSelection(chosen);
        QSettings written;
        written.sync();
        // A new process reads the file: open a copy of it, so no cache of this one can answer.
        const QString copy = m_dir.filePath(QStringLiteral("restart.conf"));
        QFile::remove(copy);
        QVERIFY(QFile::copy(written.fileName(), copy));
        QSettings reread(copy, QSettings::IniFormat);
        QCOMPARE(savedGpuSelection(reread), chosen);
        QCOMPARE(savedGpuSelection(), chosen);
        GpuPicker picker;
        picker.setGpus(machine(4), savedGpuSelection());
        QCOMPARE(picker.checkedIndexes(), (QVector<int>{1, 3}));
        QCOMPARE(picker.selection(), chosen);
        QVERIFY(picker.message().isEmpty());
        // Choosing all again forgets the list (new GPUs then join in).
        saveGpuSelection({});
        QVERIFY(!QSettings().contains(QStringLiteral("model/gpus/size")));
        QCOMPARE(savedGpuSelection(), GpuSelection{});
    }

    void anotherMachineFallsBackToAll_data() {
        QTest::addColumn<GpuSelection>("saved");
        QTest::addColumn<bool>("fallsBack");
        QTest::newRow("same GPUs") << GpuSelection{{1, kH200}} << false;
        QTest::newRow("another card at index 1") << GpuSelection{{1, QStringLiteral("NVIDIA A100-SXM4-80GB")}} << true;
        QTest::newRow("index no longer there") << GpuSelection{{0, kH200}, {5, kH200}} << true;
    }
    void anotherMachineFallsBackToAll() {
        QFETCH(GpuSelection, saved);
        QFETCH(bool, fallsBack);
        saveGpuSelection(saved);
        bool fellBack = false;
        const QVector<int> devices = resolveGpuSelection(savedGpuSelection(), machine(4).gpus, &fellBack);
        QCOMPARE(fellBack, fallsBack);
        QCOMPARE(devices, fallsBack ? (QVector<int>{0, 1, 2, 3}) : (QVector<int>{1}));
        GpuPicker picker;
        picker.setGpus(machine(4), savedGpuSelection());
        QCOMPARE(picker.fellBack(), fallsBack);
        QCOMPARE(picker.checkedIndexes(), devices);
        QCOMPARE(picker.message().contains(QStringLiteral("not all in this machine")), fallsBack);
    }

    void atLeastOneStaysChecked() {
        GpuPicker picker;
        picker.setGpus(machine(2), {});
        picker.show();
        QVERIFY(QTest::qWaitForWindowExposed(&picker));
        QSignalSpy changed(&picker, &GpuPicker::selectionChanged);
        QTest::mouseClick(box(picker, 0), Qt::LeftButton);
        QCOMPARE(picker.checkedIndexes(), QVector<int>{1});
        QCOMPARE(changed.size(), 1);
        auto* hint = picker.findChild<QLabel*>(QStringLiteral("gpuPickerHint"));
        QVERIFY(hint && !hint->isVisible());
        QTest::mouseClick(box(picker, 1), Qt::LeftButton);  // the last one
        QVERIFY(box(picker, 1)->isChecked());
        QCOMPARE(picker.checkedIndexes(), QVector<int>{1});
        QVERIFY(hint->isVisible());
        QCOMPARE(changed.size(), 1);
        box(picker, 1)->setChecked(false);  // from code too
        QCOMPARE(picker.checkedIndexes(), QVector<int>{1});
        QCOMPARE(picker.selection(), (GpuSelection{{1, kH200}}));
    }

    void withoutGpusThePickerSaysWhyAndIsDisabled() {
        GpuDialog dialog;
        QVERIFY(!dialog.picker()->isEnabled());
        QCOMPARE(dialog.picker()->message(), QStringLiteral("Looking for GPUs…"));
        QVERIFY(!dialog.buttons()->button(QDialogButtonBox::Ok)->isEnabled());
        dialog.setGpus({{}, kNoGpu}, {{1, kH200}});
        QVERIFY(!dialog.picker()->isEnabled());
        QVERIFY(dialog.picker()->checkBoxes().isEmpty());
        QCOMPARE(dialog.picker()->message(), QStringLiteral("No GPU can be used: ") + kNoGpu);
        QVERIFY(!dialog.buttons()->button(QDialogButtonBox::Ok)->isEnabled());
        QCOMPARE(resolveGpuSelection({{1, kH200}}, {}), QVector<int>{});
        // Then GPUs: enabled, OK allowed.
        dialog.setGpus(machine(2), {});
        QVERIFY(dialog.picker()->isEnabled());
        QVERIFY(dialog.buttons()->button(QDialogButtonBox::Ok)->isEnabled());
    }

    void statusTextAndTooltip_data() {
        QTest::addColumn<GpuList>("gpus");
        QTest::addColumn<QString>("text");
        QTest::addColumn<QStringList>("tooltip");
        QTest::newRow("no GPU") << GpuList{{}, kNoGpu} << QStringLiteral("GPU —") << QStringList{kNoGpu};
        QTest::newRow("1 GPU") << GpuList{{gpu(0, 32)}, {}} << QStringLiteral("GPU 0: 32.0 / 140 GiB")
                               << QStringList{QStringLiteral("GPU 0 · NVIDIA H200: 32.0 GiB used, 108.0 GiB free of "
                                                             "140.0 GiB")};
        QTest::newRow("2 GPUs") << GpuList{{gpu(0, 32), gpu(1, 30.5, QStringLiteral("NVIDIA H100 80GB HBM3"), 80)}, {}}
                                << QStringLiteral("GPU 0: 32.0 / 140 GiB · GPU 1: 30.5 / 80.0 GiB")
                                << QStringList{QStringLiteral("GPU 0 · NVIDIA H200: 32.0 GiB used, 108.0 GiB free of "
                                                              "140.0 GiB"),
                                               QStringLiteral("GPU 1 · NVIDIA H100 80GB HBM3: 30.5 GiB used, 49.5 GiB "
                                                              "free of 80.0 GiB")};
        // Four (not numbered 0..3): the sum and the fullest one; every GPU in the tooltip.
        QTest::newRow("4 GPUs")
            << GpuList{{gpu(0, 30), gpu(2, 31), gpu(5, 33), gpu(7, 30)}, {}}
            << QStringLiteral("4 GPUs: 124 / 560 GiB (GPU 5 fullest: 33.0 / 140 GiB)")
            << QStringList{QStringLiteral("GPU 0 · NVIDIA H200: 30.0 GiB used, 110.0 GiB free of 140.0 GiB"),
                           QStringLiteral("GPU 2 · NVIDIA H200: 31.0 GiB used, 109.0 GiB free of 140.0 GiB"),
                           QStringLiteral("GPU 5 · NVIDIA H200: 33.0 GiB used, 107.0 GiB free of 140.0 GiB"),
                           QStringLiteral("GPU 7 · NVIDIA H200: 30.0 GiB used, 110.0 GiB free of 140.0 GiB")};
    }
    void statusTextAndTooltip() {
        QFETCH(GpuList, gpus);
        QFETCH(QString, text);
        QFETCH(QStringList, tooltip);
        QCOMPARE(gpuStatusText(gpus), text);
        const QStringList lines = gpuStatusToolTip(gpus).split(QLatin1Char('\n'));
        for (const QString& line : tooltip) QVERIFY2(lines.contains(line), qPrintable(gpuStatusToolTip(gpus)));
        QCOMPARE(lines.size(), gpus.gpus.isEmpty() ? 1 : static_cast<int>(gpus.gpus.size()) + 1);
        // The status bar shows what the backend reports after a load or an answer.
        QMainWindow window;
        FakeBackend backend;
        StatusPanel panel(&backend, window.statusBar());
        QCOMPARE(panel.gpuLabel()->text(), QStringLiteral("GPU —"));
        Q_EMIT backend.modelGpusChanged(gpus);
        QCOMPARE(panel.gpuLabel()->text(), text);
        QCOMPARE(panel.gpuLabel()->toolTip(), gpuStatusToolTip(gpus));
        // And the model panel, one line per GPU.
        ModelInfoPanel info;
        info.setModel(backend.model());
        info.setGpus(gpus);
        QCOMPARE(info.fieldText(QStringLiteral("gpu")).split(QLatin1Char('\n')).size(),
                 gpus.gpus.isEmpty() ? 1 : gpus.gpus.size());
    }

    // Model → GPUs…: the dialog lists what the backend reports; unchecking GPU 0 is remembered and a
    // reload is offered, which sends the new choice with the load.
    void theMenuRemembersTheChoiceAndOffersAReload() {
        QSettings().setValue(QStringLiteral("model/backend"), QStringLiteral("auto"));
        auto* backend = new FakeBackend;
        MainWindow window(backend);
        backend->setParent(&window);
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        QAction* action = window.findChild<QAction*>(QStringLiteral("gpusAction"));
        QVERIFY(action && action->text().contains(QStringLiteral("GPUs")));
        action->trigger();
        GpuDialog* dialog = nullptr;
        QTRY_VERIFY((dialog = window.findChild<GpuDialog*>(QStringLiteral("gpuDialog"))) && dialog->isVisible());
        QCOMPARE(backend->gpuRequests, 1);
        QCOMPARE(dialog->picker()->checkedIndexes(), (QVector<int>{0, 1, 2, 3}));
        QTest::mouseClick(box(*dialog->picker(), 0), Qt::LeftButton);
        dialog->buttons()->button(QDialogButtonBox::Ok)->click();
        const GpuSelection expected{{1, kH200}, {2, kH200}, {3, kH200}};
        QCOMPARE(savedGpuSelection(), expected);
        QMessageBox* offer = nullptr;
        QTRY_VERIFY((offer = window.findChild<QMessageBox*>(QStringLiteral("gpuReloadDialog"))) && offer->isVisible());
        QAbstractButton* reload = nullptr;
        for (QAbstractButton* b : offer->buttons())
            if (b->text() == QStringLiteral("Reload now")) reload = b;
        QVERIFY(reload);
        reload->click();
        QCOMPARE(backend->loads.size(), 1);
        QCOMPARE(backend->loads[0].dir, QStringLiteral("/models/model"));
        QCOMPARE(backend->loads[0].backend, BackendPreference::Auto);
        QCOMPARE(backend->loads[0].gpus, expected);

        // Reloaded there: the same choice again has nothing to offer.
        backend->devices = {1, 2, 3};
        QTRY_VERIFY(!window.findChild<QMessageBox*>(QStringLiteral("gpuReloadDialog")));
        action->trigger();
        QTRY_VERIFY((dialog = window.findChild<GpuDialog*>(QStringLiteral("gpuDialog"))) && dialog->isVisible());
        QCOMPARE(dialog->picker()->checkedIndexes(), (QVector<int>{1, 2, 3}));
        dialog->buttons()->button(QDialogButtonBox::Ok)->click();
        QTest::qWait(50);
        QVERIFY(!window.findChild<QMessageBox*>(QStringLiteral("gpuReloadDialog")));
    }

    void noReloadOfferOnTheCpuBackend() {
        QSettings().setValue(QStringLiteral("model/backend"), QStringLiteral("cpu"));
        auto* backend = new FakeBackend;
        MainWindow window(backend);
        backend->setParent(&window);
        QCOMPARE(window.backendPreference(), BackendPreference::Cpu);
        window.showGpuDialog();
        GpuDialog* dialog = window.findChild<GpuDialog*>(QStringLiteral("gpuDialog"));
        QVERIFY(dialog);
        dialog->picker()->checkBoxes().first()->setChecked(false);
        dialog->buttons()->button(QDialogButtonBox::Ok)->click();
        QCOMPARE(savedGpuSelection().size(), 3);
        QTest::qWait(50);
        QVERIFY(!window.findChild<QMessageBox*>(QStringLiteral("gpuReloadDialog")));
        QVERIFY(backend->loads.isEmpty());
        // A load asked for now carries the choice anyway (it applies once CUDA is chosen).
        window.loadModel(QStringLiteral("/models/other"));
        QCOMPARE(backend->loads.size(), 1);
        QCOMPARE(backend->loads[0].gpus, savedGpuSelection());
    }

    void aWindowWithoutEngineSaysSo() {
        MainWindow window;  // NullBackend: ChatBackend's own answer
        window.showGpuDialog();
        GpuDialog* dialog = window.findChild<GpuDialog*>(QStringLiteral("gpuDialog"));
        QVERIFY(dialog);
        QVERIFY(!dialog->picker()->isEnabled());
        QVERIFY(dialog->picker()->message().contains(QStringLiteral("no engine")));
    }

private:
    QTemporaryDir m_dir;
};

QTEST_MAIN(GpuTest)
#include "ui_gpu_test.moc"
