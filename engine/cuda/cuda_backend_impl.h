#pragma once
// CudaBackend and CudaSession: the classes behind createCudaBackend (cuda_backend.h). Private to
// engine/cuda: cuda_backend.cpp has setup, sessions and the forward pass; cuda_decode_graph.cpp
// the one-token decode step captured as a CUDA graph.

#include <cuda_runtime.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/backend.h"
#include "cuda/cublas_gemm.h"
#include "cuda/cuda_backend.h"
#include "cuda/device_buffer.h"
#include "cuda/device_weights.h"
#include "cuda/memory_plan.h"
#include "cuda/mla_attention.h"
#include "cuda/moe_layer.h"
#include "cuda/paged_latent_cache.h"
#include "cuda/prefill_timer.h"
#include "cuda/residual_norm.h"

namespace dsv2::cuda {

using bf16 = __nv_bfloat16;

class CudaBackend;

class CudaSession final : public BackendSession {
public:
    CudaSession(CudaBackend& backend, LatentSequence seq, int64_t capacity)
        : m_backend(backend), m_seq(std::move(seq)), m_capacity(capacity) {}
    ~CudaSession() override;
    Result<ForwardResult> forward(std::span<const int32_t> tokens, bool wantAllLogits) override;
    Status truncate(int64_t length) override;
    int64_t length() const override { return m_seq.length; }
    int64_t capacity() const override { return m_capacity; }
    CacheStats cacheStats() const override;

private:
    CudaBackend& m_backend;
    LatentSequence m_seq;
    int64_t m_capacity;
};

class CudaBackend final : public Backend {
public:
    CudaBackend(const ModelConfig& config, const BackendOptions& options) : m_config(config), m_options(options) {}
    ~CudaBackend() override {
        dropDecodeGraph();
        for (cudaEvent_t e : m_stepEvents)
            if (e) cudaEventDestroy(e);
        if (m_stream) cudaStreamDestroy(m_stream);
    }

    Status init(const ModelWeights& weights, const CudaBackendExtras& extras);

    BackendKind kind() const override { return BackendKind::Cuda; }
    std::string description() const override { return "cuda bf16, " + m_deviceName; }
    std::vector<int> devices() const override { return {m_options.device}; }
    Result<std::unique_ptr<BackendSession>> createSession(int64_t maxContext) override;

    Status forwardChunk(LatentSequence& seq, const int32_t* tokens, int T, int64_t firstLogitRow, float* logits,
                        ForwardRouting& routing, int64_t routingToken0);
    // The chunks of one forward call on a session whose blocks are reserved and table synced:
    // logits into `logits` ([rows, vocab]; this GPU's vocabulary columns), routing into `routing`
    // (skipped when its arrays are empty); commits the cache after every chunk.
    Status runChunks(LatentSequence& seq, std::span<const int32_t> tokens, bool wantAllLogits, float* logits,
                     ForwardRouting& routing);
    int64_t cacheTokens() const { return m_plan.shape.cacheTokens; }
    const std::string& deviceName() const { return m_deviceName; }
    cudaStream_t stream() const { return m_stream; }
    std::mutex& mutex() { return m_mutex; }
    PagedLatentCache& cache() { return m_cache; }
    const ModelConfig& config() const { return m_config; }
    int64_t chunkTokens() const { return m_plan.shape.chunkTokens; }
    const std::vector<int32_t>& moeLayers() const { return m_moeLayers; }
    Status selectDevice() {
        DSV2_CUDA_CHECK(cudaSetDevice(m_options.device));
        return Status::ok();
    }

private:
    // Everything a chunk of T tokens at positions seq.length.. puts on the stream: inputs from
    // m_hostIds, the layers, lm_head. One logit row goes to m_hostLogits asynchronously (the decode
    // step: nothing here waits for the host, so it can be captured into a CUDA graph); more rows
    // are copied to `logits` with waits in between.
    Status enqueueForward(LatentSequence& seq, int T, int64_t firstLogitRow, float* logits);
    // Sublayers; a given (active) norm is folded into their first launch where it fits, else run first.
    Status attention(int layer, int T, int64_t pos0, LatentSequence& seq, const ResidualNorm& inputNorm);
    Status feedForward(int layer, int T, size_t moeIndex, const ResidualNorm& postNorm);
    ResidualNorm residualNorm(const bf16* weight, const float* delta, float eps);
    Status normNow(const ResidualNorm& r, int T);
    Status copyDecodeRouting();
    bool useExpanded(int T, int64_t ctx) const;
    Status tap(int stage, int T, int64_t pos0);
    // Several GPUs: m_delta [T, hidden] summed over the ranks (each holds a partial sum).
    Status allReduceDelta(int T);
    // Decode steps as a CUDA graph (cuda_decode_graph.cpp): captured on a session's first step,
    // replayed while the same session decodes. Graphs need every position-dependent value on the
    // device (positions, the MLA split length) and no host waits inside the step.
    bool decodeGraphUsable() const;
    Status parseDecodeSkip(const std::string& list);
    // Whether a one-token step at this context (position + 1) is in the MLA decode's short class.
    static bool decodeContextIsShort(int64_t context) { return context <= kMlaDecodeSlicedMaxContext; }
    Status runDecodeGraph(LatentSequence& seq);
    void dropDecodeGraph();

