// dsv2-chat: the desktop app.
#include <QApplication>
#include <QCommandLineParser>
#include <QIcon>
#include <QScreen>
#include <QTimer>

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>

#include "common/logging.h"
#include "dsv2/version.h"
#include "main_window.h"

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

}  // namespace

int main(int argc, char** argv) {
    if (handledBeforeQt(argc, argv)) return 0;

    QApplication app(argc, argv);
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
    QCommandLineOption screenshotOption(QStringLiteral("screenshot"),
                                        QStringLiteral("Save a PNG of the window to <file> and quit."),
                                        QStringLiteral("file"));
    QCommandLineOption quitAfterOption(QStringLiteral("quit-after"),
                                       QStringLiteral("Quit after <ms> milliseconds (smoke tests)."),
                                       QStringLiteral("ms"));
    parser.addOptions({versionOption, verboseOption, screenshotOption, quitAfterOption});
    parser.process(app);

    const auto logFile = dsv2::app::initLogging(
        {.appName = "dsv2-chat", .toFile = true, .verbose = parser.isSet(verboseOption), .quietConsole = false});
    spdlog::info("dsv2-chat {} starting (Qt {}, platform {}), log file {}", dsv2::buildInfo().version, qVersion(),
                 QApplication::platformName().toStdString(), logFile.empty() ? "none" : logFile.string());

    dsv2::ui::MainWindow window;
    auto gpus = dsv2::listGpus();
    if (gpus.isOk() && !gpus->empty()) {
        window.setBackendDescription(QStringLiteral("CUDA: %1").arg(QString::fromStdString(gpus->front().name)));
    } else {
        window.setBackendDescription(QStringLiteral("CPU"));
        spdlog::info("no GPU backend: {}", gpus.isOk() ? "no GPU found" : gpus.status().message());
    }
    window.show();

    if (parser.isSet(screenshotOption)) {
        const QString path = parser.value(screenshotOption);
        QTimer::singleShot(500, &window, [&window, path] {
            const bool saved = window.grab().save(path, "PNG");
            if (saved)
                spdlog::info("screenshot saved to {}", path.toStdString());
            else
                spdlog::error("could not save a screenshot to {}", path.toStdString());
            QApplication::exit(saved ? 0 : 1);
        });
    }
    if (parser.isSet(quitAfterOption)) {
        QTimer::singleShot(parser.value(quitAfterOption).toInt(), &app, &QApplication::quit);
    }
    const int rc = QApplication::exec();
    spdlog::info("dsv2-chat exiting ({})", rc);
    spdlog::shutdown();
    return rc;
}
