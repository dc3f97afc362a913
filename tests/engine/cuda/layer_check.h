#pragma once
// Sublayer-by-sublayer comparison of a backend's residual stream with reference_forward.h.
//
// The CUDA backend's test hook (CudaBackendExtras::residualTap) hands out the fp32 residual stream
// of every chunk after each sublayer: stage 0 = the embeddings, 2l+1 = after layer l's attention,
// 2l+2 = after its FFN. For each chunk and sublayer, the reference runs the same sublayer on the
// backend's own input stage (teacher forcing) and its delta is compared with the backend's delta
// (stage k+1 - stage k). That isolates each sublayer's arithmetic: no drift is carried from the
// layers below, so a wrong sublayer shows up where it is, at its own size.
//
// Two references run side by side: Bf16 (the CUDA backend's rounding points; the check) and Fp32
// (the CPU backend's numerics; reported, to show how much of the total is bf16 rounding).
// Router decisions: where the backend's experts differ from the reference's, the reference takes
// the backend's choice if the tie gap (reference_forward.h) is at most `nearTie` and counts it;
// beyond that it is a failure (the Bf16 reference sees the same bf16 inputs, so only a real tie
// can flip).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend.h"
#include "reference_forward.h"

namespace dsv2::test {

// One chunk's stages as the backend handed them out.
struct TapChunk {
    int64_t pos0 = 0;
    int64_t nTokens = 0;
    bool expanded = false;
    std::vector<std::vector<float>> stages;  // [2·layers + 1][nTokens · hidden]
};

// Per sublayer over a whole session: relRMS = ‖got − want‖ / ‖want‖ summed over every chunk (a
// one-token decode chunk alone is too small a sample: one moved bf16 rounding of its 64-wide input
// is already ~5e-4 of it), and normMax = the largest max|got − want| / max|want| of any chunk.
struct ErrorPair {
    double d2 = 0.0, w2 = 0.0;
    double normMax = 0.0;
    double relRms() const { return w2 > 0 ? std::sqrt(d2 / w2) : std::sqrt(d2); }
    void add(const float* got, const float* want, size_t n) {
        double dMax = 0.0, wMax = 0.0;
        for (size_t i = 0; i < n; ++i) {
            const double d = static_cast<double>(got[i]) - want[i];
            d2 += d * d;
            w2 += static_cast<double>(want[i]) * want[i];
            dMax = std::max(dMax, std::fabs(d));
            wMax = std::max(wMax, std::fabs(static_cast<double>(want[i])));
            if (!std::isfinite(got[i])) dMax = INFINITY, d2 = INFINITY;
        }
        normMax = std::max(normMax, wMax > 0 ? dMax / wMax : dMax);
    }
};

struct LayerReport {
    std::vector<ErrorPair> bf16;  // per sublayer (2·layers), then the logits
    std::vector<ErrorPair> fp32;
    bool embeddingsExact = true;
    bool plumbingOk = true;  // the taps covered the call and the reference cache kept pace
    int64_t chunks = 0, decisions = 0, routeDifferences = 0, routeFailures = 0;
    double worstTieGap = 0.0;       // of the differences the reference followed
    double worstWeightError = 0.0;  // backend vs Bf16 reference, same experts, / max(1, |weight|)
    std::string firstFailure;

    std::string table(const ModelConfig& c) const {
        std::ostringstream os;
        os.precision(2);
        os << std::scientific;
        os << "sublayer      vs bf16 ref: relRMS  normMax   | vs fp32 ref: relRMS  normMax\n";
        for (size_t s = 0; s < bf16.size(); ++s) {
            std::string name = s + 1 == bf16.size() ? "logits" : (s % 2 ? "ffn  L" : "attn L") + std::to_string(s / 2);
            if (s + 1 < bf16.size() && s % 2 && c.isMoeLayer(static_cast<int64_t>(s / 2)))
                name = "moe  L" + std::to_string(s / 2);
            char line[160];
            std::snprintf(line, sizeof line, "%-12s %10.2e %10.2e   | %10.2e %10.2e\n", name.c_str(), bf16[s].relRms(),
                          bf16[s].normMax, fp32[s].relRms(), fp32[s].normMax);
            os << line;
        }
        os << "routing: " << routeDifferences << " of " << decisions
           << " decisions differ from the bf16 reference (worst tie gap " << worstTieGap << "), " << routeFailures
           << " beyond a near-tie; worst weight error " << worstWeightError << "; embeddings "
           << (embeddingsExact ? "exact" : "DIFFER") << "; " << chunks << " chunks\n";
        return os.str();
    }
};

class LayerChecker {
public:
    LayerChecker(const ModelConfig& c, const ModelWeights& w, double nearTie)
        : m_c(c), m_bf16(c, w, RefNumerics::Bf16), m_fp32(c, w, RefNumerics::Fp32), m_nearTie(nearTie) {
        m_report.bf16.assign(static_cast<size_t>(2 * c.numHiddenLayers + 1), {});
        m_report.fp32 = m_report.bf16;
    }

    const LayerReport& report() const { return m_report; }
    void truncate(int64_t length) {
        m_bf16.truncate(length);
        m_fp32.truncate(length);
    }

