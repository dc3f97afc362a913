#pragma once
// LatencyProbe: how late the GUI thread's event loop runs a 1 ms timer. A frozen event loop (a
// synchronous wait on the engine or the disk, a slow relayout) shows up as a late tick.

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>
#include <QVector>

#include <algorithm>

namespace dsv2::test {

class LatencyProbe : public QObject {
public:
    LatencyProbe() {
        m_timer.setTimerType(Qt::PreciseTimer);
        m_timer.setInterval(1);
        connect(&m_timer, &QTimer::timeout, this, [this] {
            const qint64 now = m_clock.nsecsElapsed();
            // Lateness: the gap since the previous tick beyond the 1 ms asked for.
            if (m_last >= 0) m_lateMs.append(std::max(0.0, static_cast<double>(now - m_last) / 1e6 - 1.0));
            m_last = now;
        });
    }
    void start() {
        m_lateMs.clear();
        m_last = -1;
        m_clock.start();
        m_timer.start();
    }
    void stop() { m_timer.stop(); }
    int samples() const { return static_cast<int>(m_lateMs.size()); }
    // p in [0, 100].
    double percentile(double p) const {
        if (m_lateMs.isEmpty()) return 0.0;
        QVector<double> sorted = m_lateMs;
        std::sort(sorted.begin(), sorted.end());
        const auto i = static_cast<qsizetype>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
        return sorted[std::clamp<qsizetype>(i, 0, sorted.size() - 1)];
    }
    double max() const { return m_lateMs.isEmpty() ? 0.0 : *std::max_element(m_lateMs.begin(), m_lateMs.end()); }

private:
    QTimer m_timer;
    QElapsedTimer m_clock;
    qint64 m_last = -1;
    QVector<double> m_lateMs;
};

}  // namespace dsv2::test
