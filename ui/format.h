#pragma once
// Numbers as people read them: "15.7 B", "1.5 GiB", "1,234".

#include <QString>

namespace dsv2::ui {

QString formatCount(qint64 n);  // 950, 12.3 K, 2.4 M, 15.7 B
QString formatBytes(qint64 bytes);
QString tokenCountText(qint64 n);  // "1 token", "1,234 tokens"
// The status bar's GPU figure: "GPU 1.5 GiB / 80 GiB", or "GPU —" when there is none
// (total <= 0: no CUDA device, or a build without CUDA).
QString gpuMemoryText(qint64 usedBytes, qint64 totalBytes);

}  // namespace dsv2::ui
