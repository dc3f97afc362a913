#pragma once
// The seam every compute backend implements (CPU reference, CUDA). A Backend is made once per
// loaded model from its ModelConfig + ModelWeights; it makes BackendSessions, one per conversation.
// A session owns the latent KV cache and runs the model's forward pass over new tokens. Nothing else
// lives below this seam: sampling, stop conditions, streaming events, cancel, timing and the token
// history are engine/core's job and are shared by every backend.
//
// Conventions: plain structs, sizes in elements (not bytes) unless the name says Bytes, row-major
// flat vectors with a shape comment. A backend never throws across this seam and never exits.
//
// The latent KV cache holds, per token per layer, exactly [c_kv | k_pe]: kvLoraRank + qkRopeHeadDim
// values (576 on V2), c_kv after kv_a_layernorm and k_pe after RoPE. Nothing else is cached (no
// expanded keys/values, no hidden states), so every backend can be checked against the same numbers.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dsv2/progress.h"
#include "dsv2/status.h"
#include "model/model_config.h"
#include "model/model_weights.h"

namespace dsv2 {

enum class BackendKind { Cpu, Cuda };
const char* backendKindName(BackendKind kind);  // "cpu", "cuda"

// Which attention form a backend uses. Both give the same numbers (up to rounding); Auto lets the
// backend pick (the CPU backend: expanded for multi-token prefill, absorbed for one-token decode).
// Forcing one exists for the agreement tests and for benchmarks.
enum class MlaForm {
    Auto,
    Expanded,  // MHA: k_nope/v expanded per head from c_kv with kv_b_proj
    Absorbed,  // MQA over [c_kv | k_pe]: W_UK folded into q, W_UV applied after the weighted sum
};

struct BackendOptions {
    int threads = 0;           // CPU worker threads for matrix work; 0 = all hardware threads
    int device = 0;            // CUDA device index
    std::vector<int> devices;  // several: tensor/expert parallel over these (see EngineOptions)
    int64_t maxContext = 0;    // default session capacity in tokens; 0 = config.maxPositionEmbeddings
    MlaForm mlaForm = MlaForm::Auto;
    ProgressCallback loadProgress;  // see EngineOptions::loadProgress
};

// Router decisions for the tokens of one forward call: for each token, for each MoE layer, the
// top-k routed experts and the weights they were applied with (after norm_topk_prob and
// routed_scaling_factor, i.e. exactly the factor the expert output was multiplied by), in the
// router's selection order (descending probability).
struct ForwardRouting {
    std::vector<int32_t> moeLayers;  // (n_moe): model layer index of each MoE layer, ascending
    int32_t topK = 0;                // num_experts_per_tok
    int64_t nTokens = 0;
    std::vector<int32_t> expertIds;  // (nTokens, n_moe, topK)
    std::vector<float> weights;      // (nTokens, n_moe, topK)

    int64_t index(int64_t token, int64_t moeLayer, int64_t k) const {
        return (token * static_cast<int64_t>(moeLayers.size()) + moeLayer) * topK + k;
    }
};

struct ForwardResult {
    int64_t nTokens = 0;  // tokens consumed by this call
    int64_t nRows = 0;    // logit rows: nTokens when all logits were asked for, else 1 (the last)
    int64_t vocab = 0;
    std::vector<float> logits;  // (nRows, vocab), fp32, before any sampling transform
    ForwardRouting routing;     // all nTokens tokens (cheap: n_moe·topK per token)
};

// Memory of one session's cache. The CUDA cache is paged in blocks of kCacheBlockTokens tokens;
// the CPU cache grows in the same blocks so both report alike.
inline constexpr int64_t kCacheBlockTokens = 64;

struct CacheLayerStats {
    int32_t layer = 0;
    int64_t bytesPerToken = 0;  // latentCacheDim · element size
    int64_t bytesUsed = 0;      // length() tokens
    int64_t bytesReserved = 0;  // allocated blocks
};

struct CacheStats {
    std::string dtype;           // element type of the cache: "f32" (CPU), "bf16" (CUDA)
    int64_t latentDim = 0;       // kvLoraRank + qkRopeHeadDim (576)
    int64_t tokens = 0;          // == length()
    int64_t capacityTokens = 0;  // == capacity()
    int64_t blockTokens = kCacheBlockTokens;
    int64_t blocksUsed = 0;      // blocks holding at least one token
    int64_t blocksReserved = 0;  // blocks allocated (≥ blocksUsed)
    int64_t blocksCapacity = 0;  // ceil(capacityTokens / blockTokens)
    int64_t bytesPerToken = 0;   // all layers
    int64_t bytesUsed = 0;
    int64_t bytesReserved = 0;
    int64_t bytesCapacity = 0;            // bytesPerToken · capacityTokens
    std::vector<CacheLayerStats> layers;  // (numHiddenLayers)
};

class BackendSession {
public:
    virtual ~BackendSession() = default;

    // Runs the model over `tokens`, placed at positions length() .. length()+T-1, appends their
    // [c_kv | k_pe] to the cache and returns the logits of the last position (wantAllLogits=false)
    // or of every position, plus the routing of every token.
    // Errors (the cache is unchanged on error): empty `tokens` or an id outside [0, vocab)
    // -> InvalidArgument; length()+T > capacity() -> OutOfRange naming both numbers.
    virtual Result<ForwardResult> forward(std::span<const int32_t> tokens, bool wantAllLogits) = 0;

    // Forgets every cached position >= length (rewind for regenerate/edit). length > length()
    // -> InvalidArgument. truncate(0) empties the session.
    virtual Status truncate(int64_t length) = 0;

    virtual int64_t length() const = 0;    // tokens in the cache
    virtual int64_t capacity() const = 0;  // most tokens the session can hold
    virtual CacheStats cacheStats() const = 0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual BackendKind kind() const = 0;
    // For people: "cpu fp32, 2 threads", "cuda bf16, NVIDIA H200".
    virtual std::string description() const = 0;
    // CUDA devices the backend's weights live on (empty for the CPU backend).
    virtual std::vector<int> devices() const { return {}; }
    // maxContext 0 = the backend's default (BackendOptions::maxContext); larger than the model's
    // max_position_embeddings -> InvalidArgument.
    virtual Result<std::unique_ptr<BackendSession>> createSession(int64_t maxContext = 0) = 0;
};

// Makes a backend for a loaded model. The config and weights must outlive the backend (the
// weights point into the model folder's mapping). Cuda on a build without the CUDA backend, or
// without a usable GPU, returns Unavailable saying which.
Result<std::unique_ptr<Backend>> createBackend(BackendKind kind, const ModelConfig& config, const ModelWeights& weights,
                                               const BackendOptions& options);

// The per-backend factories createBackend dispatches to. createCudaBackend is defined by
// engine/cuda; its sources.cmake sets DSV2_HAS_CUDA_BACKEND=1 on dsv2_engine when it does, and
// until then createBackend answers Unavailable for Cuda.
Result<std::unique_ptr<Backend>> createCpuBackend(const ModelConfig& config, const ModelWeights& weights,
                                                  const BackendOptions& options);
Result<std::unique_ptr<Backend>> createCudaBackend(const ModelConfig& config, const ModelWeights& weights,
                                                   const BackendOptions& options);

// Helpers every backend uses at its boundary, so that errors read the same everywhere.
Status validateForwardInput(std::span<const int32_t> tokens, int64_t vocab, int64_t length, int64_t capacity);
CacheStats makeCacheStats(const ModelConfig& config, const std::string& dtype, int64_t elementBytes, int64_t tokens,
                          int64_t reservedTokens, int64_t capacityTokens);

}  // namespace dsv2
