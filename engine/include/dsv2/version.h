#pragma once
// What this build is: version, build type, which backends were compiled in.

#include <string>
#include <vector>

#include "dsv2/status.h"

namespace dsv2 {

struct BuildInfo {
    std::string version;    // "0.1.0"
    std::string gitCommit;  // short hash, or "unknown" outside a git checkout
    std::string buildType;  // CMAKE_BUILD_TYPE
    bool cudaCompiled = false;
    std::string cudaVersion;  // toolkit the CUDA code was compiled with, empty without CUDA
};
BuildInfo buildInfo();

struct GpuInfo {
    int index = 0;
    std::string name;  // "NVIDIA H200"
    int computeMajor = 0;
    int computeMinor = 0;
    size_t totalMemoryBytes = 0;
    size_t freeMemoryBytes = 0;
    int multiprocessors = 0;
};

// The GPUs the CUDA runtime sees. Never crashes: without CUDA support compiled in, without a
// driver, or without a device, the Status says which of these it is.
Result<std::vector<GpuInfo>> listGpus();

// Multi-line human-readable text for `--version`: build facts plus the GPUs (or why there are none).
std::string versionReport(const std::string& programName);

}  // namespace dsv2
