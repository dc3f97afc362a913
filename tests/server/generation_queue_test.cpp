// The line in front of the engine: first come, first served; full means refused; close wakes all.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "server/generation_queue.h"

using dsv2::server::GenerationQueue;

TEST_CASE("one runs, maxWaiting wait, the next is refused; leaving frees a place") {
    GenerationQueue q(2);
    auto a = q.tryJoin();
    REQUIRE(a);
    REQUIRE(a->waitTurn());
    CHECK(q.busy());
    auto b = q.tryJoin();
    auto c = q.tryJoin();
    CHECK(b);
    CHECK(c);
    CHECK(q.waiting() == 2);
    CHECK_FALSE(q.tryJoin());
    c.reset();  // gave up while waiting
    CHECK(q.waiting() == 1);
    CHECK(q.tryJoin());
}

TEST_CASE("turns are taken in the order of joining") {
    GenerationQueue q(8);
    auto first = q.tryJoin();
    REQUIRE(first->waitTurn());
    std::vector<int> order;
    std::mutex m;
    std::vector<std::thread> threads;
    std::vector<std::unique_ptr<GenerationQueue::Place>> places;
    for (int i = 0; i < 5; ++i) places.push_back(q.tryJoin());
    for (int i = 0; i < 5; ++i)
        threads.emplace_back([&, i] {
            REQUIRE(places[static_cast<size_t>(i)]->waitTurn());
            {
                std::lock_guard lock(m);
                order.push_back(i);
            }
            places[static_cast<size_t>(i)].reset();
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    first.reset();
    for (auto& t : threads) t.join();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("close() wakes every waiter with no, and refuses newcomers") {
    GenerationQueue q(4);
    auto running = q.tryJoin();
    REQUIRE(running->waitTurn());
    auto waiter = q.tryJoin();
    std::atomic<int> result{-1};
    std::thread t([&] { result = waiter->waitTurn() ? 1 : 0; });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(result == -1);  // still waiting
    q.close();
    t.join();
    CHECK(result == 0);
    CHECK_FALSE(q.tryJoin());
}
