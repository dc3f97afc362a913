#pragma once
// Shared helpers of the CUDA kernel suites: seeded random inputs that are exactly representable in
// bf16 (so the CPU reference and the GPU see the same numbers), upload/download, and REQUIRE_OK.
// The seed is fresh each run and printed; DSV2_TEST_SEED=<n> replays a failing run.

#include <doctest/doctest.h>

#include <cuda_bf16.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/device_buffer.h"
#include "dsv2/status.h"
#include "model/tensor.h"

#define REQUIRE_OK(expr)                                       \
    do {                                                       \
        const ::dsv2::Status dsv2_st_ = (expr);                \
        REQUIRE_MESSAGE(dsv2_st_.isOk(), dsv2_st_.toString()); \
    } while (0)

namespace dsv2::test {

using cuda::DeviceBuffer;
using bf16 = __nv_bfloat16;

inline uint64_t testSeed() {
    static const uint64_t seed = [] {
        if (const char* env = std::getenv("DSV2_TEST_SEED"))
            return static_cast<uint64_t>(std::strtoull(env, nullptr, 10));
        return static_cast<uint64_t>(std::random_device{}()) << 32 | std::random_device{}();
    }();
    return seed;
}

// One generator per test case, derived from the run's seed and the case's name.
inline std::mt19937_64 makeRng(const char* what) {
    const uint64_t seed = testSeed() ^ std::hash<std::string>{}(what);
    std::printf("[seed] %s: DSV2_TEST_SEED=%llu\n", what, static_cast<unsigned long long>(testSeed()));
    return std::mt19937_64(seed);
}

inline float roundBf16(float v) { return bf16ToFloat(floatToBf16(v)); }

// n values N(0, stddev²), rounded to bf16.
inline std::vector<float> randomBf16(std::mt19937_64& rng, size_t n, float stddev = 1.0f) {
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> v(n);
    for (auto& x : v) x = roundBf16(dist(rng));
    return v;
}

inline std::vector<float> randomFloat(std::mt19937_64& rng, size_t n, float stddev = 1.0f) {
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

inline DeviceBuffer<bf16> uploadBf16(const std::vector<float>& v) {
    std::vector<uint16_t> bits(v.size());
    for (size_t i = 0; i < v.size(); ++i) bits[i] = floatToBf16(v[i]);
    auto buf = DeviceBuffer<bf16>::allocate(v.size());
    REQUIRE_MESSAGE(buf.isOk(), buf.status().toString());
    REQUIRE_OK(buf->copyFromHost(reinterpret_cast<const bf16*>(bits.data()), bits.size()));
    return std::move(buf).value();
}

inline DeviceBuffer<bf16> uploadBf16Bits(const std::vector<uint16_t>& bits) {
    auto buf = DeviceBuffer<bf16>::allocate(bits.size());
    REQUIRE_MESSAGE(buf.isOk(), buf.status().toString());
    REQUIRE_OK(buf->copyFromHost(reinterpret_cast<const bf16*>(bits.data()), bits.size()));
    return std::move(buf).value();
}

template <typename T>
DeviceBuffer<T> upload(const std::vector<T>& v) {
    auto buf = DeviceBuffer<T>::allocate(v.size());
    REQUIRE_MESSAGE(buf.isOk(), buf.status().toString());
    REQUIRE_OK(buf->copyFromHost(v.data(), v.size()));
    return std::move(buf).value();
}

template <typename T>
DeviceBuffer<T> deviceZeros(size_t n) {
    auto buf = DeviceBuffer<T>::allocate(n);
    REQUIRE_MESSAGE(buf.isOk(), buf.status().toString());
    REQUIRE_OK(buf->zero());
    return std::move(buf).value();
}

inline std::vector<float> downloadBf16(const DeviceBuffer<bf16>& buf) {
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<uint16_t> bits(buf.size());
    REQUIRE_OK(buf.copyToHost(reinterpret_cast<bf16*>(bits.data()), bits.size()));
    std::vector<float> v(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) v[i] = bf16ToFloat(bits[i]);
    return v;
}

template <typename T>
std::vector<T> download(const DeviceBuffer<T>& buf) {
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<T> v(buf.size());
    REQUIRE_OK(buf.copyToHost(v.data(), v.size()));
    return v;
}

// y[m][n] = Σ_k a[m][k] · w[n][k] in double (a: m rows of stride lda; w: [n, k] row-major).
inline std::vector<float> referenceLinear(const std::vector<float>& a, int64_t lda, const std::vector<float>& w,
                                          int64_t m, int64_t n, int64_t k) {
    std::vector<float> y(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double s = 0.0;
            for (int64_t q = 0; q < k; ++q) s += static_cast<double>(a[i * lda + q]) * w[j * k + q];
            y[i * n + j] = static_cast<float>(s);
        }
    return y;
}

// DSV2_CUDA_TEST_SMALL=1 (set by scripts/device_check.sh for compute-sanitizer runs, which are
// 10-100x slower) makes the suites skip their long-context cases.
inline bool smallSizesOnly() {
    const char* env = std::getenv("DSV2_CUDA_TEST_SMALL");
    return env && *env && *env != '0';
}

// Checks that no asynchronous kernel error is pending (an out-of-bounds access shows up here).
inline void requireDeviceOk() {
    const cudaError_t err = cudaDeviceSynchronize();
    REQUIRE_MESSAGE(err == cudaSuccess, cudaGetErrorString(err));
}

}  // namespace dsv2::test
