#pragma once
// A host-side forward pass of the whole model, sublayer by sublayer, built from engine/cpu's
// reference functions, in two numerics:
//  - Fp32: exactly the CPU backend's numerics (every activation fp32; = HF transformers' fp32).
//  - Bf16: the CUDA backend's numerics: the same fp32 arithmetic, but every activation the GPU
//    stores in bf16 is rounded to bf16 at the same point (docs/cuda-engine.md "Numerics"):
//    the normed sublayer inputs, q (and q_a), kv_a before and after its norm/RoPE (= the cache),
//    q_pe after RoPE, the expanded k/v, the softmax probabilities and the attention output
//    (expanded form), o_lat and v
//    (absorbed form; q_lat stays fp32), the MLP gate|up outputs and the SwiGLU output. The residual
//    stream, router logits, o_proj and down projections stay fp32.
// The GPU suites use it two ways: teacher-forced (each sublayer fed the GPU's own residual stream,
// so only that sublayer's arithmetic is compared; no drift across layers) and chained (a whole
// forward on its own stream, following the GPU's routing choices, for the end-to-end bf16 budget).
// Test code only: simple loops, no speed work beyond the cpu::ThreadPool in the GEMMs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/rope.h"
#include "cpu/router.h"
#include "cpu/thread_pool.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "model/tensor.h"

namespace dsv2::test {

enum class RefNumerics { Fp32, Bf16 };

inline float roundToBf16(float v) { return bf16ToFloat(floatToBf16(v)); }

// The router's decision for one token, as the reference took it.
struct RefRoute {
    std::vector<int32_t> ids;    // chosen experts (the reference's, or the followed ones)
    std::vector<float> weights;  // as applied (norm_topk_prob, routed_scaling_factor)
    bool differed = false;       // the followed choice was not the reference's own
    bool followed = false;       // ... and it was taken anyway
    double tieGap = 0.0;         // probability the followed experts lacked to be chosen (0 if same)
};

// Routing to follow: for each token of the call, the other side's K expert ids. A different
// choice is taken when its tie gap is at most `nearTie` (or always, when `always` is set).
struct RouteFollow {
    const std::vector<int32_t>* ids = nullptr;  // [tokens, K] for this MoE layer, row-major
    int64_t stride = 0;                         // elements between tokens (n_moe · K in ForwardRouting)
    int64_t offset = 0;                         // element of token 0, expert 0
    double nearTie = 0.0;
    bool always = false;
};

class ReferenceForward {
public:
    ReferenceForward(const ModelConfig& c, const ModelWeights& w, RefNumerics numerics, int threads = 0)
        : m_c(c),
          m_w(w),
          m_bf16(numerics == RefNumerics::Bf16),
          m_pool(std::make_unique<cpu::ThreadPool>(threads)),
          m_cache(static_cast<size_t>(c.numHiddenLayers)) {
        m_invFreq = cpu::ropeInvFreq(c);
        m_amplitude = static_cast<float>(c.ropeAmplitude());
        m_router = cpu::RouterParams::fromConfig(c);
        for (const LayerWeights& L : w.layers) {
            m_inputNorm.push_back(toFloatVector(L.inputLayernorm));
            m_postNorm.push_back(toFloatVector(L.postAttentionLayernorm));
            m_qANorm.push_back(L.attn.hasQLora() ? toFloatVector(L.attn.qALayernorm) : std::vector<float>{});
            m_kvANorm.push_back(toFloatVector(L.attn.kvALayernorm));
            m_kvB.push_back(toFloatVector(L.attn.kvBProj));
        }
        m_finalNorm = toFloatVector(w.norm);
    }

    const ModelConfig& config() const { return m_c; }
    bool bf16() const { return m_bf16; }
    // Cached positions of a layer (all layers agree between whole forwards).
    int64_t cached(int layer) const {
        return static_cast<int64_t>(m_cache[static_cast<size_t>(layer)].size()) / m_c.latentCacheDim();
    }
    void truncate(int64_t length) {
        for (auto& c : m_cache)
            c.resize(static_cast<size_t>(std::min<int64_t>(length * m_c.latentCacheDim(), c.size())));
    }

