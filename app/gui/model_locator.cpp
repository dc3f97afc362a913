#include "model_locator.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QObject>

namespace dsv2::gui {
namespace {

QString canonical(const QString& dir) {
    const QString c = QFileInfo(dir).canonicalFilePath();
    return c.isEmpty() ? QDir::cleanPath(QFileInfo(dir).absoluteFilePath()) : c;
}

QString installedDemoDir() {
    // Relative to the executable first (a relocated install or an AppImage), then the configured prefix.
    const QString nextToBinary =
        QDir(QCoreApplication::applicationDirPath()).absoluteFilePath(QStringLiteral("../share/dsv2-chat/demo-model"));
    if (isModelFolder(nextToBinary)) return QDir::cleanPath(nextToBinary);
    return QStringLiteral(DSV2_INSTALL_DATADIR "/demo-model");
}

bool isDemoDir(const QString& dir) {
    const QString c = canonical(dir);
    return c == canonical(installedDemoDir()) || c == canonical(QStringLiteral(DSV2_SOURCE_DEMO_MODEL_DIR)) ||
           QFileInfo(c).fileName() == QLatin1String("demo-model");
}

bool isTinyLiteDir(const QString& dir) {
    const QString c = canonical(dir);
    return c == canonical(QStringLiteral(DSV2_TINY_LITE_DIR)) || QFileInfo(c).fileName() == QLatin1String("tiny-lite");
}

}  // namespace

bool isModelFolder(const QString& dir) {
    return !dir.isEmpty() && QFileInfo(QDir(dir).filePath(QStringLiteral("config.json"))).isFile();
}

QStringList builtInModelDirs() {
    return {installedDemoDir(), QStringLiteral(DSV2_SOURCE_DEMO_MODEL_DIR), QStringLiteral(DSV2_TINY_LITE_DIR)};
}

ModelChoice resolveDefaultModel(const QString& commandLine, const QString& lastUsed) {
    if (!commandLine.isEmpty()) return {QFileInfo(commandLine).absoluteFilePath(), QStringLiteral("command line")};
    if (isModelFolder(lastUsed)) return {lastUsed, QStringLiteral("last used")};
    const QStringList builtIn = builtInModelDirs();
    for (int i = 0; i < builtIn.size(); ++i) {
        if (isModelFolder(builtIn[i]))
            return {QDir::cleanPath(builtIn[i]), i < 2 ? QStringLiteral("demo model") : QStringLiteral("test model")};
    }
    return {};
}

QString toyNote(const QString& dir, qint64 parametersTotal) {
    const QString howTo = QObject::tr(
        "For real answers, download DeepSeek-V2-Lite-Chat (Hugging Face: deepseek-ai/DeepSeek-V2-Lite-Chat) "
        "and open its folder with Model → Open model folder… (Ctrl+O).");
    if (isTinyLiteDir(dir))
        return QObject::tr("tiny-lite is a test model with random weights: it writes noise.") + QLatin1Char(' ') +
               howTo;
    if (isDemoDir(dir))
        return QObject::tr(
                   "This is the built-in demo model: a tiny model trained on a small corpus, so expect "
                   "short and simple answers.") +
               QLatin1Char(' ') + howTo;
    if (parametersTotal > 0 && parametersTotal < 100'000'000)
        return QObject::tr("This model has only %1 million parameters: it is a toy.")
                   .arg(static_cast<double>(parametersTotal) / 1e6, 0, 'f', 1) +
               QLatin1Char(' ') + howTo;
    return {};
}

}  // namespace dsv2::gui
