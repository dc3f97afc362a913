#include "cpu/mla_attention.h"

#include <algorithm>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/thread_pool.h"
#include "model/tensor.h"

namespace dsv2::cpu {
namespace {

// A [rows, cols] fp32 buffer seen as a tensor, so that linearRows can multiply by it.
TensorView floatMatrix(const float* data, int64_t rows, int64_t cols) {
    TensorView t;
    t.name = "fp32 matrix";
    t.dtype = DType::F32;
    t.shape = {rows, cols};
    t.data = reinterpret_cast<const std::byte*>(data);
    t.nbytes = static_cast<size_t>(rows * cols) * sizeof(float);
    return t;
}

void runOver(ThreadPool* pool, int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    if (pool)
        pool->parallelFor(n, grain, body);
    else
        body(0, n);
}

}  // namespace

bool expandedIsCheaper(const MlaDims& d, int64_t nTokens) {
    const int64_t expansionPerKey = d.nHeads * d.kvBRowsPerHead() * d.kvLora;
    const int64_t expandedPerKeyPerToken = d.nHeads * (d.qHeadDim() + d.vHead);
    const int64_t absorbedPerKeyPerToken = d.nHeads * (2 * d.kvLora + d.qkRope);
    return expansionPerKey + nTokens * expandedPerKeyPerToken < nTokens * absorbedPerKeyPerToken;
}

void mlaAttentionExpanded(const MlaDims& d, const float* q, int64_t nTokens, const float* latent, int64_t nKeys,
                          const float* kvB, float* out, ThreadPool* pool) {
    const int64_t H = d.nHeads;
    const int64_t latentDim = d.latentDim();
    const int64_t kvRow = H * d.kvBRowsPerHead();

    // c_kv (L, kvLora) gathered out of the strided cache, then kv (L, H, nope+v) = c_kv · kv_bᵀ.
    std::vector<float> cKv(static_cast<size_t>(nKeys * d.kvLora));
    for (int64_t j = 0; j < nKeys; ++j)
        std::copy_n(latent + j * latentDim, d.kvLora, cKv.data() + j * d.kvLora);
    std::vector<float> kv(static_cast<size_t>(nKeys * kvRow));
    linear(floatMatrix(kvB, kvRow, d.kvLora), cKv.data(), nKeys, kv.data(), pool);

    const int64_t firstPos = nKeys - nTokens;
    runOver(pool, nTokens * H, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> scores(static_cast<size_t>(nKeys));
        for (int64_t item = begin; item < end; ++item) {
            const int64_t t = item / H;
            const int64_t h = item % H;
            const float* qNope = q + (t * H + h) * d.qHeadDim();  // (nope)
            const float* qPe = qNope + d.qkNope;                  // (rope)
            const int64_t keys = firstPos + t + 1;                // causal
            for (int64_t j = 0; j < keys; ++j) {
                const float* kNope = kv.data() + j * kvRow + h * d.kvBRowsPerHead();  // (nope)
                const float* kPe = latent + j * latentDim + d.kvLora;                 // (rope)
                scores[j] = (dot(qNope, kNope, d.qkNope) + dot(qPe, kPe, d.qkRope)) * d.softmaxScale;
            }
            softmaxInPlace(scores.data(), keys);
            float* o = out + (t * H + h) * d.vHead;  // (v)
            std::fill_n(o, d.vHead, 0.0f);
            for (int64_t j = 0; j < keys; ++j) {
                const float* v = kv.data() + j * kvRow + h * d.kvBRowsPerHead() + d.qkNope;  // (v)
                const float p = scores[j];
                for (int64_t i = 0; i < d.vHead; ++i) o[i] += p * v[i];
            }
        }
    });
}

void mlaAttentionAbsorbed(const MlaDims& d, const float* q, int64_t nTokens, const float* latent, int64_t nKeys,
                          const float* kvB, float* out, ThreadPool* pool) {
    const int64_t H = d.nHeads;
    const int64_t latentDim = d.latentDim();
    const int64_t firstPos = nKeys - nTokens;
    runOver(pool, nTokens * H, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> qLat(static_cast<size_t>(d.kvLora));  // (kvLora)
        std::vector<float> oLat(static_cast<size_t>(d.kvLora));  // (kvLora)
        std::vector<float> scores(static_cast<size_t>(nKeys));
        for (int64_t item = begin; item < end; ++item) {
            const int64_t t = item / H;
            const int64_t h = item % H;
            const float* qNope = q + (t * H + h) * d.qHeadDim();        // (nope)
            const float* qPe = qNope + d.qkNope;                        // (rope)
            const float* wUK = kvB + h * d.kvBRowsPerHead() * d.kvLora;  // (nope, kvLora)
            const float* wUV = wUK + d.qkNope * d.kvLora;                // (v, kvLora)

            // q_lat = q_nope · W_UK: the key expansion moved onto the query.
            std::fill(qLat.begin(), qLat.end(), 0.0f);
            for (int64_t i = 0; i < d.qkNope; ++i) {
                const float qi = qNope[i];
                const float* row = wUK + i * d.kvLora;
                for (int64_t c = 0; c < d.kvLora; ++c) qLat[c] += qi * row[c];
            }
            const int64_t keys = firstPos + t + 1;
            for (int64_t j = 0; j < keys; ++j) {
                const float* cKv = latent + j * latentDim;  // (kvLora)
                const float* kPe = cKv + d.kvLora;          // (rope)
                scores[j] = (dot(qLat.data(), cKv, d.kvLora) + dot(qPe, kPe, d.qkRope)) * d.softmaxScale;
            }
            softmaxInPlace(scores.data(), keys);
            std::fill(oLat.begin(), oLat.end(), 0.0f);
            for (int64_t j = 0; j < keys; ++j) {
                const float* cKv = latent + j * latentDim;
                const float p = scores[j];
                for (int64_t c = 0; c < d.kvLora; ++c) oLat[c] += p * cKv[c];
            }
            // v = o_lat · W_UVᵀ: the value expansion applied once, after the weighted sum.
            float* o = out + (t * H + h) * d.vHead;  // (v)
            for (int64_t i = 0; i < d.vHead; ++i) o[i] = dot(oLat.data(), wUV + i * d.kvLora, d.kvLora);
        }
    });
}

}  // namespace dsv2::cpu
