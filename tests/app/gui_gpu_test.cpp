// The GPU choice and the GPU status through the real adapter, with the machine injected (this one
// has no GPU): the EngineOptions::devices a load gets from Model → GPUs…'s choice (all by default,
// one, several, another machine's choice, the CPU backend), the picker and the status bar without a
// GPU (listGpus()'s message), and the GPU field refreshed after a load and after each answer.
#include <QCheckBox>
#include <QDialogButtonBox>
#include <QLabel>
#include <QPushButton>
#include <QSignalSpy>
#include <QtTest>

#include <atomic>
#include <mutex>

#include "dsv2/engine.h"
#include "dsv2/version.h"
#include "engine_worker.h"
#include "format.h"
#include "gui_harness.h"
#include "model/model_info_panel.h"
#include "model_summary.h"
#include "settings/gpu_choice.h"
#include "settings/gpu_dialog.h"
#include "settings/gpu_picker.h"

using dsv2::test::GuiHarness;
using dsv2::ui::GpuSelection;

Q_DECLARE_METATYPE(dsv2::ui::GpuSelection)
Q_DECLARE_METATYPE(dsv2::ui::BackendPreference)

namespace {

constexpr size_t kGiB = size_t{1} << 30;
const QString kH200 = QStringLiteral("NVIDIA H200");
const std::string kNoGpu = "no NVIDIA GPU found (cudaGetDeviceCount: no CUDA-capable device)";

std::vector<dsv2::GpuInfo> h200s(int n) {
    std::vector<dsv2::GpuInfo> gpus;
    for (int i = 0; i < n; ++i) {
        dsv2::GpuInfo g;
        g.index = i;
        g.name = kH200.toStdString();
        g.computeMajor = 9;
        g.totalMemoryBytes = 140 * kGiB;
        g.freeMemoryBytes = (130 - static_cast<size_t>(i)) * kGiB;
        g.multiprocessors = 132;
        gpus.push_back(g);
    }
    return gpus;
}

// A machine of n H200s; counts the calls (from the engine and the GPU threads).
dsv2::gui::GpuLister machineOf(int n, std::shared_ptr<std::atomic<int>> calls = {}) {
    return [n, calls]() -> dsv2::Result<std::vector<dsv2::GpuInfo>> {
        if (calls) ++*calls;
        return h200s(n);
    };
}

dsv2::gui::GpuLister noGpu() {
    return []() -> dsv2::Result<std::vector<dsv2::GpuInfo>> {
        return dsv2::Status(dsv2::StatusCode::Unavailable, kNoGpu);
    };
}

// The options of the next load, as the engine thread builds them.
struct OptionsSeen {
    std::mutex mutex;
    std::optional<dsv2::EngineOptions> options;
    void install(dsv2::gui::ChatService& service) {
        service.setOptionsProbe([this](const dsv2::EngineOptions& o) {
            const std::lock_guard lock(mutex);
            options = o;
            options->loadProgress = {};
        });
    }
    std::optional<dsv2::EngineOptions> get() {
        const std::lock_guard lock(mutex);
        return options;
    }
};

bool loadTinyLite(GuiHarness& h) {
    QSignalSpy loaded(&h.service, &dsv2::ui::ChatBackend::modelLoaded);
    QSignalSpy failed(&h.service, &dsv2::ui::ChatBackend::modelLoadFailed);
    h.window.loadModel(dsv2::test::tinyLiteDir());
    return QTest::qWaitFor([&] { return !loaded.isEmpty() || !failed.isEmpty(); }, 60000) && !loaded.isEmpty();
}

dsv2::ui::GpuDialog* openGpuDialog(GuiHarness& h) {
    h.window.showGpuDialog();
    auto* dialog = h.window.findChild<dsv2::ui::GpuDialog*>(QStringLiteral("gpuDialog"));
    if (!dialog) return nullptr;
    // Filled when the GPU thread answers.
    if (!QTest::qWaitFor([&] { return dialog->picker()->message() != QStringLiteral("Looking for GPUs…"); }, 20000))
        return nullptr;
    return dialog;
}

}  // namespace

class GuiGpuTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { dsv2::test::isolateSettings(m_settingsDir, "gui_gpu_test"); }
    void init() { QSettings().clear(); }

    // Through the window: the remembered choice → LoadJob → EngineOptions on the engine thread.
    // (Automatic falls back to the CPU here, so each load also finishes.)
    void theChoiceBecomesTheEngineDevices_data() {
        QTest::addColumn<QString>("backend");
        QTest::addColumn<GpuSelection>("saved");
        QTest::addColumn<QVector<int>>("devices");
        QTest::addColumn<int>("device");
        QTest::addColumn<bool>("listed");
        QTest::newRow("all by default") << "auto" << GpuSelection{} << QVector<int>{0, 1, 2, 3} << 0 << true;
        QTest::newRow("two of four") << "auto" << GpuSelection{{1, kH200}, {3, kH200}} << QVector<int>{1, 3} << 1
                                     << true;
        QTest::newRow("one alone is `device`") << "auto" << GpuSelection{{2, kH200}} << QVector<int>{} << 2 << true;
        QTest::newRow("another machine's choice: all")
            << "auto" << GpuSelection{{1, QStringLiteral("NVIDIA A100-SXM4-80GB")}} << QVector<int>{0, 1, 2, 3} << 0
            << true;
        QTest::newRow("an index not here: all")
            << "auto" << GpuSelection{{3, kH200}, {6, kH200}} << QVector<int>{0, 1, 2, 3} << 0 << true;
        QTest::newRow("CPU backend: no GPU asked") << "cpu" << GpuSelection{{1, kH200}} << QVector<int>{} << 0 << false;
    }
    void theChoiceBecomesTheEngineDevices() {
        QFETCH(QString, backend);
        QFETCH(GpuSelection, saved);
        QFETCH(QVector<int>, devices);
        QFETCH(int, device);
        QFETCH(bool, listed);
        QSettings().setValue(QStringLiteral("model/backend"), backend);  // read when the Model menu is built
        dsv2::ui::saveGpuSelection(saved);
        auto calls = std::make_shared<std::atomic<int>>(0);
        GuiHarness h({}, machineOf(4, calls));
        OptionsSeen seen;
        seen.install(h.service);
        QVERIFY(h.start(false));
        const int callsBefore = calls->load();
        QVERIFY(loadTinyLite(h));
        const std::optional<dsv2::EngineOptions> o = seen.get();
        QVERIFY(o);
        QCOMPARE(QVector<int>(o->devices.begin(), o->devices.end()), devices);
        QCOMPARE(o->device, device);
        QCOMPARE(o->backend, backend == QLatin1String("cpu") ? dsv2::BackendChoice::Cpu : dsv2::BackendChoice::Auto);
        // The engine thread lists the GPUs only for a load that may use them. (The GPU thread also
        // lists them after the load, for the status bar: at most one call then.)
        QTRY_VERIFY(calls->load() - callsBefore >= (listed ? 1 : 0));
        if (!listed) QVERIFY(calls->load() - callsBefore <= 1);
        // The model runs on the CPU here: the status bar says there is no GPU in use.
        auto* gpu = h.window.findChild<QLabel*>(QStringLiteral("gpuMemoryLabel"));
        QTRY_COMPARE(gpu->toolTip(), QStringLiteral("No GPU in use: the model runs on the CPU."));
        QCOMPARE(gpu->text(), QStringLiteral("GPU —"));
    }

    // The options on their own, for the CUDA backend too (which cannot load here).
    void engineOptionsForEachBackend() {
        auto calls = std::make_shared<std::atomic<int>>(0);
        const dsv2::gui::GpuLister four = machineOf(4, calls);
        dsv2::gui::LoadJob job;
        job.backend = dsv2::ui::BackendPreference::Cuda;
        job.gpus = {{0, kH200}, {3, kH200}};
        dsv2::EngineOptions o = dsv2::gui::EngineWorker::engineOptions(job, 3, four);
        QCOMPARE(o.backend, dsv2::BackendChoice::Cuda);
        QCOMPARE(o.threads, 3);
        QCOMPARE(o.devices, (std::vector<int>{0, 3}));
        QCOMPARE(o.device, 0);
        QCOMPARE(calls->load(), 1);
        job.gpus = {};
        QCOMPARE(dsv2::gui::EngineWorker::engineOptions(job, 3, four).devices, (std::vector<int>{0, 1, 2, 3}));
        QCOMPARE(dsv2::gui::EngineWorker::engineOptions(job, 3, machineOf(1)).devices, std::vector<int>{});
        job.backend = dsv2::ui::BackendPreference::Cpu;
        o = dsv2::gui::EngineWorker::engineOptions(job, 3, four);
        QCOMPARE(o.backend, dsv2::BackendChoice::Cpu);
        QVERIFY(o.devices.empty());
        QCOMPARE(calls->load(), 2);  // not asked for the CPU
        // No GPU: the options are as before the picker existed.
        job.backend = dsv2::ui::BackendPreference::Auto;
        o = dsv2::gui::EngineWorker::engineOptions(job, 3, noGpu());
        QVERIFY(o.devices.empty());
        QCOMPARE(o.device, 0);
    }

    // The picker through the adapter's GPU thread: the machine's GPUs with the remembered choice;
    // what is chosen is what the next load gets.
    void thePickerListsTheMachineAndItsChoiceLoads() {
        GuiHarness h({}, machineOf(4));
        OptionsSeen seen;
        seen.install(h.service);
        QVERIFY(h.start(false));
        dsv2::ui::GpuDialog* dialog = openGpuDialog(h);
        QVERIFY(dialog);
        QVERIFY(dialog->picker()->isEnabled());
        QCOMPARE(dialog->picker()->checkedIndexes(), (QVector<int>{0, 1, 2, 3}));
        QCOMPARE(dialog->picker()->checkBoxes().at(2)->text(),
                 QStringLiteral("GPU 2 · NVIDIA H200 — 128.0 GiB free of 140.0 GiB"));
        dialog->picker()->checkBoxes().at(0)->setChecked(false);
        dialog->picker()->checkBoxes().at(2)->setChecked(false);
        dialog->buttons()->button(QDialogButtonBox::Ok)->click();
        QCOMPARE(dsv2::ui::savedGpuSelection(), (GpuSelection{{1, kH200}, {3, kH200}}));
        QVERIFY(loadTinyLite(h));  // no model was loaded: no reload offered, this is the first load
        QCOMPARE(seen.get()->devices, (std::vector<int>{1, 3}));
    }

    // No GPU (this machine, CI): the picker shows listGpus()'s message and is disabled; the model
    // loads on the CPU as before; the status bar's tooltip says why there is no GPU.
    void withoutAGpuThePickerSaysWhy() {
        GuiHarness h({}, noGpu());
        OptionsSeen seen;
        seen.install(h.service);
        QVERIFY(h.start(false));
        dsv2::ui::GpuDialog* dialog = openGpuDialog(h);
        QVERIFY(dialog);
        QVERIFY(!dialog->picker()->isEnabled());
        QVERIFY(dialog->picker()->checkBoxes().isEmpty());
        QCOMPARE(dialog->picker()->message(),
                 QStringLiteral("No GPU can be used: %1").arg(QString::fromStdString(kNoGpu)));
        QVERIFY(!dialog->buttons()->button(QDialogButtonBox::Ok)->isEnabled());
        dialog->reject();
        QVERIFY(loadTinyLite(h));
        QVERIFY(seen.get()->devices.empty());
        QVERIFY(h.service.model().devices.isEmpty());
        QVERIFY(h.window.modelInfo()->fieldText(QStringLiteral("backend")).startsWith(QStringLiteral("cpu")));
        auto* gpu = h.window.findChild<QLabel*>(QStringLiteral("gpuMemoryLabel"));
        QTRY_VERIFY(gpu->toolTip().contains(QString::fromStdString(kNoGpu)));
        QCOMPARE(gpu->text(), QStringLiteral("GPU —"));
    }

    // The same with this machine's own listGpus(), whatever its reason is.
    void thisMachinesOwnMessage() {
        const auto gpus = dsv2::listGpus();
        if (gpus.isOk() && !gpus->empty()) QSKIP("this machine has a GPU: the no-GPU state cannot be seen here");
        const QString why =
            gpus.isOk() ? QStringLiteral("no NVIDIA GPU found") : QString::fromStdString(gpus.status().message());
        GuiHarness h;
        QVERIFY(h.start(false));
        dsv2::ui::GpuDialog* dialog = openGpuDialog(h);
        QVERIFY(dialog);
        QVERIFY(!dialog->picker()->isEnabled());
        QVERIFY2(dialog->picker()->message().contains(why), qPrintable(dialog->picker()->message()));
    }

    // The field is refreshed after the load and again after each answer (from the GPU thread).
    void theGpuFieldIsRefreshedAfterEachAnswer() {
        GuiHarness h({}, machineOf(2));
        QSignalSpy gpus(&h.service, &dsv2::ui::ChatBackend::modelGpusChanged);
        QVERIFY(h.start());
        QTRY_COMPARE(gpus.size(), 1);
        h.useSettings(2);
        h.typeAndSend(QStringLiteral("Hello"));
        QVERIFY(h.waitFinished());
        QTRY_COMPARE(gpus.size(), 2);
        const auto last = gpus.last().first().value<dsv2::ui::GpuList>();
        QVERIFY(last.gpus.isEmpty());  // tiny-lite runs on the CPU here
        QCOMPARE(last.message, QStringLiteral("No GPU in use: the model runs on the CPU."));
    }

    // The adapter's conversions: listGpus → the UI's list; the model's devices → its GPUs.
    void theModelsGpusAmongTheMachines() {
        const dsv2::ui::GpuList machine = dsv2::gui::toGpuList(h200s(4));
        QCOMPARE(machine.gpus.size(), 4);
        QVERIFY(machine.message.isEmpty());
        QCOMPARE(machine.gpus[1].name, kH200);
        QCOMPARE(machine.gpus[1].totalBytes, qint64{140} << 30);
        QCOMPARE(machine.gpus[1].usedBytes(), qint64{11} << 30);
        const dsv2::ui::GpuList none = dsv2::gui::toGpuList(dsv2::Status(dsv2::StatusCode::Unavailable, kNoGpu));
        QVERIFY(none.gpus.isEmpty());
        QCOMPARE(none.message, QString::fromStdString(kNoGpu));

        const dsv2::ui::GpuList two = dsv2::gui::modelGpus(machine, {3, 1});
        QCOMPARE(two.gpus.size(), 2);
        QCOMPARE(two.gpus[0].index, 3);
        QCOMPARE(two.gpus[1].index, 1);
        QCOMPARE(dsv2::ui::gpuStatusText(two), QStringLiteral("GPU 3: 13.0 / 140 GiB · GPU 1: 11.0 / 140 GiB"));
        QCOMPARE(dsv2::gui::modelGpus(machine, {}).message,
                 QStringLiteral("No GPU in use: the model runs on the CPU."));
        QCOMPARE(dsv2::gui::modelGpus(none, {}).message,
                 QStringLiteral("No GPU in use: the model runs on the CPU (%1).").arg(QString::fromStdString(kNoGpu)));
        QVERIFY(dsv2::gui::modelGpus(none, {0}).message.contains(QStringLiteral("did not report")));
        dsv2::EngineOptions o;
        dsv2::gui::applyDevices(o, {5});
        QCOMPARE(o.device, 5);
        QVERIFY(o.devices.empty());
        dsv2::gui::applyDevices(o, {1, 2});
        QCOMPARE(o.device, 1);
        QCOMPARE(o.devices, (std::vector<int>{1, 2}));
    }

private:
    QTemporaryDir m_settingsDir;
};

QTEST_MAIN(GuiGpuTest)
#include "gui_gpu_test.moc"
