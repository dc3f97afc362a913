#include "parallel/weight_sharding.h"

#include <cstdlib>

#include "model/weight_binding.h"

namespace dsv2::parallel {
namespace {

constexpr int64_t kBytesPerWeight = 2;  // bf16

bool endsWith(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// How a hub tensor is laid out across devices.
enum class Share { Replicated, Heads, DenseWidth, SharedWidth, Vocab, Expert, Embedding };

Share classify(const std::string& name, AttentionSplit split) {
    if (contains(name, ".mlp.experts.")) return Share::Expert;
    if (name == "model.embed_tokens.weight") return Share::Embedding;
    if (split == AttentionSplit::Data) return Share::Replicated;
    if (endsWith(name, "self_attn.q_proj.weight") || endsWith(name, "self_attn.q_b_proj.weight") ||
        endsWith(name, "self_attn.kv_b_proj.weight") || endsWith(name, "self_attn.o_proj.weight"))
        return Share::Heads;
    if (contains(name, ".mlp.shared_experts.")) return Share::SharedWidth;
    if (endsWith(name, ".mlp.gate_proj.weight") || endsWith(name, ".mlp.up_proj.weight") ||
        endsWith(name, ".mlp.down_proj.weight"))
        return Share::DenseWidth;
    if (name == "lm_head.weight") return Share::Vocab;
    return Share::Replicated;  // q_a_proj, kv_a_proj_with_mqa, their norms, routers, layer norms
}

int64_t expertId(const std::string& name) {
    const auto at = name.find(".mlp.experts.") + std::string(".mlp.experts.").size();
    return std::strtoll(name.c_str() + at, nullptr, 10);
}

int64_t elements(const ExpectedTensor& t) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    return n;
}

struct Splits {
    std::vector<int64_t> heads, dense, shared, vocab;
};

Splits splitsFor(const ModelConfig& c, int n, AttentionSplit split) {
    return {headsPerDevice(c, n, split), balancedSplit(c.intermediateSize, n),
            balancedSplit(c.nSharedExperts * c.moeIntermediateSize, n), balancedSplit(c.vocabSize, n)};
}

// This device's elements of a tensor split along a dimension of `whole` units (heads, width rows,
// vocabulary rows) of which it holds `mine`.
int64_t slice(int64_t tensorElements, int64_t whole, int64_t mine) {
    return whole > 0 ? tensorElements / whole * mine : 0;
}

}  // namespace

const char* attentionSplitName(AttentionSplit split) {
    return split == AttentionSplit::Tensor ? "tensor-parallel" : "data-parallel";
}

std::optional<AttentionSplit> parseAttentionSplit(const std::string& text) {
    if (text == "tp" || text == "tensor") return AttentionSplit::Tensor;
    if (text == "dp" || text == "data") return AttentionSplit::Data;
    return std::nullopt;
}

std::vector<int64_t> headsPerDevice(const ModelConfig& c, int nDevices, AttentionSplit split) {
    if (split == AttentionSplit::Data) return std::vector<int64_t>(static_cast<size_t>(nDevices), c.numAttentionHeads);
    return balancedSplit(c.numAttentionHeads, nDevices);
}

std::vector<DeviceWeightBytes> deviceWeightBytes(const ModelConfig& c, const ExpertPlacement& p, AttentionSplit split) {
    const int n = p.nDevices;
    const Splits s = splitsFor(c, n, split);
    std::vector<DeviceWeightBytes> out(static_cast<size_t>(n));
    for (const ExpectedTensor& t : expectedTensors(c)) {
        const int64_t bytes = elements(t) * kBytesPerWeight;
        const Share share = classify(t.name, split);
        if (share == Share::Expert) {
            out[static_cast<size_t>(p.expertDevice.at(static_cast<size_t>(expertId(t.name))))].experts += bytes;
            continue;
        }
        for (size_t d = 0; d < out.size(); ++d) {
            switch (share) {
            case Share::Heads: out[d].sharded += slice(bytes, c.numAttentionHeads, s.heads[d]); break;
            case Share::DenseWidth: out[d].sharded += slice(bytes, c.intermediateSize, s.dense[d]); break;
            case Share::SharedWidth:
                out[d].sharded += slice(bytes, c.nSharedExperts * c.moeIntermediateSize, s.shared[d]);
                break;
            case Share::Vocab: out[d].sharded += slice(bytes, c.vocabSize, s.vocab[d]); break;
            default: out[d].replicated += bytes; break;
            }
        }
    }
    return out;
}

std::vector<int64_t> batchOneReadBytes(const ModelConfig& c, const ExpertPlacement& p, AttentionSplit split) {
    const int n = p.nDevices;
    const Splits s = splitsFor(c, n, split);
    std::vector<double> reads(static_cast<size_t>(n), 0.0);
    for (const ExpectedTensor& t : expectedTensors(c)) {
        const int64_t bytes = elements(t) * kBytesPerWeight;
        const Share share = classify(t.name, split);
        if (share == Share::Expert) {
            // Each of the layer's n_routed experts is read with probability top_k / n_routed.
            const auto device = static_cast<size_t>(p.expertDevice.at(static_cast<size_t>(expertId(t.name))));
            reads[device] += static_cast<double>(bytes) * static_cast<double>(c.numExpertsPerTok) /
                             static_cast<double>(c.nRoutedExperts);
            continue;
        }
        // One embedding row per token, unless the table is also lm_head (tied): then all of it.
        const int64_t used = share == Share::Embedding && !c.tieWordEmbeddings ? c.hiddenSize * kBytesPerWeight : bytes;
        for (size_t d = 0; d < reads.size(); ++d) {
            if (split == AttentionSplit::Data && d != 0) break;  // only the sequence's owner
            switch (share) {
            case Share::Heads: reads[d] += static_cast<double>(slice(bytes, c.numAttentionHeads, s.heads[d])); break;
            case Share::DenseWidth:
                reads[d] += static_cast<double>(slice(bytes, c.intermediateSize, s.dense[d]));
                break;
            case Share::SharedWidth:
                reads[d] += static_cast<double>(slice(bytes, c.nSharedExperts * c.moeIntermediateSize, s.shared[d]));
                break;
            case Share::Vocab: reads[d] += static_cast<double>(slice(bytes, c.vocabSize, s.vocab[d])); break;
            default: reads[d] += static_cast<double>(used); break;
            }
        }
    }
    std::vector<int64_t> out;
    for (double r : reads) out.push_back(static_cast<int64_t>(r + 0.5));
    return out;
}

}  // namespace dsv2::parallel
