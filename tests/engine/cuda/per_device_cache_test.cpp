// PerDeviceCache (per_device_cache.h): the launch paths' once-per-GPU facts. The bookkeeping is
// host-only, so this suite runs without a GPU; the current-device form is checked on whatever CUDA
// finds here (none on the build machine, the H200 on the GPU machine).
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <atomic>
#include <thread>
#include <vector>

#include "cuda/per_device_cache.h"

using dsv2::cuda::PerDeviceCache;

TEST_CASE("a fact is worked out once per device and slot, then read back") {
    PerDeviceCache<3> cache;
    int calls = 0;
    auto fact = [&](int device) {
        ++calls;
        return 10 * device + 7;
    };
    CHECK(cache.get(2, fact, 1) == 27);
    CHECK(cache.get(2, fact, 1) == 27);
    CHECK(calls == 1);
    CHECK(cache.get(2, fact, 0) == 27);  // another slot of the same device: its own fact
    CHECK(cache.get(5, fact, 1) == 57);  // another device
    CHECK(calls == 3);
    CHECK(cache.get(
              5, [](int) { return 99; }, 1) == 57);  // known: the function is not called
}

TEST_CASE("a fact of 0 (\"no\") is kept too, not worked out again") {
    PerDeviceCache<> cache;
    int calls = 0;
    auto no = [&](int) {
        ++calls;
        return 0;
    };
    CHECK(cache.get(0, no) == 0);
    CHECK(cache.get(0, no) == 0);
    CHECK(calls == 1);
}

TEST_CASE("a device or slot out of range answers 0 without asking") {
    PerDeviceCache<2> cache;
    int calls = 0;
    auto fact = [&](int) {
        ++calls;
        return 4;
    };
    CHECK(cache.get(-1, fact) == 0);
    CHECK(cache.get(PerDeviceCache<2>::kMaxDevices, fact) == 0);
    CHECK(cache.get(0, fact, 2) == 0);
    CHECK(cache.get(0, fact, -1) == 0);
    CHECK(calls == 0);
    CHECK(cache.get(PerDeviceCache<2>::kMaxDevices - 1, fact, 1) == 4);
}

TEST_CASE("threads asking at once all get the fact") {
    PerDeviceCache<> cache;
    std::atomic<int> calls{0};
    std::vector<int> got(8, -1);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < got.size(); ++t)
        threads.emplace_back([&, t] {
            got[t] = cache.get(3, [&](int) {
                calls.fetch_add(1);
                return 12;
            });
        });
    for (auto& t : threads) t.join();
    for (int g : got) CHECK(g == 12);
    CHECK(calls.load() >= 1);
    CHECK(calls.load() <= static_cast<int>(got.size()));
    CHECK(cache.get(3, [](int) { return 0; }) == 12);
}

TEST_CASE("the current device: its fact where CUDA names one, else 0; no CUDA error is left behind") {
    PerDeviceCache<> cache;
    int device = -1;
    const bool hasDevice = cudaGetDevice(&device) == cudaSuccess;
    (void)cudaGetLastError();
    int calls = 0;
    auto fact = [&](int d) {
        ++calls;
        CHECK(d == device);
        int unused = 0;
        (void)cudaDeviceGetAttribute(&unused, static_cast<cudaDeviceAttr>(-1), d);  // fails on purpose
        return 3;
    };
    const int first = cache.getForCurrentDevice(fact);
    // Without a driver every runtime call, cudaGetLastError too, reports that: checked with a GPU only.
    if (hasDevice) CHECK(cudaGetLastError() == cudaSuccess);
    const int second = cache.getForCurrentDevice(fact);
    if (hasDevice) {
        CHECK(first == 3);
        CHECK(second == 3);
        CHECK(calls == 1);
        CHECK(cudaGetLastError() == cudaSuccess);
    } else {
        MESSAGE("no CUDA device here: the current-device form answers 0");
        CHECK(first == 0);
        CHECK(second == 0);
        CHECK(calls == 0);
    }
}
