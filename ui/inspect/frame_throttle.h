#pragma once
// FrameThrottle: runs an action at most once per frame (16 ms) however often it is requested.
// While an answer streams, rows arrive faster than the screen refreshes; the views take the data at
// once (cheap) but repaint and re-measure once per frame, so a fast stream cannot starve the event
// loop with paints.

#include <QObject>
#include <QTimer>

#include <functional>
#include <utility>

namespace dsv2::ui {

class FrameThrottle {
public:
    static constexpr int kFrameMs = 16;

    FrameThrottle(QObject* owner, std::function<void()> action) : m_action(std::move(action)) {
        m_timer.setSingleShot(true);
        m_timer.setInterval(kFrameMs);
        QObject::connect(&m_timer, &QTimer::timeout, owner, [this] { m_action(); });
    }

    // The first request of a frame runs the action when the frame ends; later ones join it.
    void request() {
        if (!m_timer.isActive()) m_timer.start();
    }
    bool isPending() const { return m_timer.isActive(); }
    // Runs a pending action now (a reset, a test that needs the result at once).
    void flush() {
        if (!m_timer.isActive()) return;
        m_timer.stop();
        m_action();
    }

private:
    std::function<void()> m_action;
    QTimer m_timer;
};

}  // namespace dsv2::ui
