#pragma once
// A small fixed pool of worker threads for the CPU backend's data-parallel loops (matrix-vector
// rows, attention heads, experts). One job at a time: parallelFor splits [0, n) into contiguous
// chunks, the calling thread works on chunks too, and the call returns when every chunk is done.
// Not re-entrant: a body must not call parallelFor on the same pool.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dsv2::cpu {

class ThreadPool {
public:
    // threads = total threads working on a job, including the caller; 0 = hardware concurrency.
    explicit ThreadPool(int threads = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int threadCount() const { return static_cast<int>(m_workers.size()) + 1; }

    // Calls body(begin, end) over disjoint ranges covering [0, n). `grain` is the smallest range
    // worth handing to another thread: below 2·grain everything runs on the caller.
    void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

private:
    void workerLoop();
    void runChunks();

    std::vector<std::thread> m_workers;
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::condition_variable m_done;
    bool m_stop = false;
    uint64_t m_generation = 0;  // bumped per job so that workers see a new job exactly once

    // The current job (guarded by m_mutex for publication; chunks are claimed with m_next).
    const std::function<void(int64_t, int64_t)>* m_body = nullptr;
    int64_t m_n = 0;
    int64_t m_chunk = 0;
    int64_t m_next = 0;       // next chunk start (under m_mutex)
    int m_activeWorkers = 0;  // workers still inside the current job
};

}  // namespace dsv2::cpu
