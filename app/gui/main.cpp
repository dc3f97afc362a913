// dsv2-chat: the desktop app.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QIcon>
#include <QScreen>
#include <QSettings>
#include <QTimer>

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>

#include "app_theme.h"
#include "chat/chat_controller.h"
#include "chat_service.h"
#include "common/logging.h"
#include "dsv2/storage/paths.h"
#include "dsv2/version.h"
#include "main_window.h"
#include "model/saved_servers.h"
#include "model_locator.h"

namespace {

// --version and --help must work without a display, so they are handled before QApplication.
bool handledBeforeQt(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--version") == 0 || std::strcmp(argv[i], "-V") == 0) {
            std::fputs(dsv2::versionReport("dsv2-chat").c_str(), stdout);
            return true;
        }
    }
    return false;
}

// --prompt (repeatable): sends the prompts one after the other in a new chat, each when the answer to
// the previous one is finished, once the history and the model are ready (demos, screenshots).
// --screenshot waits for the same readiness and for every answer.
class Script : public QObject {
public:
    Script(dsv2::ui::ChatBackend* backend, dsv2::ui::ChatController* chat, QStringList prompts,
           std::function<void()> onDone)
        : m_chat(chat), m_prompts(std::move(prompts)), m_onDone(std::move(onDone)) {
        connect(backend, &dsv2::ui::ChatBackend::historyReady, this, [this] {
            m_history = true;
            step();
        });
        connect(backend, &dsv2::ui::ChatBackend::historyFailed, this, [this] {
            m_history = true;
            step();
        });
        connect(backend, &dsv2::ui::ChatBackend::modelLoaded, this, [this] {
            m_model = true;
            step();
        });
        connect(backend, &dsv2::ui::ChatBackend::modelLoadFailed, this, [this] {
            m_model = true;
            m_prompts.clear();  // nothing can answer them
            step();
        });
        connect(backend, &dsv2::ui::ChatBackend::generationFinished, this, [this] {
            m_waiting = false;
            step();
        });
    }

private:
    void step() {
        if (m_done || !m_history || !m_model || m_waiting) return;
        if (m_next < m_prompts.size()) {
            if (m_next == 0) m_chat->newChat();  // demos never land in an old conversation
            m_waiting = true;
            m_chat->send(m_prompts[m_next++]);
            return;
        }
        m_done = true;
        if (m_onDone) m_onDone();
    }
    dsv2::ui::ChatController* m_chat;
    QStringList m_prompts;
    std::function<void()> m_onDone;
    qsizetype m_next = 0;
    bool m_history = false, m_model = false, m_waiting = false, m_done = false;
};

constexpr quint64 kStartupGpuTag = 0;  // the window's own GPU requests count from 1

struct Options {
    QCommandLineOption model, db, backend, threads, theme, prompt, screenshot, quitAfter;
};

// The window and the workers live in here, so they are gone (threads joined) before logging stops.
int run(const QCommandLineParser& parser, const Options& o) {
    QSettings settings;
    const QString themeArg =
        parser.isSet(o.theme) ? parser.value(o.theme) : settings.value(QStringLiteral("view/theme")).toString();
    dsv2::ui::applyTheme(dsv2::ui::themeFromName(themeArg));
    if (parser.isSet(o.backend)) {
        const QString b = parser.value(o.backend).toLower();
        if (b != QLatin1String("auto") && b != QLatin1String("cpu") && b != QLatin1String("cuda")) {
            std::fprintf(stderr, "dsv2-chat: --backend must be auto, cuda or cpu (not '%s')\n", qPrintable(b));
            return 2;
        }
        settings.setValue(QStringLiteral("model/backend"), b);
    }

    dsv2::gui::ChatService service(parser.value(o.threads).toInt());
    dsv2::ui::MainWindow window(&service);
    // Until a model says where it runs: the GPUs found (asked on the adapter's GPU thread: the CUDA
    // runtime's start-up takes seconds on some machines, and the window must not wait for it).
    QObject::connect(
        &service, &dsv2::ui::ChatBackend::gpusListed, &window,
        [&window, &service](quint64 tag, const dsv2::ui::GpuList& list) {
            if (tag != kStartupGpuTag) return;
            if (list.gpus.isEmpty())
                spdlog::info("no GPU backend: {}", list.message.toStdString());
            else
                spdlog::info("{} GPU(s), the first {}", list.gpus.size(), list.gpus.front().name.toStdString());
            if (service.hasModel()) return;  // it said so already
            window.setBackendDescription(list.gpus.isEmpty() ? QStringLiteral("CPU")
                                                             : QStringLiteral("CUDA: %1").arg(list.gpus.front().name));
        });
    service.requestGpus(kStartupGpuTag);
    for (const QString& dir : dsv2::gui::builtInModelDirs()) {
        if (dsv2::gui::isModelFolder(dir)) {
            window.setFallbackModel(dir);
            break;
        }
    }
    window.show();

    const QString dbPath = parser.isSet(o.db) ? QFileInfo(parser.value(o.db)).absoluteFilePath()
                                              : QString::fromStdString(dsv2::storage::defaultDatabasePath().string());
    service.openHistory(dbPath);
    const dsv2::gui::ModelChoice model =
        dsv2::gui::resolveDefaultModel(parser.value(o.model), settings.value(QStringLiteral("model/last")).toString());
    // The server used last time comes back unless a model folder was asked for on the command line.
    const std::optional<dsv2::ui::ServerEntry> server = parser.isSet(o.model) ? std::nullopt : dsv2::ui::lastServer();
    if (server) {
        spdlog::info("reconnecting to the server used last time: {}", server->url.toStdString());
        window.connectServer(*server);
    } else if (model.dir.isEmpty()) {
        spdlog::warn("no model folder found (no --model, no last model, no demo model)");
    } else {
        spdlog::info("model {} ({})", model.dir.toStdString(), model.source.toStdString());
        window.loadModel(model.dir);
    }

    std::function<void()> onReady;
    if (parser.isSet(o.screenshot)) {
        const QString path = parser.value(o.screenshot);
        onReady = [&window, path] {
            QTimer::singleShot(400, &window, [&window, path] {
                const bool saved = window.grab().save(path, "PNG");
                if (saved)
                    spdlog::info("screenshot saved to {}", path.toStdString());
                else
                    spdlog::error("could not save a screenshot to {}", path.toStdString());
                QApplication::exit(saved ? 0 : 1);
            });
        };
    }
    std::unique_ptr<Script> script;
    if (parser.isSet(o.prompt) || onReady)
        script = std::make_unique<Script>(&service, window.controller(), parser.values(o.prompt), onReady);
    if (parser.isSet(o.quitAfter)) {
        QTimer::singleShot(parser.value(o.quitAfter).toInt(), qApp, &QApplication::quit);
    }
    return QApplication::exec();
}

}  // namespace

