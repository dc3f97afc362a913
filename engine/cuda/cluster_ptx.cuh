#pragma once
// sm_90 PTX for thread-block clusters (mla_decode_sliced.cu): the cluster barrier in its
// arrive/wait halves, a rank's shared::cluster addresses, st.async into another rank's shared
// memory counted on that rank's mbarrier, and mbarriers waited on at cluster scope; plus the GPU-
// scope acquire-release fence. (The wgmma GEMM's CTA-scope mbarriers: wgmma_ptx.cuh.)
// Device-only (.cu files).

#include <cuda_runtime.h>

#include <cstdint>

namespace dsv2::cuda::ptx {

__device__ __forceinline__ void clusterArriveRelaxed() {
    asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void clusterWaitAcquire() {
    asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// GPU-scope acquire-release fence: with the relaxed arrival counter after it, a release pattern;
// before the merge's reads, an acquire pattern. (__threadfence() is fence.sc: a heavier round trip.)
__device__ __forceinline__ void fenceAcqRelGpu() { asm volatile("fence.acq_rel.gpu;\n" ::: "memory"); }
__device__ __forceinline__ uint32_t clusterRank() {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}
// The shared::cluster address of `localAddr` (a shared::cta address) in block `rank` of the cluster.
__device__ __forceinline__ uint32_t mapToRank(uint32_t localAddr, uint32_t rank) {
    uint32_t r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(localAddr), "r"(rank));
    return r;
}
// 16 bytes into (possibly another rank's) shared memory at `addr`; the store's bytes count towards
// the transaction count of the mbarrier at `bar` in that same rank (complete_tx: release at cluster
// scope). No fence and no cluster barrier: the receiver waits on its own mbarrier.
__device__ __forceinline__ void storeAsyncCluster(uint32_t addr, const float4& v, uint32_t bar) {
    asm volatile(
        "st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.f32 [%0], {%1, %2, %3, %4}, [%5];\n" ::"r"(addr),
        "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w), "r"(bar)
        : "memory");
}
__device__ __forceinline__ void mbarrierInit(uint32_t bar, uint32_t arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(arrivals) : "memory");
}
// Makes this thread's mbarrier.init visible to the cluster (before the relaxed cluster arrive).
__device__ __forceinline__ void fenceMbarrierInit() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The phase's one local arrival, with the bytes the phase waits for.
__device__ __forceinline__ void mbarrierArriveExpectTx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Until the phase with parity `parity` has completed; acquire at cluster scope (the bytes came
// from other ranks).
__device__ __forceinline__ void mbarrierWaitParity(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    do {
        asm volatile(
            "{\n"
            ".reg .pred p;\n"
            "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n"
            "selp.u32 %0, 1, 0, p;\n"
            "}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    } while (!done);
}

}  // namespace dsv2::cuda::ptx
