#pragma once
// NCCL communicators for the GPUs of one host (multi_gpu_backend.h), with NCCL loaded at run time.
//
// libnccl.so.2 is opened with dlopen when a model is first spread over several GPUs, so the engine,
// the CLI and the Debian package work without NCCL (one GPU needs none); asking for several GPUs
// without it fails with a message saying what to install. DSV2_NCCL_LIBRARY names another file.
// nccl.h is only needed at build time (CMake finds it in the CUDA toolkit or DSV2_NCCL_INCLUDE_DIR);
// without it the multi-GPU path is compiled out and says so.

#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "dsv2/status.h"

namespace dsv2::cuda {

class NcclGroup {
public:
    // One communicator per device (ncclCommInitAll: one process, these devices, rank i = devices[i]).
    static Result<std::unique_ptr<NcclGroup>> create(const std::vector<int>& devices);
    ~NcclGroup();
    NcclGroup(const NcclGroup&) = delete;
    NcclGroup& operator=(const NcclGroup&) = delete;

    int size() const { return static_cast<int>(m_comms.size()); }
    // In-place sum of `count` floats across all ranks, enqueued on `stream` (capturable in a CUDA
    // graph). Every rank must call it with the same count, in the same order.
    Status allReduceSum(int rank, float* data, size_t count, cudaStream_t stream) const;
    std::string version() const;  // "NCCL 2.27.3"

private:
    NcclGroup() = default;
    std::vector<void*> m_comms;  // ncclComm_t
};

// True when this build can use NCCL at all (nccl.h was found).
bool ncclCompiledIn();

}  // namespace dsv2::cuda
