#pragma once
// Napkin numbers about a model, computed from its config alone (no weights needed): parameter
// counts, total and active per token, and KV-cache bytes per token for MLA versus plain MHA.

#include <cstdint>

#include "model/model_config.h"

namespace dsv2 {

struct ParameterCounts {
    int64_t embedding = 0;      // embed_tokens
    int64_t attention = 0;      // all MLA projections and their norms
    int64_t denseMlp = 0;       // the dense lead layers' MLPs
    int64_t router = 0;         // mlp.gate of every MoE layer
    int64_t routedExperts = 0;  // all routed experts of all MoE layers
    int64_t sharedExperts = 0;
    int64_t norms = 0;   // input/post-attention layernorms and the final norm
    int64_t lmHead = 0;  // 0 when tied to the embedding

    int64_t total = 0;
    // Weights a token's forward pass uses: everything except the routed experts the router did not
    // choose, and except the embedding table, of which a token reads one row. This is the "active
    // parameters" figure DeepSeek publishes (Lite 2.4B, V2 21B); activeWithEmbedding adds the table.
    int64_t activePerToken = 0;
    int64_t activeWithEmbedding = 0;
};

ParameterCounts countParameters(const ModelConfig& config);

// Latent cache, per token over all layers: layers × (kv_lora_rank + qk_rope_head_dim) values.
int64_t mlaKvBytesPerToken(const ModelConfig& config, int64_t bytesPerValue = 2);
// The same model as plain multi-head attention would cache k (nope + rope) and v for every head.
int64_t mhaKvBytesPerToken(const ModelConfig& config, int64_t bytesPerValue = 2);

}  // namespace dsv2
