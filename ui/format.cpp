#include "format.h"

#include <QCoreApplication>
#include <QLocale>
#include <QStringList>

#include <algorithm>

namespace dsv2::ui {

QString formatCount(qint64 n) {
    const double v = static_cast<double>(n);
    if (n >= 1'000'000'000) return QStringLiteral("%1 B").arg(v / 1e9, 0, 'f', 1);
    if (n >= 1'000'000) return QStringLiteral("%1 M").arg(v / 1e6, 0, 'f', 1);
    if (n >= 10'000) return QStringLiteral("%1 K").arg(v / 1e3, 0, 'f', 1);
    return QLocale().toString(n);
}

QString formatBytes(qint64 bytes) { return QLocale().formattedDataSize(bytes, 1, QLocale::DataSizeIecFormat); }

QString tokenCountText(qint64 n) {
    // Spelled out rather than tr("%n token(s)"): without a translation loaded, Qt would show "(s)".
    return n == 1 ? QCoreApplication::translate("dsv2", "1 token")
                  : QCoreApplication::translate("dsv2", "%1 tokens").arg(QLocale().toString(n));
}

namespace {
QString gib(qint64 bytes) {
    const double v = static_cast<double>(std::max<qint64>(0, bytes)) / static_cast<double>(qint64{1} << 30);
    return QLocale().toString(v, 'f', v < 99.95 ? 1 : 0);
}
}  // namespace

QString gibPair(qint64 usedBytes, qint64 totalBytes) {
    return QCoreApplication::translate("dsv2", "%1 / %2 GiB").arg(gib(usedBytes), gib(totalBytes));
}

QString gpuStatusText(const GpuList& modelGpus) {
    const QVector<GpuItem>& gpus = modelGpus.gpus;
    if (gpus.isEmpty()) return QCoreApplication::translate("dsv2", "GPU —");
    if (gpus.size() <= kGpusListedInStatus) {
        QStringList parts;
        for (const GpuItem& g : gpus)
            parts << QCoreApplication::translate("dsv2", "GPU %1: %2")
                         .arg(g.index)
                         .arg(gibPair(g.usedBytes(), g.totalBytes));
        return parts.join(QStringLiteral(" · "));
    }
    // Many GPUs: the sum, and the fullest one (the one that runs out first).
    qint64 used = 0, total = 0;
    for (const GpuItem& g : gpus) {
        used += g.usedBytes();
        total += g.totalBytes;
    }
    auto share = [](const GpuItem& g) {
        return g.totalBytes > 0 ? static_cast<double>(g.usedBytes()) / static_cast<double>(g.totalBytes) : 0.0;
    };
    const auto fullest = std::max_element(gpus.begin(), gpus.end(),
                                          [&](const GpuItem& a, const GpuItem& b) { return share(a) < share(b); });
    return QCoreApplication::translate("dsv2", "%1 GPUs: %2 (GPU %3 fullest: %4)")
        .arg(gpus.size())
        .arg(gibPair(used, total))
        .arg(fullest->index)
        .arg(gibPair(fullest->usedBytes(), fullest->totalBytes));
}

QString gpuStatusToolTip(const GpuList& modelGpus) {
    if (modelGpus.gpus.isEmpty())
        return modelGpus.message.isEmpty() ? QCoreApplication::translate("dsv2", "No GPU in use.") : modelGpus.message;
    QStringList lines;
    for (const GpuItem& g : modelGpus.gpus)
        lines << QCoreApplication::translate("dsv2", "GPU %1 · %2: %3 used, %4 free of %5")
                     .arg(g.index)
                     .arg(g.name, formatBytes(g.usedBytes()), formatBytes(g.freeBytes), formatBytes(g.totalBytes));
    lines << QCoreApplication::translate("dsv2", "Memory in use by all processes, after the last load or answer.");
    return lines.join(QLatin1Char('\n'));
}

}  // namespace dsv2::ui
