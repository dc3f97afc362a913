#pragma once
// MLA attention of one layer over the paged latent cache, in the two forms the CPU reference has
// (engine/cpu/mla_attention.h), composed from the kernels and cuBLAS:
//  - expanded (prefill): gather c_kv|k_pe of positions [0, q_pos0 + n_q), kv = c_kv · kv_bᵀ
//    (cuBLAS), flash attention (mla_prefill.cu);
//  - absorbed (decode): q_lat = q_nope · W_UK (GEMV kernels for 1-4 tokens, else batched cuBLAS),
//    attention over the cache with the split merge inside (mla_decode.h), v = o_lat · W_UVᵀ (GEMV
//    or batched cuBLAS). With 1-4 tokens that is three launches, each with PDL (pdl.cuh).
// The new tokens' cache entries must be written before either runs.

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/attention_prologue_fused.h"
#include "cuda/device_buffer.h"
#include "cuda/latent_cache_ops.h"
#include "cuda/mla_decode.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

struct MlaGeometry {
    int n_heads = 0;
    int d_nope = 0;   // qk_nope_head_dim
    int d_rope = 0;   // qk_rope_head_dim
    int d_v = 0;      // v_head_dim
    int kv_lora = 0;  // kv_lora_rank
    float softmax_scale = 0.0f;

    int dqk() const { return d_nope + d_rope; }
    int entry() const { return kv_lora + d_rope; }
    int kvbRowsPerHead() const { return d_nope + d_v; }
};

// Device scratch for one layer's attention at a time (reused by every layer).
class MlaScratch {
public:
    // maxQ: most query tokens per call; maxSplits: decode context splits (the partial-softmax
    // workspace holds maxSplits splits for up to 64 queries, fewer splits for more queries);
    // maxExpandedCtx: longest context the expanded form runs over (0: expanded form unused);
    // gemmScores: whether to hold the GEMM form's score block (without it the GEMM form runs the
    // flash kernel instead; mlaPrefillMayUseGemmForm says whether Auto needs it).
    static Result<MlaScratch> allocate(const MlaGeometry& g, int64_t maxQ, int maxSplits, int64_t maxExpandedCtx,
                                       bool gemmScores = true);
    static int64_t bytesFor(const MlaGeometry& g, int64_t maxQ, int maxSplits, int64_t maxExpandedCtx,
                            bool gemmScores = true);

    int64_t maxQ() const { return m_maxQ; }
    int maxSplits() const { return m_maxSplits; }
    int64_t maxExpandedCtx() const { return m_maxCtx; }

    DeviceBuffer<float> qLat;          // [maxQ, H, kv_lora]
    DeviceBuffer<__nv_bfloat16> oLat;  // [maxQ, H, kv_lora]
    DeviceBuffer<float> partialO;      // [partialRows, H, kv_lora]: (query, split) rows
    DeviceBuffer<float> partialMl;     // [partialRows, H, 2]
    int64_t partialRows() const { return m_partialRows; }
    // The tensor-core decode's merge counters (mlaDecodeMergeCounterCount(maxQ, H) int32), zeroed
    // once here; each decode launch leaves them zero (one layer's attention at a time).
    DeviceBuffer<int32_t> mergeCounters;
    DeviceBuffer<__nv_bfloat16> latent;  // [maxCtx, entry]
    DeviceBuffer<__nv_bfloat16> kv;      // [maxCtx, H, d_nope + d_v]
    // The expanded form's score block for a slice of queries: [H, rows, keys] fp32 scores and bf16
    // probabilities, scoreElements of each (rows chosen per call so that H·rows·keys fits).
    DeviceBuffer<float> scores;
    DeviceBuffer<__nv_bfloat16> probs;
    int64_t scoreElements() const { return m_scoreElements; }

private:
    int64_t m_maxQ = 0;
    int m_maxSplits = 0;
    int64_t m_maxCtx = 0;
    int64_t m_partialRows = 0;
    int64_t m_scoreElements = 0;
};

// Whether MlaPrefillForm::Auto may take the GEMM form on this geometry, i.e. whether the scratch
// needs the score block (up to 288 MiB): where the tensor-core flash kernel does not apply (head
// dims other than DeepSeek-V2's), or with DSV2_MLA_PREFILL=gemm.
bool mlaPrefillMayUseGemmForm(const MlaGeometry& g);

