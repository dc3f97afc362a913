#include "cpu/thread_pool.h"

#include <algorithm>

namespace dsv2::cpu {

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    m_workers.reserve(static_cast<size_t>(threads - 1));
    for (int i = 0; i < threads - 1; ++i) m_workers.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stop = true;
    }
    m_wake.notify_all();
    for (auto& worker : m_workers) worker.join();
}

void ThreadPool::runChunks() {
    for (;;) {
        int64_t begin;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            if (m_next >= m_n) return;
            begin = m_next;
            m_next += m_chunk;
        }
        (*m_body)(begin, std::min(begin + m_chunk, m_n));
    }
}

void ThreadPool::workerLoop() {
    uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_wake.wait(lock, [&] { return m_stop || m_generation != seen; });
            if (m_stop) return;
            seen = m_generation;
        }
        runChunks();
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            if (--m_activeWorkers == 0) m_done.notify_one();
        }
    }
}

void ThreadPool::parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    if (m_workers.empty() || n < 2 * grain) {
        body(0, n);
        return;
    }
    // About four chunks per thread balances uneven rows without much locking.
    const int64_t threads = threadCount();
    const int64_t chunk = std::max(grain, (n + 4 * threads - 1) / (4 * threads));
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_body = &body;
        m_n = n;
        m_chunk = chunk;
        m_next = 0;
        m_activeWorkers = static_cast<int>(m_workers.size());
        ++m_generation;
    }
    m_wake.notify_all();
    runChunks();
    std::unique_lock<std::mutex> lock(m_mutex);
    m_done.wait(lock, [&] { return m_activeWorkers == 0; });
    m_body = nullptr;
}

}  // namespace dsv2::cpu
