// listGpus() for CUDA builds: asks the runtime, never crashes when there is no driver or device.
#include <string>
#include <vector>

#include "cuda/cuda_check.h"
#include "dsv2/version.h"

namespace dsv2 {

Result<std::vector<GpuInfo>> listGpus() {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaErrorNoDevice) {
        return Status(StatusCode::Unavailable, "no NVIDIA GPU found (cudaGetDeviceCount: no CUDA-capable device)");
    }
    if (err == cudaErrorInsufficientDriver) {
        return Status(StatusCode::Unavailable,
                      "no usable NVIDIA driver (the installed driver is missing or older than this CUDA runtime)");
    }
    if (err != cudaSuccess) {
        return Status(StatusCode::Unavailable, std::string("the CUDA runtime found no GPU: ") + cudaGetErrorName(err) +
                                                   " (" + cudaGetErrorString(err) + ")");
    }
    std::vector<GpuInfo> gpus;
    int current = 0;
    const bool restore = cudaGetDevice(&current) == cudaSuccess;  // the caller's device stays current
    for (int i = 0; i < count; ++i) {
        cudaDeviceProp prop{};
        DSV2_CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
        GpuInfo info;
        info.index = i;
        info.name = prop.name;
        info.computeMajor = prop.major;
        info.computeMinor = prop.minor;
        info.totalMemoryBytes = prop.totalGlobalMem;
        info.multiprocessors = prop.multiProcessorCount;
        size_t freeBytes = 0, totalBytes = 0;
        if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&freeBytes, &totalBytes) == cudaSuccess) {
            info.freeMemoryBytes = freeBytes;
        }
        gpus.push_back(std::move(info));
    }
    if (restore) (void)cudaSetDevice(current);
    return gpus;
}

}  // namespace dsv2