    // One forward call of `tokens` whose chunks are `chunks` and whose result is `result`.
    void check(const std::vector<int32_t>& tokens, const std::vector<TapChunk>& chunks, const ForwardResult& result) {
        const ModelConfig& c = m_c;
        const int64_t hidden = c.hiddenSize, vocab = c.vocabSize, nLayers = c.numHiddenLayers;
        const int64_t callPos0 = chunks.empty() ? 0 : chunks.front().pos0;
        const auto nMoe = static_cast<int64_t>(result.routing.moeLayers.size());
        const int64_t K = result.routing.topK;
        int64_t covered = 0;
        for (const TapChunk& ch : chunks) {
            ++m_report.chunks;
            const int64_t T = ch.nTokens, t0 = ch.pos0 - callPos0;
            if (static_cast<int64_t>(ch.stages.size()) != 2 * nLayers + 1 || t0 != covered) {
                fail("the taps do not cover the call's tokens stage by stage");
                return;
            }
            covered += T;
            const std::vector<int32_t> chunkTokens(tokens.begin() + t0, tokens.begin() + t0 + T);
            const std::vector<float> emb = m_bf16.embed(chunkTokens);
            if (!std::equal(emb.begin(), emb.end(), ch.stages[0].begin())) m_report.embeddingsExact = false;
            std::vector<float> want(static_cast<size_t>(T * hidden)), got(want.size());
            int64_t moe = 0;
            for (int l = 0; l < static_cast<int>(nLayers); ++l) {
                if (m_bf16.cached(l) != ch.pos0) {
                    fail("the reference cache holds " + std::to_string(m_bf16.cached(l)) +
                         " positions, the chunk starts at " + std::to_string(ch.pos0));
                    return;
                }
                for (int s = 0; s < 2; ++s) {
                    const size_t stage = static_cast<size_t>(2 * l + s);
                    const std::vector<float>& in = ch.stages[stage];
                    const std::vector<float>& outStage = ch.stages[stage + 1];
                    for (size_t i = 0; i < got.size(); ++i) got[i] = outStage[i] - in[i];
                    const bool isMoe =
                        s == 1 && nMoe > 0 && moe < nMoe && result.routing.moeLayers[static_cast<size_t>(moe)] == l;
                    for (int which = 0; which < 2; ++which) {
                        ReferenceForward& ref = which == 0 ? m_bf16 : m_fp32;
                        if (s == 0) {
                            ref.attention(l, in.data(), T, ch.expanded, want.data());
                        } else if (isMoe) {
                            RouteFollow follow;
                            follow.ids = &result.routing.expertIds;
                            follow.stride = nMoe * K;
                            follow.offset = (t0 * nMoe + moe) * K;
                            follow.nearTie = m_nearTie;
                            follow.always = which == 1;  // the fp32 side only measures arithmetic
                            std::vector<RefRoute> routes;
                            ref.ffn(l, in.data(), T, want.data(), &follow, &routes);
                            if (which == 0) tallyRoutes(routes, result, t0, moe, l);
                        } else {
                            ref.ffn(l, in.data(), T, want.data());
                        }
                        auto& stats = which == 0 ? m_report.bf16 : m_report.fp32;
                        stats[stage].add(got.data(), want.data(), got.size());
                    }
                    if (isMoe) ++moe;
                }
            }
            // Logits of the rows this chunk returned.
            const bool all = result.nRows == result.nTokens;
            const int64_t firstRow = all ? 0 : (t0 + T == result.nTokens ? T - 1 : T);
            const int64_t rows = T - firstRow;
            if (rows > 0) {
                const std::vector<float>& last = ch.stages[static_cast<size_t>(2 * nLayers)];
                std::vector<float> lw(static_cast<size_t>(rows * vocab));
                const float* gotLogits = result.logits.data() + (all ? t0 * vocab : 0);
                for (int which = 0; which < 2; ++which) {
                    ReferenceForward& ref = which == 0 ? m_bf16 : m_fp32;
                    ref.logits(last.data() + firstRow * hidden, rows, lw.data());
                    auto& stats = which == 0 ? m_report.bf16 : m_report.fp32;
                    stats.back().add(gotLogits, lw.data(), lw.size());
                }
            }
        }
        if (covered != result.nTokens)
            fail("the taps cover " + std::to_string(covered) + " of " + std::to_string(result.nTokens) + " tokens");
    }

private:
    void fail(const std::string& why) {
        if (m_report.firstFailure.empty()) m_report.firstFailure = why;
        m_report.plumbingOk = false;
    }
    void tallyRoutes(const std::vector<RefRoute>& routes, const ForwardResult& result, int64_t t0, int64_t moe,
                     int layer) {
        const int64_t K = result.routing.topK;
        for (size_t t = 0; t < routes.size(); ++t) {
            const RefRoute& r = routes[t];
            ++m_report.decisions;
            if (r.differed) {
                ++m_report.routeDifferences;
                if (!r.followed) {
                    ++m_report.routeFailures;
                    if (m_report.firstFailure.empty())
                        m_report.firstFailure = "layer " + std::to_string(layer) + " token " +
                                                std::to_string(t0 + static_cast<int64_t>(t)) +
                                                ": experts differ from the bf16 reference beyond a near-tie (gap " +
                                                std::to_string(r.tieGap) + ")";
                    continue;
                }
                m_report.worstTieGap = std::max(m_report.worstTieGap, r.tieGap);
            }
            // Same experts now: the weights the backend applied vs the reference's.
            for (int64_t k = 0; k < K; ++k) {
                const int64_t idx = result.routing.index(t0 + static_cast<int64_t>(t), moe, k);
                const int32_t id = result.routing.expertIds[static_cast<size_t>(idx)];
                for (int64_t j = 0; j < K; ++j)
                    if (r.ids[static_cast<size_t>(j)] == id) {
                        const double want = r.weights[static_cast<size_t>(j)];
                        const double err = std::fabs(result.routing.weights[static_cast<size_t>(idx)] - want) /
                                           std::max(1.0, std::fabs(want));
                        m_report.worstWeightError = std::max(m_report.worstWeightError, err);
                    }
            }
        }
    }

    const ModelConfig& m_c;
    ReferenceForward m_bf16;
    ReferenceForward m_fp32;
    double m_nearTie;
    LayerReport m_report;
};

}  // namespace dsv2::test
