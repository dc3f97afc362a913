#include "cuda/nccl_comm.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "cuda/cuda_check.h"

#if DSV2_HAVE_NCCL
#include <nccl.h>
#endif

namespace dsv2::cuda {

#if DSV2_HAVE_NCCL
namespace {

// The NCCL entry points the engine uses, resolved once from libnccl.so.2.
struct NcclApi {
    ncclResult_t (*commInitAll)(ncclComm_t*, int, const int*) = nullptr;
    ncclResult_t (*commDestroy)(ncclComm_t) = nullptr;
    ncclResult_t (*allReduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
                              cudaStream_t) = nullptr;
    const char* (*getErrorString)(ncclResult_t) = nullptr;
    ncclResult_t (*getVersion)(int*) = nullptr;
    std::string error;  // why it could not be loaded
};

const NcclApi& ncclApi() {
    static NcclApi api;
    static std::once_flag once;
    std::call_once(once, [] {
        const char* env = std::getenv("DSV2_NCCL_LIBRARY");
        const std::string file = env && *env ? env : "libnccl.so.2";
        void* lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            const char* why = dlerror();
            api.error = "NCCL is needed to run a model on several GPUs, and " + file + " could not be loaded (" +
                        (why ? why : "unknown error") +
                        "); install NVIDIA's NCCL (libnccl2) or set DSV2_NCCL_LIBRARY to the library's path";
            return;
        }
        auto sym = [&](const char* name) { return dlsym(lib, name); };
        api.commInitAll = reinterpret_cast<decltype(api.commInitAll)>(sym("ncclCommInitAll"));
        api.commDestroy = reinterpret_cast<decltype(api.commDestroy)>(sym("ncclCommDestroy"));
        api.allReduce = reinterpret_cast<decltype(api.allReduce)>(sym("ncclAllReduce"));
        api.getErrorString = reinterpret_cast<decltype(api.getErrorString)>(sym("ncclGetErrorString"));
        api.getVersion = reinterpret_cast<decltype(api.getVersion)>(sym("ncclGetVersion"));
        if (!api.commInitAll || !api.commDestroy || !api.allReduce || !api.getErrorString || !api.getVersion) {
            api.error = file + " lacks the NCCL functions the engine needs (ncclCommInitAll, ncclAllReduce…)";
            api.commInitAll = nullptr;
        }
    });
    return api;
}

Status ncclStatus(ncclResult_t r, const std::string& what) {
    if (r == ncclSuccess) return Status::ok();
    return Status(StatusCode::Internal, what + ": " + ncclApi().getErrorString(r));
}

}  // namespace

bool ncclCompiledIn() { return true; }

Result<std::unique_ptr<NcclGroup>> NcclGroup::create(const std::vector<int>& devices) {
    const NcclApi& api = ncclApi();
    if (!api.commInitAll) return Status(StatusCode::Unavailable, api.error);
    if (devices.size() < 2) return Status(StatusCode::InvalidArgument, "NCCL groups need at least two GPUs");
    std::unique_ptr<NcclGroup> group(new NcclGroup());
    std::vector<ncclComm_t> comms(devices.size(), nullptr);
    DSV2_RETURN_IF_ERROR(
        ncclStatus(api.commInitAll(comms.data(), static_cast<int>(devices.size()), devices.data()), "ncclCommInitAll"));
    for (ncclComm_t c : comms) group->m_comms.push_back(c);
    return group;
}

NcclGroup::~NcclGroup() {
    for (void* c : m_comms)
        if (c) ncclApi().commDestroy(static_cast<ncclComm_t>(c));
}

Status NcclGroup::allReduceSum(int rank, float* data, size_t count, cudaStream_t stream) const {
    return ncclStatus(ncclApi().allReduce(data, data, count, ncclFloat32, ncclSum,
                                          static_cast<ncclComm_t>(m_comms.at(static_cast<size_t>(rank))), stream),
                      "ncclAllReduce");
}

std::string NcclGroup::version() const {
    int v = 0;
    if (ncclApi().getVersion(&v) != ncclSuccess) return "NCCL";
    // NCCL_VERSION(X,Y,Z) = X*10000 + Y*100 + Z since 2.9
    return "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

#else  // no nccl.h at build time

bool ncclCompiledIn() { return false; }

Result<std::unique_ptr<NcclGroup>> NcclGroup::create(const std::vector<int>&) {
    return Status(StatusCode::Unavailable,
                  "this build has no NCCL support (nccl.h was not found when it was built), so a model runs on one "
                  "GPU only; rebuild with NCCL's headers installed (libnccl-dev) to use several");
}
NcclGroup::~NcclGroup() = default;
Status NcclGroup::allReduceSum(int, float*, size_t, cudaStream_t) const {
    return Status(StatusCode::Unavailable, "no NCCL in this build");
}
std::string NcclGroup::version() const { return "no NCCL"; }

#endif

}  // namespace dsv2::cuda
