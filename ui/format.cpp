#include "format.h"

#include <QCoreApplication>
#include <QLocale>

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

QString gpuMemoryText(qint64 usedBytes, qint64 totalBytes) {
    if (totalBytes <= 0) return QCoreApplication::translate("dsv2", "GPU —");
    return QCoreApplication::translate("dsv2", "GPU %1 / %2")
        .arg(formatBytes(std::max<qint64>(0, usedBytes)), formatBytes(totalBytes));
}

}  // namespace dsv2::ui
