#pragma once
// Programmatic dependent launch (PDL, sm_90+): a one-token decode step is a chain of ~12 small
// kernels per layer, each waiting for the one before. Launched normally, every kernel pays the
// launch and ramp-up while the GPU idles, and its first weight loads start only then. Launched
// with PDL, a kernel's blocks are scheduled while its predecessor is still finishing; they may
// load what does not depend on the predecessor (their weights) and then wait for it.
//
// The rules every kernel launched through launchPdl() follows:
//   1. Before pdlWaitForPrevious() it touches only memory that no earlier kernel of the stream
//      writes (weights, constant tables): reading activations, caches, counters or writing
//      anything before the wait races with the predecessor.
//   2. Every thread calls pdlWaitForPrevious() before it returns, also on early-exit paths (a
//      grid whose blocks all left without waiting could complete before its predecessor, and the
//      next kernel, which waits only for this one, would then race with that predecessor).
//   3. pdlLaunchNext() comes after the wait (so at most two kernels overlap: the next one may
//      only prefetch, by rule 1). Without it the next kernel starts when this one ends, as usual.
// A consequence the caller may use, explicitly and per launch (MoeDecodeParams::x_ready_before_wait):
// when kernel B follows kernel A and A follows these rules, B starts only after every block of A
// has passed its wait, i.e. after the kernel before A has completed and its writes are visible. So
// what the kernel two back wrote may be read before the wait, and what only kernels two or more
// back read may be written; only the immediate predecessor's traffic must wait.
// The one exception to rule 3, per launch and stated by its caller (launch_next_early in
// RmsNormParams, GemvParams, MlaAbsorbGemvParams, MlaDecodeParams; MoeDecodeParams::
// down_launches_next_early; the backend's DSV2_PDL_EARLY_TRIGGER sites): a kernel whose successor reads nothing but
// weights before its own wait, and does not rely on the consequence above across this kernel, may let it launch before
// this kernel's own wait (pdlWaitLaunchingNext). The successor's weight loads then overlap the kernel before this one
// too (a norm or the v GEMV: short kernels before long weight streams); three kernels overlap, but the successor still
// waits for this one, which waits for its own predecessor, so no data is read early. Kernels launched without the
// attribute (cuBLAS, memcpy, older GPUs) serialise as usual, and both device calls are no-ops there. DSV2_PDL=0 turns
// the attribute off (A/B measurement).

#include <cuda_runtime.h>

#include <utility>

namespace dsv2::cuda {

__device__ __forceinline__ void pdlWaitForPrevious() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdlLaunchNext() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The wait, with the next kernel's launch after it (rule 3) or, with `early`, before it (the
// exception above).
__device__ __forceinline__ void pdlWaitLaunchingNext(bool early) {
    if (early) pdlLaunchNext();
    pdlWaitForPrevious();
    if (!early) pdlLaunchNext();
}

// Whether kernels on the current device are launched with the PDL attribute: compute capability
// 9.0+ and DSV2_PDL not "0". Cached per device (host code; defined in pdl.cu).
bool pdlEnabledOnCurrentDevice();

// kernel<<<grid, block, smem, stream>>>(args...) with the PDL attribute where enabled, plus up to
// three extra launch attributes (e.g. a cluster dimension). Returns the launch's error code.
template <typename... KernelArgs, typename... Args>
cudaError_t launchPdlWith(const cudaLaunchAttribute* extra, unsigned nExtra, void (*kernel)(KernelArgs...), dim3 grid,
                          dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
    cudaLaunchAttribute attrs[4];
    unsigned n = 0;
    for (unsigned i = 0; i < nExtra && n < 3; ++i) attrs[n++] = extra[i];
    if (pdlEnabledOnCurrentDevice()) {
        attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attrs[n].val.programmaticStreamSerializationAllowed = 1;
        ++n;
    }
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = attrs;
    cfg.numAttrs = n;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

// kernel<<<grid, block, smem, stream>>>(args...) with the PDL attribute where enabled.
template <typename... KernelArgs, typename... Args>
cudaError_t launchPdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                      Args&&... args) {
    return launchPdlWith(nullptr, 0u, kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

}  // namespace dsv2::cuda
