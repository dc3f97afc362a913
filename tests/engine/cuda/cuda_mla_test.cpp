// MLA on the GPU against references: the flash prefill kernel against a plain loop; the paged
// cache write/gather round trip; both composed forms (expanded for prefill, absorbed for decode,
// over a scrambled block table) against cpu::mlaAttentionExpanded / Absorbed. Sizes around the
// 32-key tiles and 64-token blocks (1, 63, 64, 65), chunks with an offset, and 8K+ contexts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "compare.h"
#include "cpu/mla_attention.h"
#include "cuda/cublas_gemm.h"
#include "cuda/latent_cache_ops.h"
#include "cuda/mla_attention.h"
#include "cuda/mla_decode.h"
#include "cuda/mla_prefill.h"
#include "cuda/paged_latent_cache.h"
#include "cuda_test_util.h"
#include "gpu_skip.h"

using namespace dsv2;
using namespace dsv2::test;

namespace {

struct GpuGuard {
    GpuGuard() { requireGpuOrSkip("cuda_mla_test"); }
};
const GpuGuard kGuard;

constexpr float kLiteScale = 0.11472f;  // 192^-0.5 · m² (V2-Lite)

// out [nq, H, dv] of plain causal attention; query i at position qPos0 + i.
std::vector<float> referencePrefill(int H, int dn, int dr, int dv, const std::vector<float>& q,
                                    const std::vector<float>& kv, const std::vector<float>& kpe, int nq, int64_t qPos0,
                                    float scale) {
    const int dqk = dn + dr;
    std::vector<float> out(static_cast<size_t>(nq) * H * dv, 0.0f);
    std::vector<double> s;
    for (int i = 0; i < nq; ++i)
        for (int h = 0; h < H; ++h) {
            const int64_t keys = qPos0 + i + 1;
            s.assign(static_cast<size_t>(keys), 0.0);
            double mx = -1e300;
            const float* qq = q.data() + (static_cast<int64_t>(i) * H + h) * dqk;
            for (int64_t j = 0; j < keys; ++j) {
                const float* k = kv.data() + (j * H + h) * (dn + dv);
                double d = 0.0;
                for (int c = 0; c < dn; ++c) d += static_cast<double>(qq[c]) * k[c];
                for (int c = 0; c < dr; ++c) d += static_cast<double>(qq[dn + c]) * kpe[j * dr + c];
                s[j] = d * scale;
                mx = std::max(mx, s[j]);
            }
            double sum = 0.0;
            for (auto& v : s) sum += (v = std::exp(v - mx));
            float* o = out.data() + (static_cast<int64_t>(i) * H + h) * dv;
            for (int c = 0; c < dv; ++c) {
                double acc = 0.0;
                for (int64_t j = 0; j < keys; ++j) acc += s[j] * kv[(j * H + h) * (dn + dv) + dn + c];
                o[c] = static_cast<float>(acc / sum);
            }
        }
    return out;
}

struct PrefillCase {
    int H, dn, dr, dv, nq;
    int64_t qPos0;
};

}  // namespace