    // The attention sublayer of `layer` on residual [T, hidden] at positions cached(layer) ..
    // +T: appends the T cache entries and writes delta [T, hidden] (o_proj output).
    void attention(int layer, const float* residual, int64_t T, bool expanded, float* delta) {
        const ModelConfig& c = m_c;
        const AttentionWeights& a = m_w.layers[static_cast<size_t>(layer)].attn;
        const int64_t hidden = c.hiddenSize, H = c.numAttentionHeads, dn = c.qkNopeHeadDim, dr = c.qkRopeHeadDim,
                      dv = c.vHeadDim, kl = c.kvLoraRank, dqk = c.qHeadDim(), entry = c.latentCacheDim();
        const int64_t pos0 = cached(layer);
        std::vector<float> h(static_cast<size_t>(T * hidden));  // [T, hidden]
        normRows(residual, m_inputNorm[static_cast<size_t>(layer)].data(), T, hidden, static_cast<float>(c.rmsNormEps),
                 h.data());
        std::vector<float> q(static_cast<size_t>(T * H * dqk));  // [T, H, dqk]
        if (a.hasQLora()) {
            const int64_t r = *c.qLoraRank;
            std::vector<float> qa(static_cast<size_t>(T * r));
            cpu::linear(a.qAProj, h.data(), T, qa.data(), m_pool.get());
            round(qa);
            normRows(qa.data(), m_qANorm[static_cast<size_t>(layer)].data(), T, r, kLatentNormEps, qa.data());
            cpu::linear(a.qBProj, qa.data(), T, q.data(), m_pool.get());
        } else {
            cpu::linear(a.qProj, h.data(), T, q.data(), m_pool.get());
        }
        round(q);
        std::vector<float> kva(static_cast<size_t>(T * entry));  // [T, kv_lora + rope]
        cpu::linear(a.kvAProjWithMqa, h.data(), T, kva.data(), m_pool.get());
        round(kva);
        for (int64_t t = 0; t < T; ++t) {
            float* row = kva.data() + t * entry;
            cpu::rmsNorm(row, m_kvANorm[static_cast<size_t>(layer)].data(), kl, kLatentNormEps, row);
            cpu::applyRope(row + kl, dr, pos0 + t, m_invFreq.data(), m_amplitude);
            for (int64_t hd = 0; hd < H; ++hd)
                cpu::applyRope(q.data() + (t * H + hd) * dqk + dn, dr, pos0 + t, m_invFreq.data(), m_amplitude);
        }
        round(kva);  // = the bf16 cache entries
        round(q);    // q_pe after RoPE (q_nope is already bf16: rounding again changes nothing)
        auto& cache = m_cache[static_cast<size_t>(layer)];
        cache.insert(cache.end(), kva.begin(), kva.end());
        const int64_t L = pos0 + T;
        const float* lat = cache.data();
        const float* kvB = m_kvB[static_cast<size_t>(layer)].data();  // [H·(dn+dv), kl]
        const auto scale = static_cast<float>(c.softmaxScale());

        std::vector<float> o(static_cast<size_t>(T * H * dv));  // [T, H, dv]
        if (expanded) {
            // kv [L, H, dn+dv] = c_kv · kv_bᵀ, bf16 on the GPU.
            std::vector<float> kv(static_cast<size_t>(L * H * (dn + dv)));
            m_pool->parallelFor(L, 16, [&](int64_t b, int64_t e) {
                for (int64_t l = b; l < e; ++l)
                    for (int64_t r = 0; r < H * (dn + dv); ++r)
                        kv[static_cast<size_t>(l * H * (dn + dv) + r)] =
                            rnd(cpu::dot(lat + l * entry, kvB + r * kl, kl));
            });
            m_pool->parallelFor(T * H, 1, [&](int64_t b, int64_t e) {
                std::vector<float> p(static_cast<size_t>(L));
                for (int64_t i = b; i < e; ++i) {
                    const int64_t t = i / H, hd = i % H, n = pos0 + t + 1;
                    const float* qt = q.data() + (t * H + hd) * dqk;
                    for (int64_t l = 0; l < n; ++l) {
                        const float* k = kv.data() + (l * H + hd) * (dn + dv);
                        p[static_cast<size_t>(l)] =
                            (cpu::dot(qt, k, dn) + cpu::dot(qt + dn, lat + l * entry + kl, dr)) * scale;
                    }
                    cpu::softmaxInPlace(p.data(), n);
                    // The GPU's P·V GEMM takes the probabilities in bf16 (as FlashAttention does).
                    for (int64_t l = 0; l < n; ++l) p[static_cast<size_t>(l)] = rnd(p[static_cast<size_t>(l)]);
                    std::vector<double> acc(static_cast<size_t>(dv), 0.0);
                    for (int64_t l = 0; l < n; ++l) {
                        const float* v = kv.data() + (l * H + hd) * (dn + dv) + dn;
                        for (int64_t j = 0; j < dv; ++j)
                            acc[static_cast<size_t>(j)] += static_cast<double>(p[static_cast<size_t>(l)]) * v[j];
                    }
                    for (int64_t j = 0; j < dv; ++j)
                        o[static_cast<size_t>((t * H + hd) * dv + j)] =
                            rnd(static_cast<float>(acc[static_cast<size_t>(j)]));
                }
            });
        } else {
            m_pool->parallelFor(T * H, 1, [&](int64_t b, int64_t e) {
                std::vector<float> p(static_cast<size_t>(L)), qLat(static_cast<size_t>(kl)),
                    oLat(static_cast<size_t>(kl));
                for (int64_t i = b; i < e; ++i) {
                    const int64_t t = i / H, hd = i % H, n = pos0 + t + 1;
                    const float* qt = q.data() + (t * H + hd) * dqk;
                    const float* wk = kvB + hd * (dn + dv) * kl;  // W_UK [dn, kl]
                    for (int64_t cc = 0; cc < kl; ++cc) {
                        double s = 0.0;
                        for (int64_t d = 0; d < dn; ++d) s += static_cast<double>(qt[d]) * wk[d * kl + cc];
                        qLat[static_cast<size_t>(cc)] = static_cast<float>(s);  // fp32 on the GPU
                    }
                    for (int64_t l = 0; l < n; ++l)
                        p[static_cast<size_t>(l)] =
                            (cpu::dot(qLat.data(), lat + l * entry, kl) + cpu::dot(qt + dn, lat + l * entry + kl, dr)) *
                            scale;
                    cpu::softmaxInPlace(p.data(), n);
                    std::vector<double> acc(static_cast<size_t>(kl), 0.0);
                    for (int64_t l = 0; l < n; ++l) {
                        const float* row = lat + l * entry;
                        for (int64_t cc = 0; cc < kl; ++cc)
                            acc[static_cast<size_t>(cc)] += static_cast<double>(p[static_cast<size_t>(l)]) * row[cc];
                    }
                    for (int64_t cc = 0; cc < kl; ++cc)
                        oLat[static_cast<size_t>(cc)] = rnd(static_cast<float>(acc[static_cast<size_t>(cc)]));
                    const float* wv = wk + dn * kl;  // W_UV [dv, kl]
                    for (int64_t j = 0; j < dv; ++j)
                        o[static_cast<size_t>((t * H + hd) * dv + j)] = rnd(cpu::dot(oLat.data(), wv + j * kl, kl));
                }
            });
        }
        cpu::linear(a.oProj, o.data(), T, delta, m_pool.get());
    }

