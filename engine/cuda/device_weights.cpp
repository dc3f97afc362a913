#include "cuda/device_weights.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "cuda/convert.h"

namespace dsv2::cuda {
namespace {

constexpr size_t kAlign = 256;
constexpr size_t kStageBytes = 32u << 20;  // per pinned staging buffer

size_t alignUp(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// One tensor to copy: its view and where its bf16 copy goes in the arena.
struct Placement {
    const TensorView* view = nullptr;
    size_t offset = 0;
};

class Layout {
public:
    // Places `v`; `follows` != nullptr places it right after that tensor (gate|up pairs).
    size_t place(const TensorView& v) {
        const size_t off = alignUp(m_size);
        m_items.push_back({&v, off});
        m_size = off + static_cast<size_t>(v.numel()) * 2;
        return off;
    }
    size_t placePair(const TensorView& first, const TensorView& second) {
        const size_t off = place(first);
        m_items.push_back({&second, m_size});  // directly after, no padding
        m_size += static_cast<size_t>(second.numel()) * 2;
        return off;
    }
    size_t size() const { return alignUp(m_size); }
    const std::vector<Placement>& items() const { return m_items; }

private:
    size_t m_size = 0;
    std::vector<Placement> m_items;
};

class Event {
public:
    Event() = default;
    ~Event() {
        if (m_event) cudaEventDestroy(m_event);
    }
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    Status create() {
        DSV2_CUDA_CHECK(cudaEventCreateWithFlags(&m_event, cudaEventDisableTiming));
        return Status::ok();
    }
    cudaEvent_t get() const { return m_event; }

private:
    cudaEvent_t m_event = nullptr;
};

// Double-buffered host->device copies through pinned memory: the memcpy out of the mapping (page
// faults, disk) of one chunk overlaps the DMA of the previous one.
class Stager {
public:
    Status init() {
        for (int i = 0; i < 2; ++i) {
            DSV2_ASSIGN_OR_RETURN(m_buf[i], PinnedBuffer<uint8_t>::allocate(kStageBytes));
            DSV2_RETURN_IF_ERROR(m_done[i].create());
        }
        return Status::ok();
    }
    Status copy(void* dst, const void* src, size_t n, cudaStream_t stream) {
        for (size_t off = 0; off < n; off += kStageBytes) {
            const size_t len = std::min(kStageBytes, n - off);
            const int i = m_next;
            m_next ^= 1;
            DSV2_CUDA_CHECK(cudaEventSynchronize(m_done[i].get()));
            std::memcpy(m_buf[i].data(), static_cast<const uint8_t*>(src) + off, len);
            DSV2_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(dst) + off, m_buf[i].data(), len,
                                            cudaMemcpyHostToDevice, stream));
            DSV2_CUDA_CHECK(cudaEventRecord(m_done[i].get(), stream));
        }
        return Status::ok();
    }

private:
    PinnedBuffer<uint8_t> m_buf[2];
    Event m_done[2];
    int m_next = 0;
};

Status checkView(const TensorView& v, int64_t expectedNumel, const std::string& what) {
    if (!v.valid()) return Status(StatusCode::NotFound, what + " is missing");
    if (v.dtype != DType::BF16 && v.dtype != DType::F16 && v.dtype != DType::F32)
        return Status(StatusCode::Unsupported, what + " (" + v.name + ") has dtype " + dtypeName(v.dtype) +
                                                   "; the CUDA backend reads BF16, F16 and F32");
    if (v.numel() != expectedNumel || v.nbytes != static_cast<size_t>(v.numel()) * dtypeSize(v.dtype))
        return Status(StatusCode::InvalidData, what + " (" + v.name + ") has shape " + v.shapeString() + ", expected " +
                                                   std::to_string(expectedNumel) + " elements");
    return Status::ok();
}

}  // namespace

