#pragma once
// The engine's view of a checkpoint's tensors, bound by hub name (see REFERENCE.md "Weights").
// Every TensorView points into the memory-mapped safetensors shards: nothing is copied.
// Shapes in comments are the hub's [out, in].

#include <optional>
#include <vector>

#include "model/tensor.h"

namespace dsv2 {

struct MlpWeights {       // down(silu(gate(x)) * up(x))
    TensorView gateProj;  // [inter, hidden]
    TensorView upProj;    // [inter, hidden]
    TensorView downProj;  // [hidden, inter]
};

struct AttentionWeights {
    // Either qProj (V2-Lite) or qAProj + qALayernorm + qBProj (V2, q_lora_rank set).
    TensorView qProj;           // [H·(nope+rope), hidden]
    TensorView qAProj;          // [q_lora, hidden]
    TensorView qALayernorm;     // [q_lora]
    TensorView qBProj;          // [H·(nope+rope), q_lora]
    TensorView kvAProjWithMqa;  // [kv_lora + rope, hidden]: output is [c_kv | k_pe]
    TensorView kvALayernorm;    // [kv_lora]
    TensorView kvBProj;         // [H·(nope + v), kv_lora]: rows per head are [k_nope | v]
    TensorView oProj;           // [hidden, H·v]
    bool hasQLora() const { return qAProj.valid(); }
};

struct MoeWeights {
    TensorView gate;                  // [n_routed, hidden] router
    std::vector<MlpWeights> experts;  // n_routed, each [moe_inter, hidden] / [hidden, moe_inter]
    MlpWeights sharedExperts;         // width n_shared · moe_inter
};

struct LayerWeights {
    TensorView inputLayernorm;          // [hidden]
    TensorView postAttentionLayernorm;  // [hidden]
    AttentionWeights attn;
    std::optional<MlpWeights> denseMlp;  // layers < first_k_dense_replace
    std::optional<MoeWeights> moe;       // the others
};

struct ModelWeights {
    TensorView embedTokens;  // [vocab, hidden]
    std::vector<LayerWeights> layers;
    TensorView norm;    // [hidden]
    TensorView lmHead;  // [vocab, hidden]
};

}  // namespace dsv2
