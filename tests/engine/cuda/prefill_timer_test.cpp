// DSV2_PREFILL_TIMING's line (prefill_timer.h): what it makes of the GPU's stretches between the
// chunk's events. Host-only; the events themselves are recorded on the GPU machine.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cuda/prefill_timer.h"

using dsv2::cuda::formatPrefillTiming;

TEST_CASE("the prefill timing line sums the GPU stretches and orders the layers apart from both ends") {
    // Before layer 0, four layers (the last one runs on to the end of the chunk).
    const std::vector<float> stretches{0.25f, 1.5f, 0.75f, 1.0f, 3.0f};
    const std::string line = formatPrefillTiming(2048, 2.5, 7.75, stretches);
    CHECK(line ==
          "prefill chunk of 2048 tokens: host enqueue 2.50 ms, host total 7.75 ms, GPU 6.50 ms (before layer 0 "
          "0.250 ms; layers 0..2 min 0.750 / median 1.000 / max 1.500 ms; last layer to the end 3.000 ms)");
}

TEST_CASE("the prefill timing line without layer marks has the totals only, and nothing without stretches") {
    CHECK(formatPrefillTiming(16, 0.125, 1.0, {0.5f, 0.25f}) ==
          "prefill chunk of 16 tokens: host enqueue 0.12 ms, host total 1.00 ms, GPU 0.75 ms");
    CHECK(formatPrefillTiming(16, 0.1, 1.0, {}).empty());
}
