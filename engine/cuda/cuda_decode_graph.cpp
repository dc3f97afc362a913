// The one-token decode step as a CUDA graph. A step is ~20 small launches per layer (≈560 for
// V2-Lite); launched one by one from the host, their overhead alone would cap decode far below
// the memory roofline. enqueueForward() with T == 1 has no host waits and reads everything that
// changes between steps (token, position, MLA split lengths) from device or pinned memory, so the
// whole step is captured once and replayed: the host writes the token and position into pinned
// memory, launches the graph, waits, and reads the logits and routing from pinned memory.
//
// A graph bakes in the session's block table pointer (one per session, fixed capacity), so it is
// captured again when another session decodes. The residual tap (tests) and a forced expanded
// MLA form (position-dependent host logic) run without graphs, as does DSV2_CUDA_GRAPHS=0.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_check.h"
#include "dsv2/log.h"

namespace dsv2::cuda {

bool CudaBackend::decodeGraphUsable() const {
    return m_graphsEnabled && !m_residualTap && m_options.mlaForm != MlaForm::Expanded;
}

namespace {
bool stepTimingRequested() {
    static const bool on = [] {
        const char* env = std::getenv("DSV2_STEP_TIMING");
        return env && std::string(env) == "1";
    }();
    return on;
}
}  // namespace

void CudaBackend::dropDecodeGraph() {
    // Printed to stderr whatever the log sink: an opt-in diagnostic (DSV2_STEP_TIMING=1) for
    // benchmark runs, which install no sink (info messages would be dropped).
    if (m_stepReplays > 1)
        std::fprintf(stderr,
                     "dsv2: cuda backend: %lld decode-graph replays, GPU %.1f us per replay, host %.1f us from one "
                     "replay's launch to the next (DSV2_STEP_TIMING)\n",
                     static_cast<long long>(m_stepReplays), 1e3 * m_stepGpuMs / static_cast<double>(m_stepReplays - 1),
                     1e3 * m_stepHostMs / static_cast<double>(m_stepReplays - 1));
    m_stepGpuMs = m_stepHostMs = 0.0;
    m_stepReplays = 0;
    if (m_decodeGraphExec) cudaGraphExecDestroy(m_decodeGraphExec);
    if (m_decodeGraph) cudaGraphDestroy(m_decodeGraph);
    m_decodeGraphExec = nullptr;
    m_decodeGraph = nullptr;
    m_decodeGraphTable = nullptr;
}

Status CudaBackend::runDecodeGraph(LatentSequence& seq) {
    // The MLA decode kernel differs on either side of kMlaDecodeSlicedMaxContext (mla_decode.h):
    // a conversation that grows past it, or is rewound below it, gets the step captured again.
    const bool shortContext = decodeContextIsShort(seq.length + 1);
    if (!m_decodeGraphExec || m_decodeGraphTable != seq.deviceTable.data() ||
        m_decodeGraphShortContext != shortContext) {
        dropDecodeGraph();
        DSV2_CUDA_CHECK(cudaStreamBeginCapture(m_stream, cudaStreamCaptureModeRelaxed));
        Status enqueued = enqueueForward(seq, 1, 0, nullptr);
        cudaGraph_t graph = nullptr;
        const cudaError_t ended = cudaStreamEndCapture(m_stream, &graph);
        if (!enqueued.isOk()) {
            if (graph) cudaGraphDestroy(graph);
            (void)cudaGetLastError();
            return enqueued.withContext("capturing the decode step");
        }
        DSV2_CUDA_CHECK(ended);
        m_decodeGraph = graph;
        DSV2_CUDA_CHECK(cudaGraphInstantiate(&m_decodeGraphExec, m_decodeGraph, 0));
        m_decodeGraphTable = seq.deviceTable.data();
        m_decodeGraphShortContext = shortContext;
        size_t nodes = 0;
        (void)cudaGraphGetNodes(m_decodeGraph, nullptr, &nodes);
        logDebug("cuda backend: decode step captured as a CUDA graph of " + std::to_string(nodes) + " nodes");
    }
    const bool timed = stepTimingRequested();
    if (timed) {
        if (!m_stepEvents[0]) {
            DSV2_CUDA_CHECK(cudaEventCreate(&m_stepEvents[0]));
            DSV2_CUDA_CHECK(cudaEventCreate(&m_stepEvents[1]));
        }
        const auto now = std::chrono::steady_clock::now();
        if (m_stepReplays > 0) {  // the previous replay has been waited for (forwardChunk syncs)
            float ms = 0.0f;
            if (cudaEventElapsedTime(&ms, m_stepEvents[0], m_stepEvents[1]) == cudaSuccess) m_stepGpuMs += ms;
            m_stepHostMs += std::chrono::duration<double, std::milli>(now - m_stepHost0).count();
        }
        m_stepHost0 = now;
        DSV2_CUDA_CHECK(cudaEventRecord(m_stepEvents[0], m_stream));
    }
    DSV2_CUDA_CHECK(cudaGraphLaunch(m_decodeGraphExec, m_stream));
    if (timed) {
        DSV2_CUDA_CHECK(cudaEventRecord(m_stepEvents[1], m_stream));
        ++m_stepReplays;
    }
    return Status::ok();
}

}  // namespace dsv2::cuda
