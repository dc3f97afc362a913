// GPU smoke test: the runtime lists the device and a host->device->host copy round-trips.
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <vector>

#include "gpu_skip.h"

TEST_CASE("the GPU is listed and memory round-trips") {
    dsv2::test::requireGpuOrSkip("gpu_device_test");
    auto gpus = dsv2::listGpus();
    REQUIRE(gpus.isOk());
    REQUIRE_FALSE(gpus->empty());
    CHECK(gpus->front().totalMemoryBytes > 0);
    CHECK(gpus->front().computeMajor >= 7);

    std::vector<float> host(1 << 20);
    for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i) * 0.5f;
    float* dev = nullptr;
    REQUIRE(cudaMalloc(&dev, host.size() * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpy(dev, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    std::vector<float> back(host.size());
    REQUIRE(cudaMemcpy(back.data(), dev, back.size() * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    cudaFree(dev);
    CHECK(back == host);
}
