#pragma once
// What the kernels launched as thread-block clusters (the MLA decode kernels, the fused router) share
// on the host side: the launch attribute, and whether such a kernel runs on a device at all.

#include <cuda_runtime_api.h>

#include <cstddef>

namespace dsv2::cuda {

// The launch attribute for clusters of `blocks` blocks along x.
cudaLaunchAttribute clusterLaunchAttribute(int blocks);

// Whether `kernel`, launched in clusters of `clusterBlocks` blocks of `threads` threads with
// `smemBytes` of dynamic shared memory, runs on `device`: cluster launch supported, an sm_90 image of
// it built in, that much shared memory granted (the attribute is set here, once, for all launches).
// 0 where it does not run, else 1 + how many of its clusters are resident at once, as an upper
// bound for split counts; 1 + 0 where the occupancy query cannot tell (the kernel still runs).
// The form suits PerDeviceCache (per_device_cache.h), which keeps it per device.
int clusterKernelFit(const void* kernel, int device, int clusterBlocks, int threads, size_t smemBytes);

}  // namespace dsv2::cuda