    // The FFN sublayer of `layer` on residual [T, hidden]: delta [T, hidden]. For MoE layers the
    // decisions go to `routes` (T entries) when given; `follow` makes it take the other side's
    // choice where they differ (see RouteFollow).
    void ffn(int layer, const float* residual, int64_t T, float* delta, const RouteFollow* follow = nullptr,
             std::vector<RefRoute>* routes = nullptr) {
        const ModelConfig& c = m_c;
        const int64_t hidden = c.hiddenSize;
        const LayerWeights& L = m_w.layers[static_cast<size_t>(layer)];
        std::vector<float> h(static_cast<size_t>(T * hidden));
        normRows(residual, m_postNorm[static_cast<size_t>(layer)].data(), T, hidden, static_cast<float>(c.rmsNormEps),
                 h.data());
        if (!L.moe) {
            mlp(*L.denseMlp, h.data(), T, delta);
            return;
        }
        const MoeWeights& m = *L.moe;
        const int64_t E = c.nRoutedExperts, K = c.numExpertsPerTok;
        std::vector<float> logits(static_cast<size_t>(T * E));  // fp32 router logits from the (bf16) normed input
        cpu::linear(m.gate, h.data(), T, logits.data(), m_pool.get());
        std::vector<RefRoute> local(static_cast<size_t>(T));
        std::vector<std::vector<int64_t>> tokensOf(static_cast<size_t>(E));
        std::vector<std::vector<float>> weightsOf(static_cast<size_t>(E));
        for (int64_t t = 0; t < T; ++t) {
            RefRoute& r = local[static_cast<size_t>(t)];
            route(logits.data() + t * E, follow, t, r);
            for (int64_t k = 0; k < K; ++k) {
                tokensOf[static_cast<size_t>(r.ids[k])].push_back(t);
                weightsOf[static_cast<size_t>(r.ids[k])].push_back(r.weights[k]);
            }
        }
        std::fill_n(delta, T * hidden, 0.0f);
        std::vector<float> xs, ys;
        for (int64_t e = 0; e < E; ++e) {
            const auto& toks = tokensOf[static_cast<size_t>(e)];
            if (toks.empty()) continue;
            const auto n = static_cast<int64_t>(toks.size());
            xs.resize(static_cast<size_t>(n * hidden));
            ys.resize(static_cast<size_t>(n * hidden));
            for (int64_t i = 0; i < n; ++i) std::copy_n(h.data() + toks[i] * hidden, hidden, xs.data() + i * hidden);
            mlp(m.experts[static_cast<size_t>(e)], xs.data(), n, ys.data());
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < hidden; ++j)
                    delta[toks[i] * hidden + j] +=
                        ys[static_cast<size_t>(i * hidden + j)] * weightsOf[static_cast<size_t>(e)][i];
        }
        if (c.nSharedExperts > 0) {
            std::vector<float> shared(static_cast<size_t>(T * hidden));
            mlp(m.sharedExperts, h.data(), T, shared.data());
            for (size_t i = 0; i < shared.size(); ++i) delta[i] += shared[i];
        }
        if (routes) *routes = std::move(local);
    }