int main(int argc, char** argv) {
    if (handledBeforeQt(argc, argv)) return 0;

    QApplication app(argc, argv);
    Q_INIT_RESOURCE(resources);  // dsv2_ui is a static library: its icons must be registered by hand
    QApplication::setApplicationName(QStringLiteral("dsv2-chat"));
    QApplication::setOrganizationName(QStringLiteral("dsv2-chat"));
    QApplication::setApplicationVersion(QString::fromStdString(dsv2::buildInfo().version));
    QApplication::setDesktopFileName(QStringLiteral("dsv2-chat"));
    QApplication::setWindowIcon(QIcon(QStringLiteral(":/icons/dsv2-chat.svg")));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Chat locally with DeepSeek-V2-family models."));
    parser.addHelpOption();
    QCommandLineOption versionOption({QStringLiteral("V"), QStringLiteral("version")},
                                     QStringLiteral("Print version, build and GPUs, then exit."));
    QCommandLineOption verboseOption({QStringLiteral("v"), QStringLiteral("verbose")},
                                     QStringLiteral("Debug-level logging."));
    QCommandLineOption modelOption(QStringLiteral("model"),
                                   QStringLiteral("Model folder to load (default: the last one used, else the "
                                                  "built-in demo model)."),
                                   QStringLiteral("dir"));
    QCommandLineOption dbOption(QStringLiteral("db"),
                                QStringLiteral("Chat history database (default: %1).")
                                    .arg(QString::fromStdString(dsv2::storage::defaultDatabasePath().string())),
                                QStringLiteral("file"));
    QCommandLineOption backendOption(QStringLiteral("backend"),
                                     QStringLiteral("auto (default: CUDA when available), cuda or cpu."),
                                     QStringLiteral("name"));
    QCommandLineOption threadsOption(QStringLiteral("threads"),
                                     QStringLiteral("CPU threads for the CPU backend (default: all cores but one)."),
                                     QStringLiteral("n"));
    QCommandLineOption themeOption(QStringLiteral("theme"), QStringLiteral("system (default), light or dark."),
                                   QStringLiteral("name"));
    QCommandLineOption promptOption(QStringLiteral("prompt"),
                                    QStringLiteral("Send <text> in a new chat once the model is loaded; repeat for "
                                                   "more turns (demos)."),
                                    QStringLiteral("text"));
    QCommandLineOption screenshotOption(QStringLiteral("screenshot"),
                                        QStringLiteral("Save a PNG of the window to <file> once it is ready (and the "
                                                       "--prompt answers finished), then quit."),
                                        QStringLiteral("file"));
    QCommandLineOption quitAfterOption(QStringLiteral("quit-after"),
                                       QStringLiteral("Quit after <ms> milliseconds (smoke tests)."),
                                       QStringLiteral("ms"));
    parser.addOptions({versionOption, verboseOption, modelOption, dbOption, backendOption, threadsOption, themeOption,
                       promptOption, screenshotOption, quitAfterOption});
    parser.process(app);
    const Options options{modelOption, dbOption,     backendOption,    threadsOption,
                          themeOption, promptOption, screenshotOption, quitAfterOption};

    const auto logFile = dsv2::app::initLogging(
        {.appName = "dsv2-chat", .toFile = true, .verbose = parser.isSet(verboseOption), .quietConsole = false});
    spdlog::info("dsv2-chat {} starting (Qt {}, platform {}), log file {}", dsv2::buildInfo().version, qVersion(),
                 QApplication::platformName().toStdString(), logFile.empty() ? "none" : logFile.string());

    const int rc = run(parser, options);
    spdlog::info("dsv2-chat exiting ({})", rc);
    spdlog::shutdown();
    return rc;
}
