#pragma once
// A fact about each GPU that a launch path asks for at every launch (whether a kernel's sm_90 image
// and cluster launch run there, how many of its clusters are resident at once), worked out with CUDA
// queries the first time per device and then read with one relaxed atomic load.
//
// Declare one as a function-local static: it is constant-initialised, so there is no guard either.
// Two threads asking first at once both work the fact out and store the same value; no lock.

#include <cuda_runtime_api.h>

#include <atomic>

namespace dsv2::cuda {

// Slots: facts kept side by side per device (one per kernel variant, say).
// A fact is an int ≥ 0, and 0 must read as "no": it is also the answer where the device is unknown.
template <int Slots = 1>
class PerDeviceCache {
public:
    static constexpr int kMaxDevices = 64;

    // The fact for `device`: compute(device) the first time, the stored value after.
    template <class Compute>
    int get(int device, Compute&& compute, int slot = 0) {
        if (device < 0 || device >= kMaxDevices || slot < 0 || slot >= Slots) return 0;
        std::atomic<int>& entry = m_known[device][slot];
        const int known = entry.load(std::memory_order_relaxed);
        if (known != 0) return known - 1;  // stored + 1, so that 0 means not yet known
        const int value = compute(device);
        entry.store(value + 1, std::memory_order_relaxed);
        return value;
    }

    // The same for the current device. A failed query is cleared (cudaGetLastError) so the next
    // launch check does not report it; nothing is cleared once the fact is known, so an error a
    // caller's earlier launch left stays for that caller's own check.
    template <class Compute>
    int getForCurrentDevice(Compute&& compute, int slot = 0) {
        int device = -1;
        if (cudaGetDevice(&device) != cudaSuccess) {
            (void)cudaGetLastError();
            return 0;
        }
        return get(
            device,
            [&](int d) {
                const int value = compute(d);
                (void)cudaGetLastError();
                return value;
            },
            slot);
    }

private:
    std::atomic<int> m_known[kMaxDevices][Slots] = {};
};

}  // namespace dsv2::cuda
