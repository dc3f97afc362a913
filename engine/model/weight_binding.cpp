#include "model/weight_binding.h"

#include <set>

namespace dsv2 {
namespace {

std::string shapeString(const std::vector<int64_t>& shape) {
    TensorView t;
    t.shape = shape;
    return t.shapeString();
}

std::string n(int64_t v) { return std::to_string(v); }

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Hub checkpoints of older transformers carry RoPE buffers that are not weights.
bool ignorable(const std::string& name) { return endsWith(name, "rotary_emb.inv_freq"); }

class ExpectedBuilder {
public:
    explicit ExpectedBuilder(const ModelConfig& c) : m_c(c) {}

    std::vector<ExpectedTensor> build() {
        const ModelConfig& c = m_c;
        const std::string hidden = "hidden_size " + n(c.hiddenSize);
        add("model.embed_tokens.weight", {c.vocabSize, c.hiddenSize}, "vocab_size " + n(c.vocabSize) + ", " + hidden);
        for (int64_t l = 0; l < c.numHiddenLayers; ++l) addLayer(l);
        add("model.norm.weight", {c.hiddenSize}, hidden);
        if (!c.tieWordEmbeddings)
            add("lm_head.weight", {c.vocabSize, c.hiddenSize}, "vocab_size " + n(c.vocabSize) + ", " + hidden);
        return std::move(m_out);
    }

private:
    void add(std::string name, std::vector<int64_t> shape, std::string why) {
        m_out.push_back({std::move(name), std::move(shape), std::move(why)});
    }

    void addMlp(const std::string& prefix, int64_t width, const std::string& widthWhy) {
        const std::string hidden = "hidden_size " + n(m_c.hiddenSize);
        add(prefix + "gate_proj.weight", {width, m_c.hiddenSize}, widthWhy + ", " + hidden);
        add(prefix + "up_proj.weight", {width, m_c.hiddenSize}, widthWhy + ", " + hidden);
        add(prefix + "down_proj.weight", {m_c.hiddenSize, width}, hidden + ", " + widthWhy);
    }

    void addLayer(int64_t l) {
        const ModelConfig& c = m_c;
        const std::string p = "model.layers." + n(l) + ".";
        const std::string hidden = "hidden_size " + n(c.hiddenSize);
        const std::string heads = "num_attention_heads " + n(c.numAttentionHeads);
        add(p + "input_layernorm.weight", {c.hiddenSize}, hidden);
        add(p + "post_attention_layernorm.weight", {c.hiddenSize}, hidden);

        const std::string qRows = heads + " × (qk_nope_head_dim " + n(c.qkNopeHeadDim) + " + qk_rope_head_dim " +
                                  n(c.qkRopeHeadDim) + ")";
        const int64_t qOut = c.numAttentionHeads * c.qHeadDim();
        if (c.qLoraRank) {
            const std::string rank = "q_lora_rank " + n(*c.qLoraRank);
            add(p + "self_attn.q_a_proj.weight", {*c.qLoraRank, c.hiddenSize}, rank + ", " + hidden);
            add(p + "self_attn.q_a_layernorm.weight", {*c.qLoraRank}, rank);
            add(p + "self_attn.q_b_proj.weight", {qOut, *c.qLoraRank}, qRows + ", " + rank);
        } else {
            add(p + "self_attn.q_proj.weight", {qOut, c.hiddenSize}, qRows + " (q_lora_rank null), " + hidden);
        }
        const std::string kvRank = "kv_lora_rank " + n(c.kvLoraRank);
        add(p + "self_attn.kv_a_proj_with_mqa.weight", {c.kvLoraRank + c.qkRopeHeadDim, c.hiddenSize},
            kvRank + " + qk_rope_head_dim " + n(c.qkRopeHeadDim) + ", " + hidden);
        add(p + "self_attn.kv_a_layernorm.weight", {c.kvLoraRank}, kvRank);
        add(p + "self_attn.kv_b_proj.weight", {c.numAttentionHeads * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank},
            heads + " × (qk_nope_head_dim " + n(c.qkNopeHeadDim) + " + v_head_dim " + n(c.vHeadDim) + "), " + kvRank);
        add(p + "self_attn.o_proj.weight", {c.hiddenSize, c.numAttentionHeads * c.vHeadDim},
            hidden + ", " + heads + " × v_head_dim " + n(c.vHeadDim));

        if (!c.isMoeLayer(l)) {
            addMlp(p + "mlp.", c.intermediateSize, "intermediate_size " + n(c.intermediateSize));
            return;
        }
        const std::string moe = "moe_intermediate_size " + n(c.moeIntermediateSize);
        add(p + "mlp.gate.weight", {c.nRoutedExperts, c.hiddenSize}, "n_routed_experts " + n(c.nRoutedExperts) + ", " + hidden);
        for (int64_t e = 0; e < c.nRoutedExperts; ++e) addMlp(p + "mlp.experts." + n(e) + ".", c.moeIntermediateSize, moe);
        if (c.nSharedExperts > 0)
            addMlp(p + "mlp.shared_experts.", c.nSharedExperts * c.moeIntermediateSize,
                   "n_shared_experts " + n(c.nSharedExperts) + " × " + moe);
    }