    // Logits [rows, vocab] of residual rows [rows, hidden] (final norm, lm_head; fp32 out).
    void logits(const float* residual, int64_t rows, float* out) {
        std::vector<float> h(static_cast<size_t>(rows * m_c.hiddenSize));
        normRows(residual, m_finalNorm.data(), rows, m_c.hiddenSize, static_cast<float>(m_c.rmsNormEps), h.data());
        cpu::linear(m_w.lmHead, h.data(), rows, out, m_pool.get());
    }

    // The embedding rows [T, hidden] (fp32 widening of the bf16 table: exact).
    std::vector<float> embed(const std::vector<int32_t>& tokens) const {
        std::vector<float> x(tokens.size() * static_cast<size_t>(m_c.hiddenSize));
        for (size_t t = 0; t < tokens.size(); ++t)
            readRow(m_w.embedTokens, tokens[t] * m_c.hiddenSize, m_c.hiddenSize, x.data() + t * m_c.hiddenSize);
        return x;
    }

    // A chained forward on its own residual stream: logits of every row ([T, vocab]) and, per MoE
    // layer, the decisions. `follow` (optional, one per MoE layer) as in ffn().
    struct Chained {
        std::vector<float> logits;
        std::vector<std::vector<RefRoute>> routes;  // [moe layer][token]
        std::vector<std::vector<float>> stages;     // with keepStages: the residual stream after each sublayer
    };
    Chained forward(const std::vector<int32_t>& tokens, bool expanded, const std::vector<RouteFollow>* follow = nullptr,
                    bool keepStages = false) {
        const auto T = static_cast<int64_t>(tokens.size());
        std::vector<float> x = embed(tokens), d(x.size());
        Chained out;
        if (keepStages) out.stages.push_back(x);
        size_t moe = 0;
        for (int l = 0; l < static_cast<int>(m_c.numHiddenLayers); ++l) {
            attention(l, x.data(), T, expanded, d.data());
            for (size_t i = 0; i < x.size(); ++i) x[i] += d[i];
            if (keepStages) out.stages.push_back(x);
            const bool isMoe = m_w.layers[static_cast<size_t>(l)].moe.has_value();
            std::vector<RefRoute> routes;
            ffn(l, x.data(), T, d.data(), isMoe && follow ? &(*follow)[moe] : nullptr, &routes);
            if (isMoe) {
                out.routes.push_back(std::move(routes));
                ++moe;
            }
            for (size_t i = 0; i < x.size(); ++i) x[i] += d[i];
            if (keepStages) out.stages.push_back(x);
        }
        out.logits.resize(static_cast<size_t>(T * m_c.vocabSize));
        logits(x.data(), T, out.logits.data());
        return out;
    }

    // The probability mass the experts `want` lacked to be this router's choice (0 when they are
    // its choice): for each wanted expert it does not choose, how far its probability is below the
    // k-th chosen one (group-limited: also how far its group's best is below the last kept group's).
    double tieGap(const float* probs, const std::vector<int32_t>& chosen, const int32_t* want) const {
        const int64_t E = m_c.nRoutedExperts, K = m_c.numExpertsPerTok;
        const std::set<int32_t> mine(chosen.begin(), chosen.end());
        float kth = 1e30f;
        for (int32_t e : chosen) kth = std::min(kth, probs[e]);
        double gap = 0.0;
        const bool grouped = m_router.method == TopkMethod::GroupLimitedGreedy && m_router.nGroup > 1;
        std::vector<float> groupBest;
        std::set<int64_t> kept;
        const int64_t perGroup = grouped ? E / m_router.nGroup : E;
        if (grouped) {
            for (int64_t g = 0; g < m_router.nGroup; ++g)
                groupBest.push_back(*std::max_element(probs + g * perGroup, probs + (g + 1) * perGroup));
            for (int32_t e : chosen) kept.insert(e / perGroup);
        }
        float lastKept = 1e30f;
        for (int64_t g : kept) lastKept = std::min(lastKept, groupBest[static_cast<size_t>(g)]);
        for (int64_t k = 0; k < K; ++k) {
            const int32_t e = want[k];
            if (mine.count(e)) continue;
            gap = std::max(gap, static_cast<double>(kth - probs[e]));
            if (grouped && !kept.count(e / perGroup))
                gap = std::max(gap, static_cast<double>(lastKept - groupBest[static_cast<size_t>(e / perGroup)]));
        }
        return gap;
    }

private:
    // q_a_layernorm / kv_a_layernorm: RMSNorm's default epsilon (as the CPU backend and HF).
    static constexpr float kLatentNormEps = 1e-6f;