TEST_CASE("flash MLA prefill kernel matches plain causal attention") {
    auto rng = makeRng("mla-prefill-kernel");
    const std::vector<PrefillCase> cases{
        {16, 128, 64, 128, 1, 0},    {2, 128, 64, 128, 63, 0},   {2, 128, 64, 128, 64, 0},
        {2, 128, 64, 128, 65, 0},    {4, 16, 8, 16, 33, 100},    {3, 128, 64, 128, 300, 0},
        {2, 128, 64, 128, 40, 8200}, {1, 128, 64, 128, 1, 8191}, {5, 30, 6, 34, 97, 31},
    };
    for (const auto& c : cases) {
        if (smallSizesOnly() && c.qPos0 + c.nq > 1024) continue;
        CAPTURE(c.H);
        CAPTURE(c.nq);
        CAPTURE(c.qPos0);
        CAPTURE(c.dn);
        const int dqk = c.dn + c.dr;
        const int64_t nkv = c.qPos0 + c.nq;
        const auto q = randomBf16(rng, static_cast<size_t>(c.nq) * c.H * dqk);
        const auto kv = randomBf16(rng, static_cast<size_t>(nkv) * c.H * (c.dn + c.dv));
        const auto kpe = randomBf16(rng, static_cast<size_t>(nkv) * c.dr);
        auto dQ = uploadBf16(q);
        auto dKv = uploadBf16(kv);
        auto dKpe = uploadBf16(kpe);
        auto dOut = deviceZeros<bf16>(static_cast<size_t>(c.nq) * c.H * c.dv);
        cuda::MlaPrefillParams p;
        p.n_q = c.nq;
        p.n_kv = static_cast<int>(nkv);
        p.q_pos0 = c.qPos0;
        p.n_heads = c.H;
        p.d_nope = c.dn;
        p.d_rope = c.dr;
        p.d_v = c.dv;
        p.q = dQ.data();
        p.q_token_stride = static_cast<int64_t>(c.H) * dqk;
        p.q_head_stride = dqk;
        p.kv = dKv.data();
        p.kv_token_stride = static_cast<int64_t>(c.H) * (c.dn + c.dv);
        p.kv_head_stride = c.dn + c.dv;
        p.k_pe = dKpe.data();
        p.k_pe_token_stride = c.dr;
        p.out = dOut.data();
        p.out_token_stride = static_cast<int64_t>(c.H) * c.dv;
        p.out_head_stride = c.dv;
        p.softmax_scale = kLiteScale;
        REQUIRE_OK(cuda::launchMlaPrefill(p, nullptr));
        const auto got = downloadBf16(dOut);
        const auto want = referencePrefill(c.H, c.dn, c.dr, c.dv, q, kv, kpe, c.nq, c.qPos0, kLiteScale);
        CHECK_TENSORS("prefill", got, want, (std::vector<int64_t>{c.nq, c.H, c.dv}), (Tolerance{4e-3, 1e-2, 0.9999}));
    }
}

TEST_CASE("latent cache write then gather round-trips through a scrambled block table") {
    auto rng = makeRng("latent-cache-roundtrip");
    cuda::LatentCacheLayout layout;
    layout.nLayers = 2;
    layout.entryDim = 576;
    layout.blockSize = 64;
    layout.nBlocks = 40;
    auto cache = cuda::PagedLatentCache::create(layout);
    REQUIRE_MESSAGE(cache.isOk(), cache.status().toString());
    auto seq = cache->newSequence(1000);
    auto other = cache->newSequence(1000);
    REQUIRE(seq.isOk());
    REQUIRE(other.isOk());
    const int64_t n = 321;
    REQUIRE_OK(cache->reserve(*seq, 65));
    REQUIRE_OK(cache->reserve(*other, 130));  // interleave so that seq's blocks are not contiguous
    REQUIRE_OK(cache->reserve(*seq, n));
    CHECK(seq->blocks[1] + 1 != seq->blocks[2]);
    REQUIRE_OK(cache->syncTable(*seq, nullptr));
    const int64_t srcStride = 576 + 6;
    const auto rows = randomBf16(rng, static_cast<size_t>(n * srcStride));
    auto dRows = uploadBf16(rows);
    cuda::LatentCacheWriteParams w;
    w.cache.layer_base = cache->layerBase(1);
    w.cache.block_table = seq->deviceTable.data();
    w.cache.block_size = 64;
    w.cache.entry_dim = 576;
    w.src = dRows.data();
    w.src_stride = srcStride;
    w.n_tokens = 100;  // two writes: positions [0, 100) then [100, n)
    w.pos0 = 0;
    REQUIRE_OK(cuda::launchLatentCacheWrite(w, nullptr));
    w.n_tokens = static_cast<int>(n - 100);
    w.pos0 = 100;
    w.src = dRows.data() + 100 * srcStride;
    REQUIRE_OK(cuda::launchLatentCacheWrite(w, nullptr));
    REQUIRE_OK(cache->commit(*seq, n));

    auto dBack = deviceZeros<bf16>(static_cast<size_t>(n * 576));
    cuda::LatentCacheGatherParams g;
    g.cache = w.cache;
    g.n_tokens = n;
    g.dst = dBack.data();
    g.dst_stride = 576;
    REQUIRE_OK(cuda::launchLatentCacheGather(g, nullptr));
    const auto back = downloadBf16(dBack);
    for (int64_t t = 0; t < n; ++t)
        for (int c = 0; c < 576; ++c) REQUIRE(back[t * 576 + c] == rows[t * srcStride + c]);
    // Layer 0 was not written.
    g.cache.layer_base = cache->layerBase(0);
    REQUIRE_OK(cuda::launchLatentCacheGather(g, nullptr));
    const auto layer0 = downloadBf16(dBack);
    CHECK(std::all_of(layer0.begin(), layer0.end(), [](float v) { return v == 0.0f; }));
}