    const ModelConfig& m_c;
    std::vector<ExpectedTensor> m_out;
};

// Lists of problems by kind; each kind is capped so that the error stays one screen.
struct Problems {
    std::vector<std::string> dtype, shape, missing, unexpected;

    bool empty() const { return dtype.empty() && shape.empty() && missing.empty() && unexpected.empty(); }

    Status toStatus(const std::string& source) const {
        StatusCode code = StatusCode::InvalidData;
        if (!dtype.empty()) code = StatusCode::Unsupported;  // the fix is a different download, not repair
        else if (shape.empty() && unexpected.empty()) code = StatusCode::NotFound;
        std::string msg = source + ": the weights do not match config.json";
        const auto section = [&](const std::vector<std::string>& items, const std::string& title) {
            if (items.empty()) return;
            constexpr size_t kMax = 8;
            msg += "\n  " + title + " (" + std::to_string(items.size()) + "):";
            for (size_t i = 0; i < items.size() && i < kMax; ++i) msg += "\n    " + items[i];
            if (items.size() > kMax) msg += "\n    ... and " + std::to_string(items.size() - kMax) + " more";
        };
        section(dtype, "unsupported dtype (this engine reads BF16, F16 and F32 checkpoints; fp8/int releases are not "
                       "supported yet)");
        section(shape, "wrong shape");
        section(missing, "missing");
        section(unexpected, "unexpected");
        return {code, msg};
    }
};

}  // namespace

std::vector<ExpectedTensor> expectedTensors(const ModelConfig& config) { return ExpectedBuilder(config).build(); }

Result<ModelWeights> bindModelWeights(const ModelConfig& c, const TensorMap& tensors, const std::string& source) {
    const std::vector<ExpectedTensor> expected = expectedTensors(c);
    Problems problems;
    std::set<std::string> expectedNames;
    for (const auto& e : expected) {
        expectedNames.insert(e.name);
        const auto it = tensors.find(e.name);
        if (it == tensors.end()) {
            problems.missing.push_back(e.name + " " + shapeString(e.shape));
            continue;
        }
        const TensorView& t = it->second;
        if (t.shape != e.shape)
            problems.shape.push_back(e.name + ": " + t.shapeString() + " in the file, config.json implies " +
                                     shapeString(e.shape) + " (" + e.why + ")");
        if (!dtypeComputable(t.dtype)) problems.dtype.push_back(e.name + " " + t.shapeString() + " " + dtypeName(t.dtype));
    }
    for (const auto& [name, t] : tensors) {
        if (expectedNames.count(name) || ignorable(name)) continue;
        if (c.tieWordEmbeddings && name == "lm_head.weight") continue;  // tied: an explicit copy is fine
        problems.unexpected.push_back(name + " " + t.shapeString() + " " + dtypeName(t.dtype));
    }
    if (!problems.empty()) return problems.toStatus(source);

    // Everything is present and shaped as expected: assemble.
    const auto get = [&](const std::string& name) -> TensorView { return tensors.at(name); };
    const auto mlp = [&](const std::string& prefix) {
        return MlpWeights{get(prefix + "gate_proj.weight"), get(prefix + "up_proj.weight"), get(prefix + "down_proj.weight")};
    };
    ModelWeights w;
    w.embedTokens = get("model.embed_tokens.weight");
    w.norm = get("model.norm.weight");
    w.lmHead = c.tieWordEmbeddings ? w.embedTokens : get("lm_head.weight");
    w.layers.resize(static_cast<size_t>(c.numHiddenLayers));
    for (int64_t l = 0; l < c.numHiddenLayers; ++l) {
        LayerWeights& L = w.layers[static_cast<size_t>(l)];
        const std::string p = "model.layers." + std::to_string(l) + ".";
        L.inputLayernorm = get(p + "input_layernorm.weight");
        L.postAttentionLayernorm = get(p + "post_attention_layernorm.weight");
        if (c.qLoraRank) {
            L.attn.qAProj = get(p + "self_attn.q_a_proj.weight");
            L.attn.qALayernorm = get(p + "self_attn.q_a_layernorm.weight");
            L.attn.qBProj = get(p + "self_attn.q_b_proj.weight");
        } else {
            L.attn.qProj = get(p + "self_attn.q_proj.weight");
        }
        L.attn.kvAProjWithMqa = get(p + "self_attn.kv_a_proj_with_mqa.weight");
        L.attn.kvALayernorm = get(p + "self_attn.kv_a_layernorm.weight");
        L.attn.kvBProj = get(p + "self_attn.kv_b_proj.weight");
        L.attn.oProj = get(p + "self_attn.o_proj.weight");
        if (!c.isMoeLayer(l)) {
            L.denseMlp = mlp(p + "mlp.");
            continue;
        }
        MoeWeights moe;
        moe.gate = get(p + "mlp.gate.weight");
        moe.experts.reserve(static_cast<size_t>(c.nRoutedExperts));
        for (int64_t e = 0; e < c.nRoutedExperts; ++e) moe.experts.push_back(mlp(p + "mlp.experts." + std::to_string(e) + "."));
        if (c.nSharedExperts > 0) moe.sharedExperts = mlp(p + "mlp.shared_experts.");
        L.moe = std::move(moe);
    }
    return w;
}

}  // namespace dsv2
