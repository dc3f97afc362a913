#pragma once
// config.json of the real checkpoints (values from the hub; see REFERENCE.md), as JSON objects
// that tests can modify.

#include <nlohmann/json.hpp>

namespace dsv2::test {

inline nlohmann::json liteConfigJson() {  // DeepSeek-V2-Lite(-Chat), Coder-V2-Lite
    return nlohmann::json::parse(R"({
      "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
      "vocab_size": 102400, "hidden_size": 2048, "intermediate_size": 10944, "moe_intermediate_size": 1408,
      "num_hidden_layers": 27, "num_attention_heads": 16, "num_key_value_heads": 16,
      "q_lora_rank": null, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
      "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1,
      "moe_layer_freq": 1, "topk_method": "greedy", "n_group": 1, "topk_group": 1,
      "routed_scaling_factor": 1.0, "norm_topk_prob": false, "scoring_func": "softmax", "aux_loss_alpha": 0.001,
      "seq_aux": true, "hidden_act": "silu", "max_position_embeddings": 163840, "rms_norm_eps": 1e-06,
      "rope_theta": 10000, "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1,
        "mscale": 0.707, "mscale_all_dim": 0.707, "original_max_position_embeddings": 4096},
      "tie_word_embeddings": false, "torch_dtype": "bfloat16", "bos_token_id": 100000, "eos_token_id": 100001,
      "attention_bias": false, "attention_dropout": 0.0, "use_cache": true, "pretraining_tp": 1
    })");
}

inline nlohmann::json v2ConfigJson() {  // DeepSeek-V2(-Chat) 236B
    nlohmann::json j = liteConfigJson();
    j["hidden_size"] = 5120;
    j["intermediate_size"] = 12288;
    j["moe_intermediate_size"] = 1536;
    j["num_hidden_layers"] = 60;
    j["num_attention_heads"] = 128;
    j["num_key_value_heads"] = 128;
    j["q_lora_rank"] = 1536;
    j["n_routed_experts"] = 160;
    j["topk_method"] = "group_limited_greedy";
    j["n_group"] = 8;
    j["topk_group"] = 3;
    j["routed_scaling_factor"] = 16.0;
    return j;
}

inline nlohmann::json v25ConfigJson() {  // DeepSeek-V2.5: V2 shapes, mscale 1.0
    nlohmann::json j = v2ConfigJson();
    j["rope_scaling"]["mscale"] = 1.0;
    j["rope_scaling"]["mscale_all_dim"] = 1.0;
    return j;
}

}  // namespace dsv2::test