namespace {

struct AttnCase {
    int H, dn, dr, dv, kvLora;
    int64_t ctx;
    int nq;
    int64_t forcedSplit;  // 0: planner
};

// Runs both GPU forms over a paged cache holding `latent` and compares each with the CPU forms.
void runAttentionCase(const AttnCase& c, std::mt19937_64& rng, cuda::CublasHandle& blas) {
    CAPTURE(c.H);
    CAPTURE(c.ctx);
    CAPTURE(c.nq);
    CAPTURE(c.forcedSplit);
    CAPTURE(c.kvLora);
    const int entry = c.kvLora + c.dr, dqk = c.dn + c.dr;
    cuda::MlaGeometry g{c.H, c.dn, c.dr, c.dv, c.kvLora, kLiteScale};

    cuda::LatentCacheLayout layout;
    layout.nLayers = 3;
    layout.entryDim = entry;
    layout.blockSize = 64;
    layout.nBlocks = static_cast<int32_t>((c.ctx + 63) / 64 + 8);
    auto cache = cuda::PagedLatentCache::create(layout);
    REQUIRE_MESSAGE(cache.isOk(), cache.status().toString());
    auto seq = cache->newSequence(c.ctx);
    auto other = cache->newSequence(512);
    REQUIRE(seq.isOk());
    REQUIRE(other.isOk());
    REQUIRE_OK(cache->reserve(*seq, std::min<int64_t>(c.ctx, 64)));
    REQUIRE_OK(cache->reserve(*other, 3 * 64));
    REQUIRE_OK(cache->reserve(*seq, c.ctx));
    REQUIRE_OK(cache->syncTable(*seq, nullptr));

    const auto latent = randomBf16(rng, static_cast<size_t>(c.ctx * entry));
    auto dLatent = uploadBf16(latent);
    cuda::PagedCacheRef ref{cache->layerBase(2), seq->deviceTable.data(), 64, entry};
    cuda::LatentCacheWriteParams w;
    w.cache = ref;
    w.n_tokens = static_cast<int>(c.ctx);
    w.src = dLatent.data();
    w.src_stride = entry;
    REQUIRE_OK(cuda::launchLatentCacheWrite(w, nullptr));

    const auto q = randomBf16(rng, static_cast<size_t>(c.nq) * c.H * dqk);
    const auto kvB = randomBf16(rng, static_cast<size_t>(c.H) * (c.dn + c.dv) * c.kvLora, 0.05f);
    auto dQ = uploadBf16(q);
    auto dKvB = uploadBf16(kvB);

    cpu::MlaDims dims;
    dims.nHeads = c.H;
    dims.qkNope = c.dn;
    dims.qkRope = c.dr;
    dims.vHead = c.dv;
    dims.kvLora = c.kvLora;
    dims.softmaxScale = kLiteScale;
    std::vector<float> want(static_cast<size_t>(c.nq) * c.H * c.dv);
    cpu::mlaAttentionAbsorbed(dims, q.data(), c.nq, latent.data(), c.ctx, kvB.data(), want.data(), nullptr);
    std::vector<float> wantExpanded(want.size());
    cpu::mlaAttentionExpanded(dims, q.data(), c.nq, latent.data(), c.ctx, kvB.data(), wantExpanded.data(), nullptr);
    CHECK_TENSORS("cpu absorbed vs expanded", want, wantExpanded, (std::vector<int64_t>{c.nq, c.H, c.dv}),
                  (Tolerance{1e-4, 1e-3, 0.99999}));

    auto scratch = cuda::MlaScratch::allocate(g, c.nq, 128, c.ctx);
    REQUIRE_MESSAGE(scratch.isOk(), scratch.status().toString());
    auto dOut = deviceZeros<bf16>(want.size());
    cuda::MlaCall call;
    call.q = dQ.data();
    call.n_q = c.nq;
    call.q_pos0 = c.ctx - c.nq;
    call.cache = ref;
    call.kv_b = dKvB.data();
    call.out = dOut.data();
    const std::vector<int64_t> shape{c.nq, c.H, c.dv};
    // Outputs are weighted means of v ~ N(0, 0.05²·kvLora) ≈ ±1; intermediates are bf16.
    const Tolerance tol{1e-2, 2e-2, 0.9995};

    REQUIRE_OK(cuda::mlaAttentionAbsorbed(blas.get(), g, call, *scratch, 132, nullptr, c.forcedSplit));
    CHECK_TENSORS("gpu absorbed", downloadBf16(dOut), want, shape, tol);

    if (c.nq == 1) {  // the graph-replayable form: position on the device, fixed split count
        const std::vector<int32_t> pos{static_cast<int32_t>(c.ctx - 1)};
        auto dPos = upload(pos);
        for (int splits : {1, 7, 64, 128}) {
            CAPTURE(splits);
            cuda::MlaCall dev = call;
            dev.q_pos0 = 0;  // ignored: the device position wins
            dev.q_pos0_device = dPos.data();
            dev.device_splits = splits;
            REQUIRE_OK(dOut.zero());
            REQUIRE_OK(cuda::mlaAttentionAbsorbed(blas.get(), g, dev, *scratch, 132, nullptr));
            CHECK_TENSORS("gpu absorbed, device position", downloadBf16(dOut), want, shape, tol);
        }
        cuda::MlaCall tooMany = call;
        tooMany.q_pos0_device = dPos.data();
        tooMany.device_splits = 129;  // more than the scratch holds
        CHECK(cuda::mlaAttentionAbsorbed(blas.get(), g, tooMany, *scratch, 132, nullptr).code() ==
              StatusCode::InvalidArgument);
    }

    REQUIRE_OK(dOut.zero());
    REQUIRE_OK(cuda::mlaAttentionExpanded(blas.get(), g, call, *scratch, nullptr));
    CHECK_TENSORS("gpu expanded", downloadBf16(dOut), want, shape, tol);
    requireDeviceOk();
}

}  // namespace

