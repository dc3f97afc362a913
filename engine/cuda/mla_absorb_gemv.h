#pragma once
// The two per-head products around the absorbed MLA decode kernel, as GEMV kernels for a few
// query tokens (issue 9). cuBLAS strided-batched GEMMs for these shapes (M = 1–4 tokens, 2 MB of
// kv_b on V2-Lite) took ~5 µs each, launch-bound; these stream the kv_b blocks with 16-byte loads
// from many blocks. Numerics as the cuBLAS calls they replace: bf16 × bf16 products, fp32
// accumulation, q_lat written in fp32 and v rounded once to bf16 (only the fp32 summation order
// differs).
//   q_lat[t, h, :] = q_nope[t, h, :] · W_UK[h]     W_UK[h] = kv_b rows [h·(nope+v), +nope): [nope, kv_lora]
//   v[t, h, :]     = o_lat[t, h, :] · W_UV[h]ᵀ     W_UV[h] = kv_b rows [h·(nope+v) + nope, +v): [v, kv_lora]

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/attention_prologue_fused.h"
#include "cuda/mla_decode.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

constexpr int kMlaAbsorbGemvMaxTokens = 4;

struct MlaAbsorbGemvParams {
    int n_q = 0;  // 1 .. kMlaAbsorbGemvMaxTokens
    int n_heads = 0;
    int d_nope = 0;
    int d_v = 0;
    int kv_lora = 0;                      // a multiple of 8
    const __nv_bfloat16* kv_b = nullptr;  // kv_b_proj [H·(d_nope + d_v), kv_lora], 16-byte aligned

    // q_lat: q_nope element d of (t, h) at q[t·q_token_stride + h·q_head_stride + d]; q_lat [t, h, :]
    // at q_lat + t·lat_token_stride + h·lat_head_stride (fp32).
    const __nv_bfloat16* q = nullptr;
    int64_t q_token_stride = 0, q_head_stride = 0;
    float* q_lat = nullptr;
    int64_t lat_token_stride = 0, lat_head_stride = 0;

    // v: o_lat [t, h, :] at o_lat + t·o_token_stride + h·o_head_stride (bf16, 16-byte aligned rows);
    // v [t, h, :] at out + t·out_token_stride + h·out_head_stride (bf16).
    const __nv_bfloat16* o_lat = nullptr;
    int64_t o_token_stride = 0, o_head_stride = 0;
    __nv_bfloat16* out = nullptr;
    int64_t out_token_stride = 0, out_head_stride = 0;

    // v, one token: when the sliced decode kernel left this step's merge to this launch
    // (MlaDecodeParams::defer_merge_max_splits; the same value here), o_lat is merged from its
    // split partials, in the decode kernel's order (mla_split_merge.cuh), wherever the position
    // used at most merge_max_splits splits; elsewhere o_lat is read. 0: o_lat is always read.
    int merge_max_splits = 0;
    // v: let the next kernel launch before this one waits (pdl.cuh, the exception to rule 3): only
    // when it reads nothing but weights before its own wait (o_proj's GEMV).
    bool launch_next_early = false;
    const float* partial_o = nullptr;   // [H, n_splits, kv_lora] (MlaDecodeParams)
    const float* partial_ml = nullptr;  // [H, n_splits, 2]
    int n_splits = 0;                   // MlaDecodeParams::n_splits
    const int32_t* q_pos0_device = nullptr;
};

// kv_lora the v GEMV's merge takes (its shared o_lat row).
constexpr int kMlaVUpMergeMaxLatent = 512;

// Hands the v GEMV the split merge a decode launch left to it (nothing when it merged itself).
inline void takeDeferredMerge(MlaAbsorbGemvParams& v, const MlaDecodeParams& decode,
                              const MlaDecodeLaunched& launched) {
    if (!launched.merge_deferred) return;
    v.merge_max_splits = decode.defer_merge_max_splits;
    v.partial_o = decode.partial_o;
    v.partial_ml = decode.partial_ml;
    v.n_splits = launched.n_splits;
    v.q_pos0_device = decode.q_pos0_device;
}

// True when the shapes and pointers suit the kernels below (else use the cuBLAS batches).
bool mlaAbsorbGemvSupported(int n_q, int kv_lora, const void* kv_b);

// q_lat from q (reads q, kv_b; writes q_lat).
// With `prologue` (its n_tokens == n_q, no q_a part) the same launch also runs the attention
// prologue of these tokens (attention_prologue_fused.h: kv_a_layernorm, RoPE, the cache write,
// RoPE on q_pe) in extra blocks, bit-identical to launchAttentionPrologue: both read only what the
// q/kv_a projection wrote (q_nope here, kv_a and q_pe there), so they need not be two dependent
// launches of the decode step (issue 9: ~3 µs each). The caller must then treat the cache entries
// and q_pe as written by this launch (MlaDecodeParams::new_entries_one_back).
Status launchMlaQLatGemv(const MlaAbsorbGemvParams& p, cudaStream_t stream,
                         const AttentionPrologueParams* prologue = nullptr);
// v from o_lat (reads o_lat, kv_b; writes out). o_lat's rows must be 16-byte aligned.
Status launchMlaVUpGemv(const MlaAbsorbGemvParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
