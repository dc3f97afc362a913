#include <cstdlib>
#include <cstring>

#include "cuda/pdl.cuh"

#include "cuda/per_device_cache.h"

namespace dsv2::cuda {

bool pdlEnabledOnCurrentDevice() {
    static const bool allowed = [] {
        const char* env = std::getenv("DSV2_PDL");
        return !(env && std::strcmp(env, "0") == 0);
    }();
    if (!allowed) return false;
    static PerDeviceCache<> hopper;
    return hopper.getForCurrentDevice([](int dev) {
        int major = 0;
        return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9;
    }) != 0;
}

}  // namespace dsv2::cuda
