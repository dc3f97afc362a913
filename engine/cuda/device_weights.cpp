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

// Part of a [rows, cols] tensor (the hub's [out, in]): rows [rowBegin, +rowCount), columns
// [colBegin, +colCount). The whole tensor by default; 1-D tensors are one row.
struct Slice {
    int64_t rowBegin = 0, rowCount = -1;
    int64_t colBegin = 0, colCount = -1;
    static Slice rows(int64_t begin, int64_t count) { return {begin, count, 0, -1}; }
    static Slice cols(int64_t begin, int64_t count) { return {0, -1, begin, count}; }
};

// One tensor (or slice) to copy: its view and where its bf16 copy goes in the arena.
struct Placement {
    const TensorView* view = nullptr;
    size_t offset = 0;
    int64_t rows = 1, cols = 0;  // the view as a matrix
    int64_t rowBegin = 0, rowCount = 1;
    int64_t colBegin = 0, colCount = 0;
    int64_t numel() const { return rowCount * colCount; }
    bool contiguous() const { return colCount == cols; }  // whole rows: one block of memory
};

Placement placementOf(const TensorView& v, const Slice& s, size_t offset) {
    Placement p;
    p.view = &v;
    p.offset = offset;
    p.rows = v.rank() >= 2 ? v.dim(0) : 1;
    p.cols = v.rank() >= 2 ? v.numel() / p.rows : v.numel();
    p.rowBegin = s.rowBegin;
    p.rowCount = s.rowCount < 0 ? p.rows - s.rowBegin : s.rowCount;
    p.colBegin = s.colBegin;
    p.colCount = s.colCount < 0 ? p.cols - s.colBegin : s.colCount;
    return p;
}

