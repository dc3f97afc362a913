#include "cuda/cluster_launch.h"

#include <algorithm>

namespace dsv2::cuda {

cudaLaunchAttribute clusterLaunchAttribute(int blocks) {
    cudaLaunchAttribute a{};
    a.id = cudaLaunchAttributeClusterDimension;
    a.val.clusterDim.x = static_cast<unsigned>(blocks);
    a.val.clusterDim.y = 1;
    a.val.clusterDim.z = 1;
    return a;
}

int clusterKernelFit(const void* kernel, int device, int clusterBlocks, int threads, size_t smemBytes) {
    int clusters = 0, optin = 0;
    cudaFuncAttributes attr{};
    const bool runs = cudaDeviceGetAttribute(&clusters, cudaDevAttrClusterLaunch, device) == cudaSuccess && clusters &&
                      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) == cudaSuccess &&
                      static_cast<size_t>(optin) >= smemBytes && cudaFuncGetAttributes(&attr, kernel) == cudaSuccess &&
                      attr.binaryVersion >= 90 &&
                      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smemBytes)) == cudaSuccess;
    if (!runs) return 0;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(static_cast<unsigned>(clusterBlocks * 64));  // any grid of whole clusters
    cfg.blockDim = dim3(static_cast<unsigned>(threads));
    cfg.dynamicSmemBytes = smemBytes;
    cudaLaunchAttribute cluster = clusterLaunchAttribute(clusterBlocks);
    cfg.attrs = &cluster;
    cfg.numAttrs = 1;
    int active = 0;
    if (cudaOccupancyMaxActiveClusters(&active, kernel, &cfg) != cudaSuccess) active = 0;
    return 1 + std::max(active, 0);
}

}  // namespace dsv2::cuda