    float rnd(float v) const { return m_bf16 ? roundToBf16(v) : v; }
    void round(std::vector<float>& v) const {
        if (m_bf16)
            for (float& x : v) x = roundToBf16(x);
    }
    void normRows(const float* x, const float* weight, int64_t rows, int64_t n, float eps, float* out) const {
        for (int64_t r = 0; r < rows; ++r) {
            cpu::rmsNorm(x + r * n, weight, n, eps, out + r * n);
            if (m_bf16)
                for (int64_t i = 0; i < n; ++i) out[r * n + i] = roundToBf16(out[r * n + i]);
        }
    }
    // y [T, hidden] = down(silu(gate x) · up x), gate/up and their product rounded in Bf16.
    void mlp(const MlpWeights& w, const float* x, int64_t T, float* y) {
        const int64_t inter = w.gateProj.dim(0);
        std::vector<float> g(static_cast<size_t>(T * inter)), u(static_cast<size_t>(T * inter));
        cpu::linear(w.gateProj, x, T, g.data(), m_pool.get());
        cpu::linear(w.upProj, x, T, u.data(), m_pool.get());
        round(g);
        round(u);
        for (size_t i = 0; i < g.size(); ++i) g[i] = rnd(cpu::silu(g[i]) * u[i]);
        cpu::linear(w.downProj, g.data(), T, y, m_pool.get());
    }
    void route(const float* logits, const RouteFollow* follow, int64_t t, RefRoute& r) const {
        const int64_t E = m_c.nRoutedExperts, K = m_c.numExpertsPerTok;
        r.ids.assign(static_cast<size_t>(K), 0);
        r.weights.assign(static_cast<size_t>(K), 0.0f);
        std::vector<float> scratch(static_cast<size_t>(E));
        cpu::routeToken(logits, m_router, r.ids.data(), r.weights.data(), scratch.data());
        if (!follow || !follow->ids) return;
        const int32_t* want = follow->ids->data() + follow->offset + t * follow->stride;
        const std::set<int32_t> a(r.ids.begin(), r.ids.end()), b(want, want + K);
        if (a == b) return;
        r.differed = true;
        std::vector<float> probs(logits, logits + E);
        cpu::softmaxInPlace(probs.data(), E);
        r.tieGap = tieGap(probs.data(), r.ids, want);
        if (!follow->always && r.tieGap > follow->nearTie) return;
        r.followed = true;
        // The wanted experts with this router's probabilities, weighted as routeToken does.
        double sum = 0.0;
        for (int64_t k = 0; k < K; ++k) {
            r.ids[static_cast<size_t>(k)] = want[k];
            r.weights[static_cast<size_t>(k)] = probs[static_cast<size_t>(want[k])];
            sum += r.weights[static_cast<size_t>(k)];
        }
        for (int64_t k = 0; k < K; ++k) {
            if (K > 1 && m_router.normTopkProb) r.weights[static_cast<size_t>(k)] /= static_cast<float>(sum + 1e-20);
            r.weights[static_cast<size_t>(k)] *= m_router.routedScalingFactor;
        }
    }

    const ModelConfig& m_c;
    const ModelWeights& m_w;
    bool m_bf16;
    std::unique_ptr<cpu::ThreadPool> m_pool;
    std::vector<std::vector<float>> m_cache;  // per layer [positions, kv_lora + rope]
    std::vector<float> m_invFreq;
    float m_amplitude = 1.0f;
    cpu::RouterParams m_router;
    std::vector<std::vector<float>> m_inputNorm, m_postNorm, m_qANorm, m_kvANorm, m_kvB;
    std::vector<float> m_finalNorm;
};

}  // namespace dsv2::test
