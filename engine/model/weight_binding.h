#pragma once
// Maps the hub's tensor names onto the engine's ModelWeights (see REFERENCE.md "Weights"):
// per-expert `mlp.experts.E.*`, `q_proj` or `q_a_proj/q_a_layernorm/q_b_proj`, `kv_a_proj_with_mqa`,
// `kv_b_proj`, shared experts, dense lead layers. The expected shapes come from config.json; every
// missing, unexpected, wrongly shaped or non-computable tensor is reported in one error.

#include <string>
#include <vector>

#include "dsv2/status.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "model/tensor.h"

namespace dsv2 {

struct ExpectedTensor {
    std::string name;            // hub name, e.g. "model.layers.1.mlp.experts.7.up_proj.weight"
    std::vector<int64_t> shape;  // [out, in]
    std::string why;             // which config keys give the shape, for error messages
};

// Every tensor a checkpoint with this config must contain, in a stable order (embedding, layers,
// final norm, lm_head). With tie_word_embeddings, lm_head is not listed.
std::vector<ExpectedTensor> expectedTensors(const ModelConfig& config);

// Binds `tensors` (views into the shards) to ModelWeights. `source` names the folder in messages.
Result<ModelWeights> bindModelWeights(const ModelConfig& config, const TensorMap& tensors, const std::string& source);

}  // namespace dsv2