// Which form mlaAttentionExpanded computes attention in (the keys are expanded either way).
enum class MlaPrefillForm {
    Auto,   // flash, unless DSV2_MLA_PREFILL=gemm (read once; A/B measurement)
    Flash,  // one flash kernel (mla_prefill.h: tensor cores where supported, else CUDA cores)
    Gemm,   // score GEMMs + softmax + P·V GEMM per query slice (flash where the scratch is short)
};

struct MlaCall {
    const __nv_bfloat16* q = nullptr;  // [n_q, H, dqk] contiguous, [q_nope | q_pe], RoPE applied
    int n_q = 0;
    int64_t q_pos0 = 0;                   // position of q[0]
    PagedCacheRef cache;                  // this layer, entries of [0, q_pos0 + n_q) written
    const __nv_bfloat16* kv_b = nullptr;  // kv_b_proj [H·(d_nope + d_v), kv_lora]
    __nv_bfloat16* out = nullptr;         // [n_q, H, d_v] contiguous
    // Absorbed form only: q_pos0 read on the device (one launch replayed at every position by a
    // CUDA graph) over `device_splits` context splits of a length the kernel derives.
    const int32_t* q_pos0_device = nullptr;
    int device_splits = 0;      // the most splits; the kernel uses as many as the context needs
    int64_t context_bound = 0;  // with q_pos0_device: the longest context replays see, 0 unknown (MlaDecodeParams)
    MlaDecodeKernel decode_kernel = MlaDecodeKernel::Auto;  // absorbed form: which decode kernel
    // Absorbed form: the decode kernel may load its first cache tiles before its PDL wait (the
    // cache entries were written by kernels enqueued before this call; MlaDecodeParams).
    bool decode_tiles_early = false;
    // The attention prologue of these tokens (attention_prologue_fused.h; no q_a part), not yet
    // run: q_pe is not rotated and the entries of [q_pos0, q_pos0 + n_q) are not written. The call
    // runs it first; the absorbed form with the q_lat GEMV runs it inside that launch (one
    // dependent launch fewer a layer; mla_absorb_gemv.h). Null: the caller ran it.
    const AttentionPrologueParams* prologue = nullptr;
    // Absorbed form, one token with q_pos0_device and the GEMV path: the decode kernel may leave
    // the merge of up to this many context splits to the v GEMV (MlaDecodeParams::
    // defer_merge_max_splits). 0: it merges itself.
    int merge_in_v_max_splits = 0;
    // Absorbed form, v GEMV: the kernel after this call reads only weights before its PDL wait
    // (o_proj's GEMV), so the v GEMV may let it launch early (MlaAbsorbGemvParams).
    bool next_reads_weights_only = false;
    // Absorbed form, tensor-core decode kernels: let the v GEMV launch before the decode kernel's
    // wait (MlaDecodeParams::launch_next_early; only with the GEMV path, whose v kernel reads
    // only weights first).
    bool decode_launches_next_early = false;
    MlaPrefillForm prefill_form = MlaPrefillForm::Auto;  // expanded form: flash or GEMMs
};

// The expanded (MHA) form for prefill: k_nope and v expanded from the cache by one kv_b GEMM, then
// one flash kernel (mla_prefill.h; tensor cores for the DeepSeek-V2 dims): scores, online softmax
// and P·v per tile, never a [tokens × tokens] matrix. The GEMM form (call.prefill_form, or
// DSV2_MLA_PREFILL=gemm) runs per slice of queries three cuBLAS GEMMs and a softmax (scores =
// q_nope·k_nopeᵀ + q_pe·k_peᵀ in fp32, bf16 probabilities, out = P·v) with the slice sized so the
// score block stays within the scratch (the flash kernel where it does not fit 16 rows).
Status mlaAttentionExpanded(cublasHandle_t blas, const MlaGeometry& g, const MlaCall& call, MlaScratch& scratch,
                            cudaStream_t stream);

// n_sms sizes the context split; split_len_override > 0 forces a split length (tests).
Status mlaAttentionAbsorbed(cublasHandle_t blas, const MlaGeometry& g, const MlaCall& call, MlaScratch& scratch,
                            int n_sms, cudaStream_t stream, int64_t split_len_override = 0);

}  // namespace dsv2::cuda