    const ModelConfig& m_config;
    BackendOptions m_options;
    std::string m_deviceName;
    int m_sms = 0;
    MemoryPlan m_plan;
    parallel::RankSlice m_slice;         // what this GPU holds (the whole model on one GPU)
    const NcclGroup* m_nccl = nullptr;   // several GPUs: sums each sublayer's partial output
    DeviceBuffer<uint8_t> m_expertHere;  // [n_experts]: several GPUs only
    cudaStream_t m_stream = nullptr;
    CublasHandle m_blas;
    DeviceModelWeights m_weights;
    PagedLatentCache m_cache;
    std::mutex m_mutex;  // one forward at a time (shared scratch, stream, allocator)
    std::vector<int32_t> m_moeLayers;
    std::function<void(const ResidualTap&)> m_residualTap;  // tests only
    std::vector<float> m_tapHost;

    MlaGeometry m_mla;
    MoeGeometry m_moe;
    DeviceBuffer<float> m_invFreq;      // [rope/2]
    DeviceBuffer<int32_t> m_tokens;     // [chunk]
    DeviceBuffer<int32_t> m_positions;  // [chunk]
    PinnedBuffer<int32_t> m_hostIds;    // [2·chunk]: tokens then positions
    // The residual stream; one-token steps alternate between m_residual and m_residualAlt (a folded
    // norm writes residual + delta to the other buffer while other blocks still read this one).
    float* m_residualNow = nullptr;
    bool m_foldNorms = false;      // DSV2_FOLD_NORMS=1: norms folded into the next launch (measured slower)
    bool m_moeEarlyShared = true;  // DSV2_MOE_EARLY_SHARED=0: shared expert waits for the router too
    bool m_mlaEarlyTiles = true;   // DSV2_MLA_EARLY_TILES=0: MLA decode loads no tile before its wait
    bool m_fusePrologue = true;    // DSV2_FUSE_PROLOGUE=0: the attention prologue as its own launch
    bool m_moeEarlyDown = true;    // DSV2_MOE_EARLY_DOWN=0: MoE down resolves routing after its wait
    // DSV2_MLA_MERGE_IN_V=n: the v GEMV merges the MLA decode splits up to n of them (0: off; the
    // default, 64, is all the sliced kernel uses: 16K decode 387 → 406 tok/s on an H200, session 9).
    int m_mergeInVMaxSplits = kMlaDecodeMaxDeferredSplits;
    // DSV2_PDL_EARLY_TRIGGER=site,... (0: none; 1: the default): the one-token step's kernels
    // that let the next one launch before their own wait (pdl.cuh, the exception to rule 3; each
    // site's successor reads only weights before its wait). norm and v measured faster (session
    // 9); qkv, mla, oproj and down are there for A/B, not yet measured.
    enum EarlyTriggerSite : unsigned {
        kEarlyNorm = 1,    // every RMSNorm -> the q/kv_a GEMV, the router, lm_head
        kEarlyV = 2,       // the v GEMV -> o_proj
        kEarlyQkv = 4,     // the q/kv_a GEMV -> q_lat (+ prologue)
        kEarlyMla = 8,     // the tensor-core MLA decode kernel -> the v GEMV
        kEarlyOProj = 16,  // o_proj -> the post-attention norm
        kEarlyDown = 32    // MoE down -> the next norm
    };
    unsigned m_earlyTrigger = kEarlyNorm | kEarlyV;
    bool triggersEarly(EarlyTriggerSite site, int T) const { return T == 1 && (m_earlyTrigger & site) != 0; }
    Status parseEarlyTrigger(const std::string& list);
    // DSV2_DECODE_SKIP=stage,... (a diagnostic): stages of a one-token step left out (cuda_backend.cpp).
    enum DecodeStage : unsigned {
        kSkipNorm = 1,
        kSkipQkv = 2,
        kSkipMla = 4,
        kSkipOProj = 8,
        kSkipRouter = 16,
        kSkipMoe = 32,
        kSkipLmHead = 64
    };
    unsigned m_decodeSkip = 0;
    bool skipped(DecodeStage stage, int T) const { return T == 1 && (m_decodeSkip & stage) != 0; }
    DeviceBuffer<float> m_residualAlt;       // [hidden]
    DeviceBuffer<float> m_residual;          // [chunk, hidden]
    DeviceBuffer<float> m_delta;             // [chunk, hidden]: o_proj / FFN output, added by the next norm
    DeviceBuffer<bf16> m_x;                  // [chunk, hidden] normed
    DeviceBuffer<bf16> m_qA;                 // [chunk, q_lora]
    DeviceBuffer<bf16> m_q;                  // [chunk, H, dqk]
    DeviceBuffer<bf16> m_kvA;                // [chunk, kv_lora + rope]
    DeviceBuffer<bf16> m_attn;               // [chunk, H, v]
    DeviceBuffer<float> m_logits;            // [logitRows, vocab]
    PinnedBuffer<int32_t> m_hostRouteIds;    // [n_moe, chunk, top_k]
    PinnedBuffer<float> m_hostRouteWeights;  // [n_moe, chunk, top_k]
    MlaScratch m_mlaScratch;
    FfnScratch m_ffnScratch;
    PinnedBuffer<float> m_hostLogits;          // [vocab]: the one-row lm_head output
    DeviceBuffer<int32_t> m_decodeRouteIds;    // [n_moe, top_k]: a one-token step's routing
    DeviceBuffer<float> m_decodeRouteWeights;  // [n_moe, top_k]
    DeviceBuffer<const bf16*> m_expertTables;  // [n_moe][2][n_experts]: gate|up and down of each expert
    int m_decodeSplits = 1;                    // MLA context splits of a one-token step

    cudaGraph_t m_decodeGraph = nullptr;
    cudaGraphExec_t m_decodeGraphExec = nullptr;
    const int32_t* m_decodeGraphTable = nullptr;  // the session (block table) it was captured for
    bool m_decodeGraphShortContext = false;       // captured for contexts <= kMlaDecodeSlicedMaxContext
    bool m_graphsEnabled = true;                  // DSV2_CUDA_GRAPHS=0 turns them off
    // DSV2_STEP_TIMING=1: CUDA events around each decode-graph replay; the GPU's time per replay
    // against the host's time per step (the gap is host work: sync wake-up, logits copy, sampling)
    // is logged when the graph is dropped. A diagnostic for benchmarks (cuda_decode_graph.cpp).
    PrefillTimer m_prefillTimer;  // DSV2_PREFILL_TIMING=1: multi-token chunks (prefill_timer.h)
    cudaEvent_t m_stepEvents[2] = {nullptr, nullptr};
    double m_stepGpuMs = 0.0;
    int64_t m_stepReplays = 0;
    std::chrono::steady_clock::time_point m_stepHost0{};
    double m_stepHostMs = 0.0;  // from one replay's launch to the next one's
};

}  // namespace dsv2::cuda
