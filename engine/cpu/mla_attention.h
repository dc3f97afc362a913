#pragma once
// Multi-head latent attention over the latent cache, in its two equivalent forms:
//  - expanded (MHA): every cached c_kv is expanded by kv_b_proj into per-head k_nope and v, then
//    plain causal attention over keys [k_nope | k_pe] (k_pe shared by all heads);
//  - absorbed (MQA over [c_kv | k_pe]): W_UK is folded into the query (q_lat = q_nope·W_UK), the
//    scores are q_lat·c_kv + q_pe·k_pe against the one latent "head", the softmax-weighted sum of
//    c_kv is taken, and W_UV maps it to v per head afterwards.
// Both read the same cache, so they must agree to rounding (a test checks it). Expanded is cheaper
// for long prefills (one expansion per key, shared by all queries), absorbed for decode.

#include <cstdint>

namespace dsv2::cpu {

class ThreadPool;

struct MlaDims {
    int64_t nHeads = 0;   // H
    int64_t qkNope = 0;   // 128
    int64_t qkRope = 0;   // 64
    int64_t vHead = 0;    // 128
    int64_t kvLora = 0;   // 512
    float softmaxScale = 0.0f;  // (nope+rope)^-0.5 · m²

    int64_t qHeadDim() const { return qkNope + qkRope; }
    int64_t latentDim() const { return kvLora + qkRope; }
    int64_t kvBRowsPerHead() const { return qkNope + vHead; }
};

// Inputs shared by both forms:
//   q       (T, H, nope+rope)     queries of the T new tokens, q_pe already rotated
//   latent  (L, kvLora+rope)      the layer's cache [c_kv | k_pe] for positions 0..L-1, including
//                                 the T new tokens at the end (so L ≥ T)
//   kvB     (H·(nope+v), kvLora)  kv_b_proj as fp32, rows per head [k_nope | v]
// Query t is at position L-T+t and attends to positions 0..L-T+t.
// Output: out (T, H, v).
void mlaAttentionExpanded(const MlaDims& dims, const float* q, int64_t nTokens, const float* latent, int64_t nKeys,
                          const float* kvB, float* out, ThreadPool* pool);
void mlaAttentionAbsorbed(const MlaDims& dims, const float* q, int64_t nTokens, const float* latent, int64_t nKeys,
                          const float* kvB, float* out, ThreadPool* pool);

// True when the expanded form needs fewer multiply-adds than the absorbed one for T new tokens
// (it pays H·(nope+v)·kvLora per key once; absorbed pays about 2·kvLora per key per query head).
bool expandedIsCheaper(const MlaDims& dims, int64_t nTokens);

}  // namespace dsv2::cpu
