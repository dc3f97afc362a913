// How the MLA decode kernels split a context (mla_decode.h): the host's plan for contexts known on
// the host, and the split that a CUDA-graph step derives on the device from its position (the host
// computes the same numbers). Host-only arithmetic, so this suite runs without a GPU; the kernels
// that use these splits are checked in cuda_mla_test.
#include <doctest/doctest.h>

#include <cstdint>

#include "cuda/mla_decode.h"

using namespace dsv2;

TEST_CASE("decode split plan covers the context and respects the limits") {
    for (int64_t ctx : {1, 31, 32, 33, 255, 256, 257, 4096, 8200, 32768, 163840}) {
        for (int maxSplits : {1, 8, 64}) {
            const auto plan = cuda::planMlaDecode(ctx, 1, 16, 132, maxSplits);
            CAPTURE(ctx);
            CAPTURE(maxSplits);
            CHECK(plan.split_len % 32 == 0);
            CHECK(plan.n_splits >= 1);
            CHECK(plan.n_splits <= maxSplits);
            CHECK(plan.n_splits * plan.split_len >= ctx);
            CHECK((plan.n_splits - 1) * plan.split_len < ctx);  // no empty trailing split
        }
    }
}

TEST_CASE("device-side decode splits: few at short contexts, up to the maximum at long ones") {
    for (int64_t ctx : {1, 2, 63, 64, 65, 255, 1000, 1024, 1025, 4096, 16384, 16448, 163840}) {
        for (int maxSplits : {1, 7, 64, 132}) {
            CAPTURE(ctx);
            CAPTURE(maxSplits);
            const auto s = cuda::mlaDecodeDeviceSplits(ctx, maxSplits);
            CHECK(s.split_len % 64 == 0);
            CHECK(s.split_len >= cuda::kMlaDecodeMinSplitLen);
            CHECK(s.active >= 1);
            CHECK(s.active <= maxSplits);
            CHECK(s.active * s.split_len >= ctx);
            CHECK((s.active - 1) * s.split_len < ctx);  // every used split has work
            if (ctx >= 64 * static_cast<int64_t>(maxSplits)) CHECK(2 * s.active >= maxSplits);
        }
    }
    CHECK(cuda::mlaDecodeDeviceSplits(1024, 132).active == 16);  // Lite at 1K: 16 one-tile splits
    CHECK(cuda::mlaDecodeDeviceSplits(16384, 132).split_len == 128);
    CHECK(cuda::mlaDecodeDeviceSplits(16384, 64).split_len == 256);
    CHECK(cuda::mlaDecodeSplitsForDevice(16, 132) == 132);
    CHECK(cuda::mlaDecodeSplitsForDevice(20, 132) == 66);
    CHECK(cuda::mlaDecodeSplitsForDevice(128, 132) == 16);
}
