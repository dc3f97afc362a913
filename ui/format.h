#pragma once
// Numbers as people read them: "15.7 B", "1.5 GiB", "1,234".

#include <QString>

#include "backend/chat_types.h"

namespace dsv2::ui {

QString formatCount(qint64 n);  // 950, 12.3 K, 2.4 M, 15.7 B
QString formatBytes(qint64 bytes);
QString tokenCountText(qint64 n);  // "1 token", "1,234 tokens"
// The status bar's GPU field for the model's GPUs: "GPU 0: 31.2 / 140 GiB" each, joined by " · "
// up to kGpusListedInStatus of them; more read "4 GPUs: 124.8 / 560 GiB (GPU 2 fullest: 32.0 / 140 GiB)".
// "GPU —" when there are none (the CPU backend, no GPU, a server).
inline constexpr int kGpusListedInStatus = 3;
QString gpuStatusText(const GpuList& modelGpus);
// Its tooltip: one line per GPU with name, used, free and total, or why there is none.
QString gpuStatusToolTip(const GpuList& modelGpus);
// "31.2 / 140 GiB": GiB with one decimal below 100, none from 100.
QString gibPair(qint64 usedBytes, qint64 totalBytes);

}  // namespace dsv2::ui
