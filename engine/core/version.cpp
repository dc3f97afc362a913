#include "dsv2/version.h"

#include <cstdio>
#include <sstream>

#include "core/build_config.h"

namespace dsv2 {

#if !DSV2_WITH_CUDA
Result<std::vector<GpuInfo>> listGpus() {
    return Status(StatusCode::Unavailable,
                  "this build has no CUDA support (configured with DSV2_CUDA=OFF); using the CPU backend");
}
#endif

BuildInfo buildInfo() {
    BuildInfo info;
    info.version = DSV2_VERSION_STRING;
    info.gitCommit = DSV2_GIT_COMMIT;
    info.buildType = DSV2_BUILD_TYPE;
    info.cudaCompiled = DSV2_WITH_CUDA != 0;
    info.cudaVersion = DSV2_CUDA_VERSION_STRING;
    return info;
}

std::string versionReport(const std::string& programName) {
    const BuildInfo info = buildInfo();
    std::ostringstream out;
    out << programName << ' ' << info.version << " (commit " << info.gitCommit << ", " << info.buildType << " build)\n";
    out << "CUDA support: "
        << (info.cudaCompiled ? "compiled in (CUDA " + info.cudaVersion + ")" : std::string("not compiled in")) << '\n';
    auto gpus = listGpus();
    if (!gpus.isOk()) {
        out << "GPUs: none usable: " << gpus.status().message() << '\n';
    } else if (gpus->empty()) {
        out << "GPUs: none found\n";
    } else {
        for (const GpuInfo& gpu : *gpus) {
            char line[256];
            std::snprintf(line, sizeof line, "GPU %d: %s (compute %d.%d, %d SMs, %.1f GiB, %.1f GiB free)\n", gpu.index,
                          gpu.name.c_str(), gpu.computeMajor, gpu.computeMinor, gpu.multiprocessors,
                          static_cast<double>(gpu.totalMemoryBytes) / (1ull << 30),
                          static_cast<double>(gpu.freeMemoryBytes) / (1ull << 30));
            out << line;
        }
    }
    return out.str();
}

}  // namespace dsv2
