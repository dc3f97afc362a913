#pragma once
// One engine runs one generation at a time. Requests take a place in line (FIFO); when the line
// is full a request is refused at once (the server answers 429) rather than piling up threads
// and memory. A place is given back when its holder is destroyed: after the generation, or when
// the request is abandoned while still waiting.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

namespace dsv2::server {

class GenerationQueue {
public:
    // maxWaiting: how many may wait while one runs.
    explicit GenerationQueue(int maxWaiting) : m_maxWaiting(maxWaiting) {}

    class Place {
    public:
        ~Place();
        Place(const Place&) = delete;
        Place& operator=(const Place&) = delete;
        // Blocks until this place is at the front and the engine is free; false when the queue was
        // closed (shutdown) first.
        bool waitTurn();
        bool running() const { return m_running; }

    private:
        friend class GenerationQueue;
        Place(GenerationQueue& queue, uint64_t id) : m_queue(queue), m_id(id) {}
        GenerationQueue& m_queue;
        uint64_t m_id;
        bool m_running = false;
    };

    // Null when maxWaiting requests already wait (or the queue is closed).
    std::unique_ptr<Place> tryJoin();
    // Wakes every waiter with "no": for shutdown.
    void close();

    int waiting() const;
    bool busy() const;

private:
    mutable std::mutex m_mutex;
    std::condition_variable m_changed;
    std::deque<uint64_t> m_line;
    uint64_t m_nextId = 1;
    bool m_engineBusy = false;
    bool m_closed = false;
    int m_maxWaiting;
};

}  // namespace dsv2::server
