#pragma once
// Seeded random weights for any ModelConfig, owned in memory and exposed as ModelWeights: for
// benchmarks at real sizes (no 31 GB download) and kernel tests. Values are N(0, stddev²) with
// stddev 0.02 by default (as HF's initializer_range), norms are exactly 1, so forward passes stay
// finite. The same (config, dtype, seed) always gives the same bytes, whatever the thread count.

#include <cstdint>
#include <memory>

#include "dsv2/status.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "model/tensor.h"

namespace dsv2 {

class RandomWeights {
public:
    // dtype must be BF16, F16 or F32. Fails with ResourceExhausted when the memory is not there.
    static Result<std::unique_ptr<RandomWeights>> create(const ModelConfig& config, DType dtype, uint64_t seed,
                                                         float stddev = 0.02f);
    // For benchmarks of models larger than host memory (DeepSeek-V2: 472 GB): one pool of
    // max(poolBytes, 2 × the largest tensor) random values, and every tensor a window of it at its own
    // seeded offset (norms still exactly 1). Tensors overlap, so weights repeat across tensors; the
    // shapes, bytes moved and routing spread are the real model's. Not for numeric checks.
    static Result<std::unique_ptr<RandomWeights>> createPooled(const ModelConfig& config, DType dtype, uint64_t seed,
                                                               uint64_t poolBytes, float stddev = 0.02f);
    // Bytes create() would allocate for this config and dtype.
    static uint64_t bytesFor(const ModelConfig& config, DType dtype);
    ~RandomWeights();
    RandomWeights(const RandomWeights&) = delete;
    RandomWeights& operator=(const RandomWeights&) = delete;

    const ModelConfig& config() const { return m_config; }
    const ModelWeights& weights() const { return m_weights; }
    const TensorMap& tensors() const { return m_tensors; }  // by hub name
    uint64_t bytes() const { return m_bytes; }              // one arena, tensors 256-byte aligned

private:
    RandomWeights() = default;

    struct ArenaDeleter {
        void operator()(std::byte* p) const;
    };
    ModelConfig m_config;
    std::unique_ptr<std::byte, ArenaDeleter> m_arena;
    uint64_t m_bytes = 0;
    TensorMap m_tensors;
    ModelWeights m_weights;
};

}  // namespace dsv2
