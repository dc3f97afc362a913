#pragma once
// Numbers as people read them: "15.7 B", "1.5 GiB", "1,234".

#include <QString>

namespace dsv2::ui {

QString formatCount(qint64 n);  // 950, 12.3 K, 2.4 M, 15.7 B
QString formatBytes(qint64 bytes);
QString tokenCountText(qint64 n);  // "1 token", "1,234 tokens"

}  // namespace dsv2::ui