Result<DeviceModelWeights> DeviceModelWeights::upload(const ModelConfig& c, const ModelWeights& w,
                                                      const Progress& progress, cudaStream_t stream) {
    const int64_t hidden = c.hiddenSize, H = c.numAttentionHeads;
    if (static_cast<int64_t>(w.layers.size()) != c.numHiddenLayers)
        return Status(StatusCode::InvalidData, "the weights have " + std::to_string(w.layers.size()) +
                                                   " layers, config.json says " + std::to_string(c.numHiddenLayers));
    // Check every view against the config before placing anything.
    DSV2_RETURN_IF_ERROR(checkView(w.embedTokens, c.vocabSize * hidden, "model.embed_tokens"));
    DSV2_RETURN_IF_ERROR(checkView(w.norm, hidden, "model.norm"));
    // Tied embeddings: lm_head is embed_tokens (bound to the same view, or left empty).
    const TensorView& lmHead = (c.tieWordEmbeddings && !w.lmHead.valid()) ? w.embedTokens : w.lmHead;
    DSV2_RETURN_IF_ERROR(checkView(lmHead, c.vocabSize * hidden, "lm_head"));
    auto checkMlp = [&](const MlpWeights& m, int64_t inter, const std::string& what) -> Status {
        DSV2_RETURN_IF_ERROR(checkView(m.gateProj, inter * hidden, what + " gate_proj"));
        DSV2_RETURN_IF_ERROR(checkView(m.upProj, inter * hidden, what + " up_proj"));
        return checkView(m.downProj, hidden * inter, what + " down_proj");
    };
    for (int64_t l = 0; l < c.numHiddenLayers; ++l) {
        const LayerWeights& L = w.layers[static_cast<size_t>(l)];
        const std::string p = "layer " + std::to_string(l);
        DSV2_RETURN_IF_ERROR(checkView(L.inputLayernorm, hidden, p + " input_layernorm"));
        DSV2_RETURN_IF_ERROR(checkView(L.postAttentionLayernorm, hidden, p + " post_attention_layernorm"));
        const AttentionWeights& a = L.attn;
        if (c.qLoraRank) {
            DSV2_RETURN_IF_ERROR(checkView(a.qAProj, *c.qLoraRank * hidden, p + " q_a_proj"));
            DSV2_RETURN_IF_ERROR(checkView(a.qALayernorm, *c.qLoraRank, p + " q_a_layernorm"));
            DSV2_RETURN_IF_ERROR(checkView(a.qBProj, H * c.qHeadDim() * *c.qLoraRank, p + " q_b_proj"));
        } else {
            DSV2_RETURN_IF_ERROR(checkView(a.qProj, H * c.qHeadDim() * hidden, p + " q_proj"));
        }
        DSV2_RETURN_IF_ERROR(checkView(a.kvAProjWithMqa, c.latentCacheDim() * hidden, p + " kv_a_proj_with_mqa"));
        DSV2_RETURN_IF_ERROR(checkView(a.kvALayernorm, c.kvLoraRank, p + " kv_a_layernorm"));
        DSV2_RETURN_IF_ERROR(checkView(a.kvBProj, H * (c.qkNopeHeadDim + c.vHeadDim) * c.kvLoraRank, p + " kv_b_proj"));
        DSV2_RETURN_IF_ERROR(checkView(a.oProj, hidden * H * c.vHeadDim, p + " o_proj"));
        if (L.moe) {
            DSV2_RETURN_IF_ERROR(checkView(L.moe->gate, c.nRoutedExperts * hidden, p + " mlp.gate"));
            if (static_cast<int64_t>(L.moe->experts.size()) != c.nRoutedExperts)
                return Status(StatusCode::InvalidData, p + " has " + std::to_string(L.moe->experts.size()) +
                                                           " experts, config.json says " +
                                                           std::to_string(c.nRoutedExperts));
            for (size_t e = 0; e < L.moe->experts.size(); ++e)
                DSV2_RETURN_IF_ERROR(
                    checkMlp(L.moe->experts[e], c.moeIntermediateSize, p + " expert " + std::to_string(e)));
            if (c.nSharedExperts > 0)
                DSV2_RETURN_IF_ERROR(
                    checkMlp(L.moe->sharedExperts, c.nSharedExperts * c.moeIntermediateSize, p + " shared_experts"));
        } else if (L.denseMlp) {
            DSV2_RETURN_IF_ERROR(checkMlp(*L.denseMlp, c.intermediateSize, p + " mlp"));
        } else {
            return Status(StatusCode::InvalidData, p + " has neither a dense MLP nor MoE weights");
        }
    }

    // Place everything, then allocate once.
    Layout layout;
    struct LayerOffsets {
        size_t inputNorm, postNorm, qProj = 0, qA = 0, qANorm = 0, qB = 0, kvA, kvANorm, kvB, oProj;
        size_t denseGateUp = 0, denseDown = 0, gate = 0, sharedGateUp = 0, sharedDown = 0;
        std::vector<size_t> expertGateUp, expertDown;
    };
    const size_t embedOff = layout.place(w.embedTokens);
    std::vector<LayerOffsets> offs(w.layers.size());
    for (size_t l = 0; l < w.layers.size(); ++l) {
        const LayerWeights& L = w.layers[l];
        LayerOffsets& o = offs[l];
        o.inputNorm = layout.place(L.inputLayernorm);
        o.postNorm = layout.place(L.postAttentionLayernorm);
        if (c.qLoraRank) {
            o.qA = layout.place(L.attn.qAProj);
            o.qANorm = layout.place(L.attn.qALayernorm);
            o.qB = layout.place(L.attn.qBProj);
        } else {
            o.qProj = layout.place(L.attn.qProj);
        }
        o.kvA = layout.place(L.attn.kvAProjWithMqa);
        o.kvANorm = layout.place(L.attn.kvALayernorm);
        o.kvB = layout.place(L.attn.kvBProj);
        o.oProj = layout.place(L.attn.oProj);
        if (L.moe) {
            o.gate = layout.place(L.moe->gate);
            for (const MlpWeights& e : L.moe->experts) {
                o.expertGateUp.push_back(layout.placePair(e.gateProj, e.upProj));
                o.expertDown.push_back(layout.place(e.downProj));
            }
            if (c.nSharedExperts > 0) {
                o.sharedGateUp = layout.placePair(L.moe->sharedExperts.gateProj, L.moe->sharedExperts.upProj);
                o.sharedDown = layout.place(L.moe->sharedExperts.downProj);
            }
        } else {
            o.denseGateUp = layout.placePair(L.denseMlp->gateProj, L.denseMlp->upProj);
            o.denseDown = layout.place(L.denseMlp->downProj);
        }
    }
    const size_t normOff = layout.place(w.norm);
    const bool tied = lmHead.data == w.embedTokens.data;
    const size_t headOff = tied ? embedOff : layout.place(lmHead);

    DeviceModelWeights dw;
    auto arena = DeviceBuffer<uint8_t>::allocate(layout.size());
    if (!arena.isOk())
        return arena.status().withContext("allocating " + std::to_string(layout.size()) + " bytes of weights");
    dw.m_arena = std::move(arena).value();

    Stager stager;
    const bool staged = stager.init().isOk();  // without pinned memory: plain (synchronous) copies
    (void)cudaGetLastError();
    DeviceBuffer<uint8_t> convertTmp;
    uint64_t total = 0, done = 0;
    for (const Placement& p : layout.items()) total += p.view->nbytes;
    for (const Placement& p : layout.items()) {
        const TensorView& v = *p.view;
        uint8_t* dst = dw.m_arena.data() + p.offset;
        if (v.dtype == DType::BF16) {
            if (staged)
                DSV2_RETURN_IF_ERROR(stager.copy(dst, v.data, v.nbytes, stream));
            else
                DSV2_CUDA_CHECK(cudaMemcpy(dst, v.data, v.nbytes, cudaMemcpyHostToDevice));
        } else {
            // Raw bytes to a scratch buffer, then converted into place.
            if (convertTmp.size() < v.nbytes) {
                DSV2_CUDA_CHECK(cudaStreamSynchronize(stream));
                convertTmp.reset();
                DSV2_ASSIGN_OR_RETURN(convertTmp, DeviceBuffer<uint8_t>::allocate(v.nbytes));
            }
            if (staged)
                DSV2_RETURN_IF_ERROR(stager.copy(convertTmp.data(), v.data, v.nbytes, stream));
            else
                DSV2_CUDA_CHECK(cudaMemcpy(convertTmp.data(), v.data, v.nbytes, cudaMemcpyHostToDevice));
            ConvertParams cp;
            cp.n = v.numel();
            cp.src_type = v.dtype == DType::F16 ? SourceType::F16 : SourceType::F32;
            cp.src = convertTmp.data();
            cp.dst = reinterpret_cast<__nv_bfloat16*>(dst);
            DSV2_RETURN_IF_ERROR(launchConvertToBf16(cp, stream));
            DSV2_CUDA_CHECK(cudaStreamSynchronize(stream));  // convertTmp is reused by the next tensor
        }
        done += v.nbytes;
        if (progress && !progress(done, total)) return Status(StatusCode::Cancelled, "model load cancelled");
    }
    DSV2_CUDA_CHECK(cudaStreamSynchronize(stream));

    auto at = [&](size_t off) { return reinterpret_cast<const __nv_bfloat16*>(dw.m_arena.data() + off); };
    dw.embed = at(embedOff);
    dw.finalNorm = at(normOff);
    dw.lmHead = at(headOff);
    for (size_t l = 0; l < w.layers.size(); ++l) {
        const LayerOffsets& o = offs[l];
        DeviceLayerWeights d;
        d.inputNorm = at(o.inputNorm);
        d.postNorm = at(o.postNorm);
        if (c.qLoraRank) {
            d.attn.qAProj = at(o.qA);
            d.attn.qANorm = at(o.qANorm);
            d.attn.qBProj = at(o.qB);
        } else {
            d.attn.qProj = at(o.qProj);
        }
        d.attn.kvAProj = at(o.kvA);
        d.attn.kvANorm = at(o.kvANorm);
        d.attn.kvBProj = at(o.kvB);
        d.attn.oProj = at(o.oProj);
        if (w.layers[l].moe) {
            d.moe.gate = at(o.gate);
            const int inter = static_cast<int>(c.moeIntermediateSize);
            for (size_t e = 0; e < o.expertGateUp.size(); ++e)
                d.moe.experts.push_back({at(o.expertGateUp[e]), at(o.expertDown[e]), inter});
            if (c.nSharedExperts > 0)
                d.moe.shared = {at(o.sharedGateUp), at(o.sharedDown),
                                static_cast<int>(c.nSharedExperts * c.moeIntermediateSize)};
        } else {
            d.dense = {at(o.denseGateUp), at(o.denseDown), static_cast<int>(c.intermediateSize)};
        }
        dw.layers.push_back(std::move(d));
    }
    return dw;
}

}  // namespace dsv2::cuda
