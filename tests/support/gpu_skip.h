#pragma once
// GPU suites call requireGpuOrSkip() first: without a GPU the whole suite exits 77, which CTest
// reports as "skipped" (SKIP_RETURN_CODE), with the reason on stderr.
#include <cstdio>
#include <cstdlib>

#include "dsv2/version.h"

namespace dsv2::test {

inline void requireGpuOrSkip(const char* suite) {
    auto gpus = dsv2::listGpus();
    if (!gpus.isOk() || gpus->empty()) {
        std::fprintf(stderr, "%s: skipped, no GPU: %s\n", suite,
                     gpus.isOk() ? "the CUDA runtime lists no device" : gpus.status().message().c_str());
        std::exit(77);
    }
}

}  // namespace dsv2::test
