#include "token_text.h"

#include <QCoreApplication>
#include <QLocale>

#include <cmath>

#include "routing_table.h"

namespace dsv2::ui {

QString visibleTokenText(const std::string& text, int tokenId) {
    if (text.empty()) return QCoreApplication::translate("TokenText", "⟨id %1⟩").arg(tokenId);
    QString s = QString::fromUtf8(text.data(), static_cast<qsizetype>(text.size()));
    s.replace(QLatin1Char(' '), QChar(0x2423));   // ␣
    s.replace(QLatin1Char('\n'), QChar(0x21B5));  // ↵
    s.replace(QLatin1Char('\t'), QChar(0x21E5));  // ⇥
    s.replace(QLatin1Char('\r'), QString());
    return s;
}

QString visibleTokenText(const inspect::TokenRow& row) { return visibleTokenText(row.text, row.tokenId); }

QString visibleTokenHtml(const inspect::TokenRow& row) { return visibleTokenText(row).toHtmlEscaped(); }

QString formatProbability(double p) {
    if (!(p >= 0.0)) return QStringLiteral("–");
    const double percent = p * 100.0;
    if (percent < 0.01) return QStringLiteral("< 0.01 %");
    if (percent < 1.0) return QStringLiteral("%1 %").arg(percent, 0, 'f', 2);
    return QStringLiteral("%1 %").arg(percent, 0, 'f', 1);
}

QString formatByteSize(qint64 bytes) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (std::abs(v) >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    if (u == 0) return QStringLiteral("%1 B").arg(bytes);
    const int decimals = std::abs(v) >= 100.0 ? 0 : (std::abs(v) >= 10.0 ? 1 : 2);
    return QStringLiteral("%1 %2").arg(v, 0, 'f', decimals).arg(QLatin1String(units[u]));
}

QString formatTokenCount(qint64 n) {
    // Spelled out: without a translation loaded, tr("%n token(s)") would show "(s)".
    return n == 1 ? QCoreApplication::translate("TokenText", "1 token")
                  : QCoreApplication::translate("TokenText", "%1 tokens").arg(QLocale().toString(n));
}

QString formatRoutes(double n) { return formatTokenCount(static_cast<qint64>(std::llround(n))); }

}  // namespace dsv2::ui
