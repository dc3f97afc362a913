#pragma once
// DSV2_PREFILL_TIMING=1: where the time of a multi-token forward (a prompt's prefill chunk) goes,
// printed to stderr once per chunk. The CUDA backend records an event before the chunk, one at
// the start of every layer and one after the last launch, and reads the host clock around the
// enqueue and after its wait. Kernel sums from a profiler leave out the GPU's idle gaps; these do
// not: a layer whose GPU interval exceeds its kernels' sum waited for something (a launch the host
// had not issued yet, a copy), and an enqueue time close to the GPU time says the host paced it.
// A benchmark diagnostic, like DSV2_STEP_TIMING for one-token steps (cuda_decode_graph.cpp).

#include <cuda_runtime.h>

#include <chrono>
#include <string>
#include <vector>

#include "dsv2/status.h"

namespace dsv2::cuda {

// The line PrefillTimer::report gives, from its measurements: the host's enqueue and total times
// and the GPU's stretches between events (before layer 0, one per layer, the last layer to the
// end). Empty without stretches. Host-only, so it is tested without a GPU.
std::string formatPrefillTiming(int tokens, double enqueueMs, double hostMs, const std::vector<float>& stretches);

class PrefillTimer {
public:
    PrefillTimer() = default;
    ~PrefillTimer();
    PrefillTimer(const PrefillTimer&) = delete;
    PrefillTimer& operator=(const PrefillTimer&) = delete;

    // Whether DSV2_PREFILL_TIMING=1 (read once).
    static bool requested();

    // Starts a chunk: the host clock, then the first event.
    Status begin(cudaStream_t stream);
    // One more event (a layer starts): the GPU interval between marks is that stretch's time.
    Status mark(cudaStream_t stream);
    // After the chunk's last launch: the last event and the host's enqueue time.
    Status enqueued(cudaStream_t stream);
    // After the stream has been waited for: the chunk's line (tokens, host enqueue, host total,
    // GPU total, the first stretch, the layers' min / median / max, the last stretch).
    std::string report(int tokens);
    // Drops a chunk whose enqueue failed (no marks may reach a later graph capture).
    void cancel() { m_active = false; }
    bool active() const { return m_active; }

private:
    Status record(cudaStream_t stream);

    std::vector<cudaEvent_t> m_events;  // created on first use, reused by later chunks
    size_t m_used = 0;
    bool m_active = false;
    std::chrono::steady_clock::time_point m_host0{}, m_hostEnqueued{};
};

}  // namespace dsv2::cuda