TEST_CASE("MLA absorbed (paged decode) and expanded (flash prefill) forms match the CPU forms") {
    auto rng = makeRng("mla-forms");
    auto blas = cuda::CublasHandle::create();
    REQUIRE_MESSAGE(blas.isOk(), blas.status().toString());
    const std::vector<AttnCase> cases{
        {16, 128, 64, 128, 512, 1, 1, 0},     {16, 128, 64, 128, 512, 63, 1, 0},   {16, 128, 64, 128, 512, 64, 1, 0},
        {16, 128, 64, 128, 512, 65, 1, 0},    {16, 128, 64, 128, 512, 65, 1, 32},  {16, 128, 64, 128, 512, 300, 3, 64},
        {4, 16, 8, 16, 32, 100, 2, 0},        {20, 128, 64, 128, 512, 129, 2, 0},  {4, 128, 64, 128, 512, 8200, 1, 0},
        {2, 128, 64, 128, 512, 8200, 5, 256}, {3, 128, 64, 128, 512, 130, 130, 0},  // a whole prompt through both forms
    };
    for (const auto& c : cases)
        if (!smallSizesOnly() || c.ctx <= 1024) runAttentionCase(c, rng, *blas);
}

TEST_CASE("decode split plan covers the context and respects the limits") {
    for (int64_t ctx : {1, 31, 32, 33, 255, 256, 257, 4096, 8200, 32768, 163840}) {
        for (int maxSplits : {1, 8, 64}) {
            const auto plan = cuda::planMlaDecode(ctx, 1, 16, 132, maxSplits);
            CAPTURE(ctx);
            CAPTURE(maxSplits);
            CHECK(plan.split_len % 32 == 0);
            CHECK(plan.n_splits >= 1);
            CHECK(plan.n_splits <= maxSplits);
            CHECK(plan.n_splits * plan.split_len >= ctx);
            CHECK((plan.n_splits - 1) * plan.split_len < ctx);  // no empty trailing split
        }
    }
}
