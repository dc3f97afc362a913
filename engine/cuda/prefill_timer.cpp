#include "cuda/prefill_timer.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda/cuda_check.h"

namespace dsv2::cuda {

PrefillTimer::~PrefillTimer() {
    for (cudaEvent_t e : m_events) cudaEventDestroy(e);
}

bool PrefillTimer::requested() {
    static const bool on = [] {
        const char* env = std::getenv("DSV2_PREFILL_TIMING");
        return env && std::strcmp(env, "1") == 0;
    }();
    return on;
}

Status PrefillTimer::record(cudaStream_t stream) {
    if (m_used == m_events.size()) {
        cudaEvent_t e = nullptr;
        DSV2_CUDA_CHECK(cudaEventCreate(&e));
        m_events.push_back(e);
    }
    DSV2_CUDA_CHECK(cudaEventRecord(m_events[m_used], stream));
    ++m_used;
    return Status::ok();
}

Status PrefillTimer::begin(cudaStream_t stream) {
    m_used = 0;
    m_active = true;
    m_host0 = std::chrono::steady_clock::now();
    return record(stream);
}

Status PrefillTimer::mark(cudaStream_t stream) { return m_active ? record(stream) : Status::ok(); }

Status PrefillTimer::enqueued(cudaStream_t stream) {
    if (!m_active) return Status::ok();
    DSV2_RETURN_IF_ERROR(record(stream));
    m_hostEnqueued = std::chrono::steady_clock::now();
    return Status::ok();
}

std::string PrefillTimer::report(int tokens) {
    if (!m_active) return {};
    m_active = false;
    if (m_used < 2) return {};
    const auto now = std::chrono::steady_clock::now();
    const double enqueueMs = std::chrono::duration<double, std::milli>(m_hostEnqueued - m_host0).count();
    const double hostMs = std::chrono::duration<double, std::milli>(now - m_host0).count();
    std::vector<float> stretch(m_used - 1, 0.0f);
    for (size_t i = 0; i + 1 < m_used; ++i)
        if (cudaEventElapsedTime(&stretch[i], m_events[i], m_events[i + 1]) != cudaSuccess) {
            (void)cudaGetLastError();
            return {};
        }
    return formatPrefillTiming(tokens, enqueueMs, hostMs, stretch);
}

std::string formatPrefillTiming(int tokens, double enqueueMs, double hostMs, const std::vector<float>& stretches) {
    if (stretches.empty()) return {};
    double gpuMs = 0.0;
    for (float s : stretches) gpuMs += s;
    char line[512];
    if (stretches.size() < 3) {
        std::snprintf(line, sizeof line,
                      "prefill chunk of %d tokens: host enqueue %.2f ms, host total %.2f ms, GPU %.2f ms", tokens,
                      enqueueMs, hostMs, gpuMs);
        return line;
    }
    // [0] before the first layer (uploads, embedding); [1, n-1) every layer but the last, whose
    // stretch runs on to the end (final norm, lm_head, logits copy) and is reported apart.
    std::vector<float> layers(stretches.begin() + 1, stretches.end() - 1);
    std::sort(layers.begin(), layers.end());
    std::snprintf(line, sizeof line,
                  "prefill chunk of %d tokens: host enqueue %.2f ms, host total %.2f ms, GPU %.2f ms (before layer "
                  "0 %.3f ms; layers 0..%zu min %.3f / median %.3f / max %.3f ms; last layer to the end %.3f ms)",
                  tokens, enqueueMs, hostMs, gpuMs, stretches.front(), layers.size() - 1, layers.front(),
                  layers[layers.size() / 2], layers.back(), stretches.back());
    return line;
}

}  // namespace dsv2::cuda