class Layout {
public:
    // Places `v` (or its slice `s`).
    size_t place(const TensorView& v, const Slice& s = {}) {
        const size_t off = alignUp(m_size);
        m_items.push_back(placementOf(v, s, off));
        m_size = off + static_cast<size_t>(m_items.back().numel()) * 2;
        return off;
    }
    // Two tensors back to back (gate|up pairs: one GEMM computes both).
    size_t placePair(const TensorView& first, const TensorView& second, const Slice& s = {}) {
        const size_t off = place(first, s);
        m_items.push_back(placementOf(second, s, m_size));  // directly after, no padding
        m_size += static_cast<size_t>(m_items.back().numel()) * 2;
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

    // Rows [0, nRows) of a strided source (srcStride bytes apart), rowBytes each, packed densely at dst.
    Status copyRows(void* dst, const uint8_t* src, size_t srcStride, size_t rowBytes, int64_t nRows,
                    cudaStream_t stream) {
        const auto perChunk = static_cast<int64_t>(std::max<size_t>(1, kStageBytes / rowBytes));
        for (int64_t r0 = 0; r0 < nRows; r0 += perChunk) {
            const int64_t n = std::min(perChunk, nRows - r0);
            const int i = m_next;
            m_next ^= 1;
            DSV2_CUDA_CHECK(cudaEventSynchronize(m_done[i].get()));
            for (int64_t r = 0; r < n; ++r)
                std::memcpy(m_buf[i].data() + r * rowBytes, src + (r0 + r) * srcStride, rowBytes);
            DSV2_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(dst) + r0 * rowBytes, m_buf[i].data(),
                                            static_cast<size_t>(n) * rowBytes, cudaMemcpyHostToDevice, stream));
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

// Every view against the (whole model's) config, before anything is placed.
Status checkWeights(const ModelConfig& c, const ModelWeights& w) {
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

    return Status::ok();
}

struct LayerOffsets {
    size_t inputNorm = 0, postNorm = 0, qProj = 0, qA = 0, qANorm = 0, qB = 0, kvA = 0, kvANorm = 0, kvB = 0, oProj = 0;
    size_t denseGateUp = 0, denseDown = 0, gate = 0, sharedGateUp = 0, sharedDown = 0;
    std::vector<size_t> expertGateUp, expertDown;  // kNotHere for experts of other ranks
};

constexpr size_t kNotHere = ~size_t{0};

// Where every tensor (slice) of the rank goes in the arena.
struct ArenaPlan {
    Layout layout;
    size_t embedOff = 0, normOff = 0, headOff = 0;
    std::vector<LayerOffsets> layers;
};

ArenaPlan planArena(const ModelConfig& c, const ModelWeights& w, const parallel::RankSlice& s) {
    ArenaPlan a;
    Layout& layout = a.layout;
    const int64_t dqk = c.qHeadDim(), dkv = c.qkNopeHeadDim + c.vHeadDim;
    const Slice qRows = Slice::rows(s.headBegin * dqk, s.headCount * dqk);
    const Slice kvRows = Slice::rows(s.headBegin * dkv, s.headCount * dkv);
    const Slice oCols = Slice::cols(s.headBegin * c.vHeadDim, s.headCount * c.vHeadDim);
    a.embedOff = layout.place(w.embedTokens);
    a.layers.resize(w.layers.size());
    for (size_t l = 0; l < w.layers.size(); ++l) {
        const LayerWeights& L = w.layers[l];
        LayerOffsets& o = a.layers[l];
        o.inputNorm = layout.place(L.inputLayernorm);
        o.postNorm = layout.place(L.postAttentionLayernorm);
        if (c.qLoraRank) {
            o.qA = layout.place(L.attn.qAProj);
            o.qANorm = layout.place(L.attn.qALayernorm);
            o.qB = layout.place(L.attn.qBProj, qRows);
        } else {
            o.qProj = layout.place(L.attn.qProj, qRows);
        }
        o.kvA = layout.place(L.attn.kvAProjWithMqa);
        o.kvANorm = layout.place(L.attn.kvALayernorm);
        o.kvB = layout.place(L.attn.kvBProj, kvRows);
        o.oProj = layout.place(L.attn.oProj, oCols);
        if (L.moe) {
            o.gate = layout.place(L.moe->gate);
            for (size_t e = 0; e < L.moe->experts.size(); ++e) {
                const MlpWeights& x = L.moe->experts[e];
                const bool mine = s.owns(static_cast<int64_t>(e));
                o.expertGateUp.push_back(mine ? layout.placePair(x.gateProj, x.upProj) : kNotHere);
                o.expertDown.push_back(mine ? layout.place(x.downProj) : kNotHere);
            }
            if (c.nSharedExperts > 0) {
                const MlpWeights& x = L.moe->sharedExperts;
                o.sharedGateUp = layout.placePair(x.gateProj, x.upProj, Slice::rows(s.sharedBegin, s.sharedCount));
                o.sharedDown = layout.place(x.downProj, Slice::cols(s.sharedBegin, s.sharedCount));
            }
        } else {
            o.denseGateUp =
                layout.placePair(L.denseMlp->gateProj, L.denseMlp->upProj, Slice::rows(s.denseBegin, s.denseCount));
            o.denseDown = layout.place(L.denseMlp->downProj, Slice::cols(s.denseBegin, s.denseCount));
        }
    }
    a.normOff = layout.place(w.norm);
    const TensorView& lmHead = (c.tieWordEmbeddings && !w.lmHead.valid()) ? w.embedTokens : w.lmHead;
    const bool tied = lmHead.data == w.embedTokens.data;
    // Tied: this rank's vocabulary rows of the (whole) embedding table it holds anyway.
    a.headOff = tied ? a.embedOff + static_cast<size_t>(s.vocabBegin * c.hiddenSize) * 2
                     : layout.place(lmHead, Slice::rows(s.vocabBegin, s.vocabCount));
    return a;
}

// Copies one placement's bytes (its slice of the view) to `dst`, `raw` bytes per element.
Status copyPlacement(const Placement& p, uint8_t* dst, Stager* stager, cudaStream_t stream) {
    const TensorView& v = *p.view;
    const size_t elt = dtypeSize(v.dtype);
    const uint8_t* src = reinterpret_cast<const uint8_t*>(v.data);
    if (p.contiguous()) {
        const uint8_t* from = src + static_cast<size_t>(p.rowBegin * p.cols) * elt;
        const size_t n = static_cast<size_t>(p.numel()) * elt;
        if (stager) return stager->copy(dst, from, n, stream);
        DSV2_CUDA_CHECK(cudaMemcpy(dst, from, n, cudaMemcpyHostToDevice));
        return Status::ok();
    }
    const uint8_t* from = src + static_cast<size_t>(p.rowBegin * p.cols + p.colBegin) * elt;
    const size_t rowBytes = static_cast<size_t>(p.colCount) * elt, stride = static_cast<size_t>(p.cols) * elt;
    if (stager) return stager->copyRows(dst, from, stride, rowBytes, p.rowCount, stream);
    DSV2_CUDA_CHECK(
        cudaMemcpy2D(dst, rowBytes, from, stride, rowBytes, static_cast<size_t>(p.rowCount), cudaMemcpyHostToDevice));
    return Status::ok();
}

}  // namespace

int64_t DeviceModelWeights::bytesFor(const ModelConfig& config, const ModelWeights& weights,
                                     const parallel::RankSlice& slice) {
    return static_cast<int64_t>(planArena(config, weights, slice).layout.size());
}

Result<DeviceModelWeights> DeviceModelWeights::upload(const ModelConfig& c, const ModelWeights& w,
                                                      const parallel::RankSlice& slice, const Progress& progress,
                                                      cudaStream_t stream) {
    DSV2_RETURN_IF_ERROR(checkWeights(c, w));
    const ArenaPlan plan = planArena(c, w, slice);

    DeviceModelWeights dw;
    auto arena = DeviceBuffer<uint8_t>::allocate(plan.layout.size());
    if (!arena.isOk())
        return arena.status().withContext("allocating " + std::to_string(plan.layout.size()) + " bytes of weights");
    dw.m_arena = std::move(arena).value();

    Stager stager;
    const bool staged = stager.init().isOk();  // without pinned memory: plain (synchronous) copies
    (void)cudaGetLastError();
    DeviceBuffer<uint8_t> convertTmp;
    uint64_t total = 0, done = 0;
    auto rawBytes = [](const Placement& p) { return static_cast<uint64_t>(p.numel()) * dtypeSize(p.view->dtype); };
    for (const Placement& p : plan.layout.items()) total += rawBytes(p);
    for (const Placement& p : plan.layout.items()) {
        const TensorView& v = *p.view;
        uint8_t* dst = dw.m_arena.data() + p.offset;
        if (v.dtype == DType::BF16) {
            DSV2_RETURN_IF_ERROR(copyPlacement(p, dst, staged ? &stager : nullptr, stream));
        } else {
            // Raw bytes to a scratch buffer, then converted into place.
            const size_t raw = rawBytes(p);
            if (convertTmp.size() < raw) {
                DSV2_CUDA_CHECK(cudaStreamSynchronize(stream));
                convertTmp.reset();
                DSV2_ASSIGN_OR_RETURN(convertTmp, DeviceBuffer<uint8_t>::allocate(raw));
            }
            DSV2_RETURN_IF_ERROR(copyPlacement(p, convertTmp.data(), staged ? &stager : nullptr, stream));
            ConvertParams cp;
            cp.n = p.numel();
            cp.src_type = v.dtype == DType::F16 ? SourceType::F16 : SourceType::F32;
            cp.src = convertTmp.data();
            cp.dst = reinterpret_cast<__nv_bfloat16*>(dst);
            DSV2_RETURN_IF_ERROR(launchConvertToBf16(cp, stream));
            DSV2_CUDA_CHECK(cudaStreamSynchronize(stream));  // convertTmp is reused by the next tensor
        }
        done += rawBytes(p);
        if (progress && !progress(done, total)) return Status(StatusCode::Cancelled, "model load cancelled");
    }
    DSV2_CUDA_CHECK(cudaStreamSynchronize(stream));

    auto at = [&](size_t off) {
        return off == kNotHere ? nullptr : reinterpret_cast<const __nv_bfloat16*>(dw.m_arena.data() + off);
    };
    dw.embed = at(plan.embedOff);
    dw.finalNorm = at(plan.normOff);
    dw.lmHead = at(plan.headOff);
    for (size_t l = 0; l < w.layers.size(); ++l) {
        const LayerOffsets& o = plan.layers[l];
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
                d.moe.shared = {at(o.sharedGateUp), at(o.sharedDown), static_cast<int>(slice.sharedCount)};
        } else {
            d.dense = {at(o.denseGateUp), at(o.denseDown), static_cast<int>(slice.denseCount)};
        }
        dw.layers.push_back(std::move(d));
    }
    return dw;
}

}  // namespace dsv2::cuda
