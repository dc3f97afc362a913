#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cuda/pdl.cuh"

namespace dsv2::cuda {

bool pdlEnabledOnCurrentDevice() {
    static const bool allowed = [] {
        const char* env = std::getenv("DSV2_PDL");
        return !(env && std::strcmp(env, "0") == 0);
    }();
    if (!allowed) return false;
    constexpr int kMaxDevices = 64;
    static std::atomic<int8_t> known[kMaxDevices] = {};  // 0 unknown, 1 yes, -1 no
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) {
        (void)cudaGetLastError();
        return false;
    }
    const int8_t k = known[dev].load(std::memory_order_relaxed);
    if (k != 0) return k > 0;
    int major = 0;
    const bool ok = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9;
    (void)cudaGetLastError();
    known[dev].store(ok ? 1 : -1, std::memory_order_relaxed);
    return ok;
}

}  // namespace dsv2::cuda
