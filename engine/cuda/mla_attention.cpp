#include "cuda/mla_attention.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/cublas_gemm.h"
#include "cuda/mla_absorb_gemv.h"
#include "cuda/mla_decode.h"
#include "cuda/mla_prefill.h"

namespace dsv2::cuda {

namespace {

int64_t partialRowsFor(int64_t maxQ, int maxSplits) { return std::max(maxQ, std::min<int64_t>(maxQ, 64) * maxSplits); }

// Score block elements (each: 4 B of fp32 score + 2 B of bf16 probability): at most 48 Mi (288 MiB),
// enough for 4096 queries × 4096 keys of a 3-head model, or slices of 16+ queries at any context.
constexpr int64_t kMaxScoreElements = int64_t{48} << 20;

int64_t scoreElementsFor(const MlaGeometry& g, int64_t maxQ, int64_t maxExpandedCtx) {
    return std::min(kMaxScoreElements, maxQ * g.n_heads * maxExpandedCtx);
}

// DSV2_MLA_PREFILL=gemm: the GEMM form of prefill attention where MlaPrefillForm::Auto would run
// the flash kernel (A/B measurement).
bool envRequestsGemmPrefill() {
    static const bool gemm = [] {
        const char* env = std::getenv("DSV2_MLA_PREFILL");
        return env && std::strcmp(env, "gemm") == 0;
    }();
    return gemm;
}

}  // namespace

bool mlaPrefillMayUseGemmForm(const MlaGeometry& g) {
    MlaPrefillParams p;  // the dims decide; the backend's buffers meet the alignment (mla_prefill.h)
    p.d_nope = g.d_nope;
    p.d_rope = g.d_rope;
    p.d_v = g.d_v;
    alignas(16) static const __nv_bfloat16 aligned[8] = {};
    p.q = p.kv = p.k_pe = aligned;
    return envRequestsGemmPrefill() || !mlaPrefillMmaSupported(p).isOk();
}

int64_t MlaScratch::bytesFor(const MlaGeometry& g, int64_t maxQ, int maxSplits, int64_t maxExpandedCtx,
                             bool gemmScores) {
    const int64_t qh = maxQ * g.n_heads;
    return qh * g.kv_lora * (4 + 2) +
           partialRowsFor(maxQ, maxSplits) * g.n_heads * (static_cast<int64_t>(g.kv_lora) + 2) * 4 +
           mlaDecodeMergeCounterCount(static_cast<int>(maxQ), g.n_heads) * 4 +
           maxExpandedCtx * (static_cast<int64_t>(g.entry()) + static_cast<int64_t>(g.n_heads) * g.kvbRowsPerHead()) *
               2 +
           (gemmScores ? scoreElementsFor(g, maxQ, maxExpandedCtx) : 0) * (4 + 2);
}

Result<MlaScratch> MlaScratch::allocate(const MlaGeometry& g, int64_t maxQ, int maxSplits, int64_t maxExpandedCtx,
                                        bool gemmScores) {
    MlaScratch s;
    s.m_maxQ = maxQ;
    s.m_maxSplits = maxSplits;
    s.m_maxCtx = maxExpandedCtx;
    s.m_partialRows = partialRowsFor(maxQ, maxSplits);
    const auto qh = static_cast<size_t>(maxQ * g.n_heads);
    const auto ph = static_cast<size_t>(s.m_partialRows * g.n_heads);
    DSV2_ASSIGN_OR_RETURN(s.qLat, DeviceBuffer<float>::allocate(qh * g.kv_lora));
    DSV2_ASSIGN_OR_RETURN(s.oLat, DeviceBuffer<__nv_bfloat16>::allocate(qh * g.kv_lora));
    DSV2_ASSIGN_OR_RETURN(s.partialO, DeviceBuffer<float>::allocate(ph * g.kv_lora));
    DSV2_ASSIGN_OR_RETURN(s.partialMl, DeviceBuffer<float>::allocate(ph * 2));
    DSV2_ASSIGN_OR_RETURN(s.mergeCounters, DeviceBuffer<int32_t>::allocate(static_cast<size_t>(
                                               mlaDecodeMergeCounterCount(static_cast<int>(maxQ), g.n_heads))));
    DSV2_RETURN_IF_ERROR(s.mergeCounters.zero());
    DSV2_ASSIGN_OR_RETURN(s.latent,
                          DeviceBuffer<__nv_bfloat16>::allocate(static_cast<size_t>(maxExpandedCtx * g.entry())));
    DSV2_ASSIGN_OR_RETURN(s.kv, DeviceBuffer<__nv_bfloat16>::allocate(
                                    static_cast<size_t>(maxExpandedCtx * g.n_heads * g.kvbRowsPerHead())));
    s.m_scoreElements = gemmScores ? scoreElementsFor(g, maxQ, maxExpandedCtx) : 0;
    DSV2_ASSIGN_OR_RETURN(s.scores, DeviceBuffer<float>::allocate(static_cast<size_t>(s.m_scoreElements)));
    DSV2_ASSIGN_OR_RETURN(s.probs, DeviceBuffer<__nv_bfloat16>::allocate(static_cast<size_t>(s.m_scoreElements)));
    return s;
}

Status mlaAttentionExpanded(cublasHandle_t blas, const MlaGeometry& g, const MlaCall& call, MlaScratch& scratch,
                            cudaStream_t stream) {
    if (call.n_q == 0) return Status::ok();
    const int64_t ctx = call.q_pos0 + call.n_q;
    if (ctx > scratch.maxExpandedCtx())
        return Status(StatusCode::Internal, "mla expanded: context " + std::to_string(ctx) +
                                                " exceeds the scratch planned for " +
                                                std::to_string(scratch.maxExpandedCtx()));
    if (call.prologue) DSV2_RETURN_IF_ERROR(launchAttentionPrologue(*call.prologue, stream));
    const int entry = g.entry();
    const int kvRow = g.n_heads * g.kvbRowsPerHead();

    LatentCacheGatherParams gather;
    gather.cache = call.cache;
    gather.n_tokens = ctx;
    gather.dst = scratch.latent.data();  // [ctx, entry]
    gather.dst_stride = entry;
    DSV2_RETURN_IF_ERROR(launchLatentCacheGather(gather, stream));

    // kv [ctx, H·(nope+v)] = c_kv [ctx, kv_lora] · kv_bᵀ
    DSV2_RETURN_IF_ERROR(linear(blas, scratch.latent.data(), entry, call.kv_b, scratch.kv.data(), GemmType::BF16, kvRow,
                                ctx, kvRow, g.kv_lora, stream));

    MlaPrefillParams p;
    p.n_q = call.n_q;
    p.n_kv = static_cast<int>(ctx);
    p.q_pos0 = call.q_pos0;
    p.n_heads = g.n_heads;
    p.d_nope = g.d_nope;
    p.d_rope = g.d_rope;
    p.d_v = g.d_v;
    p.q = call.q;
    p.q_token_stride = static_cast<int64_t>(g.n_heads) * g.dqk();
    p.q_head_stride = g.dqk();
    p.kv = scratch.kv.data();
    p.kv_token_stride = kvRow;
    p.kv_head_stride = g.kvbRowsPerHead();
    p.k_pe = scratch.latent.data() + g.kv_lora;
    p.k_pe_token_stride = entry;
    p.out = call.out;
    p.out_token_stride = static_cast<int64_t>(g.n_heads) * g.d_v;
    p.out_head_stride = g.d_v;
    p.softmax_scale = g.softmax_scale;
    // GEMM form: query slices whose score block fits the scratch (at least 16 rows; else flash).
    // Auto takes it where the tensor-core flash kernel does not apply (head dims other than
    // DeepSeek-V2's 128 + 64 / 128, e.g. the small test models): the GEMM form's rounding points
    // are the ones the bf16 reference of the GPU suites models, and it was the default before.
    const bool gemmForm =
        call.prefill_form == MlaPrefillForm::Gemm ||
        (call.prefill_form == MlaPrefillForm::Auto && (envRequestsGemmPrefill() || !mlaPrefillMmaSupported(p).isOk()));
    const int64_t perRow = static_cast<int64_t>(g.n_heads) * ctx;
    const int64_t sliceRows = std::min<int64_t>(call.n_q, scratch.scoreElements() / std::max<int64_t>(perRow, 1));
    if (gemmForm && sliceRows >= std::min<int64_t>(16, call.n_q)) {
        for (int64_t q0 = 0; q0 < call.n_q; q0 += sliceRows) {
            const int64_t rows = std::min(sliceRows, call.n_q - q0);
            const int64_t keys = call.q_pos0 + q0 + rows;  // causal: the slice's last query sees these
            const int64_t qStride = static_cast<int64_t>(g.n_heads) * g.dqk();
            // scores[h] [rows, keys] = q_nope[h] · k_nope[h]ᵀ, then += q_pe[h] · k_peᵀ (k_pe shared).
            GemmParams s;
            s.m = rows;
            s.n = keys;
            s.k = g.d_nope;
            s.a = call.q + q0 * qStride;
            s.lda = qStride;
            s.stride_a = g.dqk();
            s.b = scratch.kv.data();
            s.ldb = kvRow;
            s.trans_b = true;
            s.stride_b = g.kvbRowsPerHead();
            s.c = scratch.scores.data();
            s.c_type = GemmType::F32;
            s.ldc = keys;
            s.stride_c = rows * keys;
            s.batch = g.n_heads;
            DSV2_RETURN_IF_ERROR(gemm(blas, s, stream));
            s.k = g.d_rope;
            s.a = call.q + q0 * qStride + g.d_nope;
            s.b = scratch.latent.data() + g.kv_lora;
            s.ldb = entry;
            s.stride_b = 0;
            s.beta = 1.0f;
            DSV2_RETURN_IF_ERROR(gemm(blas, s, stream));

            MlaSoftmaxParams sm;
            sm.n_heads = g.n_heads;
            sm.n_rows = static_cast<int>(rows);
            sm.n_keys = static_cast<int>(keys);
            sm.q_pos0 = call.q_pos0 + q0;
            sm.scores = scratch.scores.data();
            sm.probs = scratch.probs.data();
            sm.softmax_scale = g.softmax_scale;
            DSV2_RETURN_IF_ERROR(launchMlaCausalSoftmax(sm, stream));

            // out[q0.., h] [rows, d_v] = P[h] [rows, keys] · v[h] [keys, d_v]
            GemmParams o;
            o.m = rows;
            o.n = g.d_v;
            o.k = keys;
            o.a = scratch.probs.data();
            o.lda = keys;
            o.stride_a = rows * keys;
            o.b = scratch.kv.data() + g.d_nope;
            o.ldb = kvRow;
            o.stride_b = g.kvbRowsPerHead();
            o.c = call.out + q0 * static_cast<int64_t>(g.n_heads) * g.d_v;
            o.c_type = GemmType::BF16;
            o.ldc = static_cast<int64_t>(g.n_heads) * g.d_v;
            o.stride_c = g.d_v;
            o.batch = g.n_heads;
            DSV2_RETURN_IF_ERROR(gemm(blas, o, stream));
        }
        return Status::ok();
    }

    return launchMlaPrefill(p, stream);
}

Status mlaAttentionAbsorbed(cublasHandle_t blas, const MlaGeometry& g, const MlaCall& call, MlaScratch& scratch,
                            int n_sms, cudaStream_t stream, int64_t split_len_override) {
    if (call.n_q == 0) return Status::ok();
    if (call.n_q > scratch.maxQ())
        return Status(StatusCode::Internal, "mla absorbed: " + std::to_string(call.n_q) +
                                                " query tokens exceed the scratch planned for " +
                                                std::to_string(scratch.maxQ()));
    const int64_t ctx = call.q_pos0 + call.n_q;
    const int64_t kvbHead = static_cast<int64_t>(g.kvbRowsPerHead()) * g.kv_lora;  // elements per head block of kv_b

    // q_lat[t, h, :] = q_nope[t, h, :] · W_UK[h], W_UK[h] = kv_b rows [h·(nope+v), +nope) : [nope, kv_lora]
    // A few tokens: GEMV kernels (mla_absorb_gemv.h); more: cuBLAS strided batches. Both fp32 out.
    MlaAbsorbGemvParams few;
    few.n_q = call.n_q;
    few.n_heads = g.n_heads;
    few.d_nope = g.d_nope;
    few.d_v = g.d_v;
    few.kv_lora = g.kv_lora;
    few.kv_b = call.kv_b;
    few.q = call.q;
    few.q_token_stride = static_cast<int64_t>(g.n_heads) * g.dqk();
    few.q_head_stride = g.dqk();
    few.q_lat = scratch.qLat.data();
    few.lat_token_stride = static_cast<int64_t>(g.n_heads) * g.kv_lora;
    few.lat_head_stride = g.kv_lora;
    few.o_lat = scratch.oLat.data();
    few.o_token_stride = static_cast<int64_t>(g.n_heads) * g.kv_lora;
    few.o_head_stride = g.kv_lora;
    few.out = call.out;
    few.out_token_stride = static_cast<int64_t>(g.n_heads) * g.d_v;
    few.out_head_stride = g.d_v;
    const bool gemv = mlaAbsorbGemvSupported(call.n_q, g.kv_lora, call.kv_b);
    // The prologue rides in the q_lat GEMV's launch where it can (MlaCall::prologue).
    const bool prologueFused = gemv && call.prologue && !call.prologue->q_a;
    if (call.prologue && !prologueFused) DSV2_RETURN_IF_ERROR(launchAttentionPrologue(*call.prologue, stream));
    if (gemv) {
        DSV2_RETURN_IF_ERROR(launchMlaQLatGemv(few, stream, prologueFused ? call.prologue : nullptr));
    } else {
        GemmParams qLat;
        qLat.m = call.n_q;
        qLat.n = g.kv_lora;
        qLat.k = g.d_nope;
        qLat.a = call.q;
        qLat.lda = static_cast<int64_t>(g.n_heads) * g.dqk();
        qLat.stride_a = g.dqk();
        qLat.b = call.kv_b;
        qLat.ldb = g.kv_lora;
        qLat.stride_b = kvbHead;
        qLat.c = scratch.qLat.data();
        qLat.c_type = GemmType::F32;
        qLat.ldc = static_cast<int64_t>(g.n_heads) * g.kv_lora;
        qLat.stride_c = g.kv_lora;
        qLat.batch = g.n_heads;
        DSV2_RETURN_IF_ERROR(gemm(blas, qLat, stream));
    }

    // Splits the partial-softmax workspace can hold for this many queries.
    const int maxSplits = static_cast<int>(std::min<int64_t>(scratch.maxSplits(), scratch.partialRows() / call.n_q));
    MlaDecodePlan plan = planMlaDecode(ctx, call.n_q, g.n_heads, n_sms, maxSplits);
    if (call.q_pos0_device) {
        if (call.device_splits < 1 || call.device_splits > maxSplits)
            return Status(StatusCode::InvalidArgument,
                          "mla absorbed: device_splits outside [1, " + std::to_string(maxSplits) + "]");
        plan.n_splits = call.device_splits;
        plan.split_len = 0;
    } else if (split_len_override > 0) {
        plan.split_len = split_len_override;
        plan.n_splits = static_cast<int>((ctx + split_len_override - 1) / split_len_override);
        if (plan.n_splits > maxSplits)
            return Status(StatusCode::InvalidArgument, "mla absorbed: forced split length gives too many splits");
    }
    MlaDecodeParams p;
    p.n_q = call.n_q;
    p.n_heads = g.n_heads;
    p.d_latent = g.kv_lora;
    p.d_rope = g.d_rope;
    p.q_pos0 = call.q_pos0;
    p.q_pos0_device = call.q_pos0_device;
    p.context_bound = call.context_bound;
    p.q_lat = scratch.qLat.data();
    p.q_lat_token_stride = static_cast<int64_t>(g.n_heads) * g.kv_lora;
    p.q_lat_head_stride = g.kv_lora;
    p.q_pe = call.q + g.d_nope;
    p.q_pe_token_stride = static_cast<int64_t>(g.n_heads) * g.dqk();
    p.q_pe_head_stride = g.dqk();
    p.cache = call.cache;
    p.n_splits = plan.n_splits;
    p.split_len = plan.split_len;
    p.partial_o = scratch.partialO.data();
    p.partial_ml = scratch.partialMl.data();
    p.merge_counters = scratch.mergeCounters.data();
    p.out = scratch.oLat.data();
    p.out_token_stride = static_cast<int64_t>(g.n_heads) * g.kv_lora;
    p.out_head_stride = g.kv_lora;
    p.softmax_scale = g.softmax_scale;
    p.kernel = call.decode_kernel;
    // The cache entries of earlier positions were written before this call and the q_lat launch
    // above sits between them and the decode kernel: its tiles may load before it waits
    // (mla_decode.h). The new positions' entries come from that launch when the prologue rides in
    // it. Not after cuBLAS, whose kernels are not ours to vouch for.
    p.tiles_before_wait = call.decode_tiles_early && gemv;  // our GEMV follows pdl.cuh rule 3
    p.new_entries_one_back = prologueFused;
    p.launch_next_early = call.decode_launches_next_early && gemv;
    const bool mayDefer = gemv && call.n_q == 1 && call.q_pos0_device && call.merge_in_v_max_splits > 0 &&
                          g.d_v % 8 == 0 && g.kv_lora <= kMlaVUpMergeMaxLatent;
    p.defer_merge_max_splits = mayDefer ? std::min(call.merge_in_v_max_splits, kMlaDecodeMaxDeferredSplits) : 0;
    MlaDecodeLaunched launched;
    DSV2_RETURN_IF_ERROR(launchMlaDecode(p, stream, &launched));
    takeDeferredMerge(few, p, launched);  // the v GEMV merges the splits (same positions, same bits)

    // v[t, h, :] = o_lat[t, h, :] · W_UV[h]ᵀ, W_UV[h] = kv_b rows [h·(nope+v) + nope, +v) : [v, kv_lora]
    // (bf16 out either way).
    few.launch_next_early = call.next_reads_weights_only;
    if (gemv) return launchMlaVUpGemv(few, stream);
    GemmParams v;
    v.m = call.n_q;
    v.n = g.d_v;
    v.k = g.kv_lora;
    v.a = scratch.oLat.data();
    v.lda = static_cast<int64_t>(g.n_heads) * g.kv_lora;
    v.stride_a = g.kv_lora;
    v.b = call.kv_b + static_cast<int64_t>(g.d_nope) * g.kv_lora;
    v.ldb = g.kv_lora;
    v.trans_b = true;
    v.stride_b = kvbHead;
    v.c = call.out;
    v.c_type = GemmType::BF16;
    v.ldc = static_cast<int64_t>(g.n_heads) * g.d_v;
    v.stride_c = g.d_v;
    v.batch = g.n_heads;
    return gemm(blas, v, stream);
}

}  // namespace dsv2::cuda
