#include "server/generation_queue.h"

#include <algorithm>

namespace dsv2::server {

std::unique_ptr<GenerationQueue::Place> GenerationQueue::tryJoin() {
    std::lock_guard lock(m_mutex);
    if (m_closed || static_cast<int>(m_line.size()) >= m_maxWaiting + (m_engineBusy ? 0 : 1)) return nullptr;
    const uint64_t id = m_nextId++;
    m_line.push_back(id);
    return std::unique_ptr<Place>(new Place(*this, id));
}

bool GenerationQueue::Place::waitTurn() {
    std::unique_lock lock(m_queue.m_mutex);
    m_queue.m_changed.wait(
        lock, [&] { return m_queue.m_closed || (!m_queue.m_engineBusy && m_queue.m_line.front() == m_id); });
    if (m_queue.m_closed) return false;
    m_queue.m_line.pop_front();
    m_queue.m_engineBusy = true;
    m_running = true;
    return true;
}

GenerationQueue::Place::~Place() {
    {
        std::lock_guard lock(m_queue.m_mutex);
        if (m_running) {
            m_queue.m_engineBusy = false;
        } else {
            auto& line = m_queue.m_line;
            line.erase(std::remove(line.begin(), line.end(), m_id), line.end());
        }
    }
    m_queue.m_changed.notify_all();
}

void GenerationQueue::close() {
    {
        std::lock_guard lock(m_mutex);
        m_closed = true;
    }
    m_changed.notify_all();
}

int GenerationQueue::waiting() const {
    std::lock_guard lock(m_mutex);
    return static_cast<int>(m_line.size());
}

bool GenerationQueue::busy() const {
    std::lock_guard lock(m_mutex);
    return m_engineBusy;
}

}  // namespace dsv2::server
