#pragma once
// What the KV cache costs. MLA keeps one compressed latent per token and layer instead of full
// per-head keys and values; the view sets it beside what the same model would cache as plain
// multi-head attention and as grouped-query attention with 8 KV heads. All three in bf16 (2 bytes),
// so the comparison is between designs, not between backends:
//   MLA   = layers × (kv_lora_rank + qk_rope_head_dim) × 2 B
//   MHA   = layers × heads × (qk_nope_head_dim + qk_rope_head_dim + v_head_dim) × 2 B
//   GQA-8 = layers × 8 × (qk_head_dim + v_head_dim) × 2 B, qk_head_dim = qk_nope + qk_rope
//           (a model with fewer than 8 heads keeps all of them)
// DeepSeek-V2-Lite: MLA 27 × 576 × 2 = 31,104 B (30.4 KiB); MHA 27 × 16 × 320 × 2 = 276,480 B
// (270 KiB, ×8.9); GQA-8 27 × 8 × 320 × 2 = 138,240 B (135 KiB, ×4.4).

#include <QMetaType>
#include <QString>

#include <optional>

namespace dsv2::ui {

struct ModelShape {
    QString name;
    int layers = 0;  // num_hidden_layers
    int heads = 0;   // num_attention_heads
    int kvLoraRank = 0;
    int qkRopeHeadDim = 0;
    int qkNopeHeadDim = 0;
    int vHeadDim = 0;
    int routedExperts = 0;    // n_routed_experts (the palette and load matrix width)
    int expertsPerToken = 0;  // num_experts_per_tok

    static constexpr int kBf16Bytes = 2;
    static constexpr int kGqaGroups = 8;

    bool isValid() const { return layers > 0 && heads > 0 && kvLoraRank > 0 && qkRopeHeadDim >= 0; }
    qint64 mlaBytesPerToken() const;
    qint64 mhaBytesPerToken() const;
    qint64 gqaBytesPerToken() const;
    int gqaGroups() const;  // 8, or the head count when smaller
    double mhaOverMla() const;

    static ModelShape deepSeekV2Lite();
    static ModelShape deepSeekV2();
};

// Reads the fields above from a model folder's config.json (the HF keys). nullopt with *error set
// when the file is missing or lacks the MLA keys.
std::optional<ModelShape> modelShapeFromConfig(const QString& configJsonPath, QString* error = nullptr);

// The session's latent cache as the engine reports it (a copy of dsv2::CacheUsage, which ui/ does
// not include): sizes in tokens, bytes and blocks of 64 tokens.
struct CacheState {
    qint64 tokens = 0;
    qint64 capacityTokens = 0;
    qint64 bytesPerToken = 0;  // as the backend stores it (fp32 on the CPU backend, bf16 on CUDA)
    qint64 bytesUsed = 0;
    qint64 bytesReserved = 0;
    qint64 bytesCapacity = 0;
    qint64 blocksUsed = 0;
    qint64 blocksCapacity = 0;

    static constexpr int kBlockTokens = 64;
    // What a session holding `tokens` would report, for a stored answer whose session is gone
    // (its prompt + answer tokens from the stored stats): nothing reserved beyond the used blocks.
    static CacheState estimate(qint64 tokens, qint64 capacityTokens, qint64 bytesPerToken);
    bool isValid() const { return capacityTokens > 0; }
    double fill() const {
        return capacityTokens > 0 ? static_cast<double>(tokens) / static_cast<double>(capacityTokens) : 0.0;
    }
    bool operator==(const CacheState&) const = default;
};

}  // namespace dsv2::ui

Q_DECLARE_METATYPE(dsv2::ui::ModelShape)
Q_DECLARE_METATYPE(dsv2::ui::CacheState)
