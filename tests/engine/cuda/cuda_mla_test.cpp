// MLA on the GPU against references: the flash prefill kernels (CUDA cores, tensor cores) against
// a plain loop; the paged cache write/gather round trip; both composed forms (expanded for
// prefill, flash and GEMM; absorbed for decode, over a scrambled block table) against
// cpu::mlaAttentionExpanded / Absorbed. Sizes around the 32/64-key tiles and 64-token blocks
// (1, 63, 64, 65), chunks with an offset (random ones too), and 8K+ contexts.
// The two absorbed decode kernels (CUDA cores, tensor cores) on their own against a float64 loop:
// 1-128 heads, contexts 1 to 16K, planned / 32-position / device-derived splits (mostly unused
// splits included, with the workspace poisoned), the tensor cores' in-kernel merge of the splits
// (clusters of 8 + arrival counters, each launch run twice) and their fp32 precision of q_lat.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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
    int64_t extraKv = 0;  // keys past the chunk's last position (invisible to every query)
};

// The tensor-core kernel rounds P to bf16 before P·V (the CUDA-core kernel keeps fp32): a float64
// model of that rounding on these inputs peaks at ~7.5e-3 absolute with outputs up to ~2, so the
// absolute part is 6e-3 instead of 4e-3. A key off by one at the diagonal moves early rows by
// ~0.1-1; a stale or missing tile moves whole rows.
const Tolerance kPrefillSimtTol{4e-3, 1e-2, 0.9999};
const Tolerance kPrefillMmaTol{6e-3, 1e-2, 0.9999};

// One launch of the requested kernel (tensor cores: qTile queries per block, 0 chosen) against the
// float64 loop; 64 guard rows after the output
// must stay untouched (rows past n_q are computed on zeros and never written).
void runPrefillKernelCase(const PrefillCase& c, cuda::MlaPrefillKernel kernel, std::mt19937_64& rng, int qTile = 0) {
    CAPTURE(c.H);
    CAPTURE(c.nq);
    CAPTURE(c.qPos0);
    CAPTURE(c.extraKv);
    CAPTURE(c.dn);
    CAPTURE(static_cast<int>(kernel));
    CAPTURE(qTile);
    const int dqk = c.dn + c.dr;
    const int64_t nkv = c.qPos0 + c.nq + c.extraKv;
    const auto q = randomBf16(rng, static_cast<size_t>(c.nq) * c.H * dqk);
    const auto kv = randomBf16(rng, static_cast<size_t>(nkv) * c.H * (c.dn + c.dv));
    const auto kpe = randomBf16(rng, static_cast<size_t>(nkv) * c.dr);
    auto dQ = uploadBf16(q);
    auto dKv = uploadBf16(kv);
    auto dKpe = uploadBf16(kpe);
    const size_t outElems = static_cast<size_t>(c.nq) * c.H * c.dv;
    const size_t guardElems = static_cast<size_t>(64) * c.H * c.dv;
    auto dOut = deviceZeros<bf16>(outElems + guardElems);
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
    p.kernel = kernel;
    p.mma_q_tile = qTile;
    REQUIRE_OK(cuda::launchMlaPrefill(p, nullptr));
    requireDeviceOk();
    auto all = downloadBf16(dOut);
    CHECK(std::all_of(all.begin() + static_cast<int64_t>(outElems), all.end(), [](float v) { return v == 0.0f; }));
    all.resize(outElems);
    const auto want = referencePrefill(c.H, c.dn, c.dr, c.dv, q, kv, kpe, c.nq, c.qPos0, kLiteScale);
    CHECK_TENSORS("prefill", all, want, (std::vector<int64_t>{c.nq, c.H, c.dv}),
                  kernel == cuda::MlaPrefillKernel::Simt ? kPrefillSimtTol : kPrefillMmaTol);
}

bool mmaDims(const PrefillCase& c) { return c.dn == 128 && c.dr == 64 && c.dv == 128; }

}  // namespace

TEST_CASE("flash MLA prefill kernel matches plain causal attention") {
    auto rng = makeRng("mla-prefill-kernel");
    const std::vector<PrefillCase> cases{
        {16, 128, 64, 128, 1, 0},       {2, 128, 64, 128, 63, 0},   {2, 128, 64, 128, 64, 0},
        {2, 128, 64, 128, 65, 0},       {4, 16, 8, 16, 33, 100},    {3, 128, 64, 128, 300, 0},
        {2, 128, 64, 128, 40, 8200},    {1, 128, 64, 128, 1, 8191}, {5, 30, 6, 34, 97, 31},
        {2, 128, 64, 128, 100, 37, 50},
    };
    for (const auto& c : cases) {
        if (smallSizesOnly() && c.qPos0 + c.nq > 1024) continue;
        runPrefillKernelCase(c, cuda::MlaPrefillKernel::Simt, rng);
        // Auto: the tensor cores for the DeepSeek-V2 dims, the CUDA cores for the others.
        runPrefillKernelCase(c, cuda::MlaPrefillKernel::Auto, rng);
    }
}

TEST_CASE("tensor-core MLA prefill: 64- and 128-query tiles, chunk offsets, sizes off the tiles, 1-128 heads") {
    auto rng = makeRng("mla-prefill-mma");
    std::vector<PrefillCase> cases{
        {16, 128, 64, 128, 1, 0},       {2, 128, 64, 128, 127, 0},  {2, 128, 64, 128, 129, 0},
        {3, 128, 64, 128, 64, 64},      {2, 128, 64, 128, 200, 77}, {1, 128, 64, 128, 17, 63},
        {128, 128, 64, 128, 70, 5},      // V2's head count
        {2, 128, 64, 128, 513, 1500},    // a chunk late in a prompt, n_q off the tile
        {2, 128, 64, 128, 65, 8200, 3},  // long context, keys past the chunk
        {4, 128, 64, 128, 9, 1000, 64},
    };
    // Random chunks: positions and sizes anywhere relative to the 64-query and 64-key tiles.
    std::uniform_int_distribution<int> nqDist(1, 200), posDist(0, 700), hDist(1, 3), extraDist(0, 80);
    for (int i = 0; i < 8; ++i)
        cases.push_back({hDist(rng), 128, 64, 128, nqDist(rng), posDist(rng), i % 2 ? extraDist(rng) : 0});
    for (const auto& c : cases) {
        REQUIRE(mmaDims(c));
        if (smallSizesOnly() && c.qPos0 + c.nq > 1024) continue;
        for (int qTile : {64, 128}) runPrefillKernelCase(c, cuda::MlaPrefillKernel::TensorCore, rng, qTile);
    }
}

TEST_CASE("tensor-core MLA prefill refuses what it does not support") {
    cuda::MlaPrefillParams p;
    p.n_q = 4;
    p.n_kv = 4;
    p.n_heads = 1;
    p.d_nope = 16;
    p.d_rope = 8;
    p.d_v = 16;
    auto buf = deviceZeros<bf16>(1024);
    p.q = p.kv = p.k_pe = buf.data();
    p.out = buf.data();
    p.q_token_stride = p.q_head_stride = 24;
    p.kv_token_stride = p.kv_head_stride = 32;
    p.k_pe_token_stride = 8;
    p.out_token_stride = p.out_head_stride = 16;
    p.softmax_scale = kLiteScale;
    p.kernel = cuda::MlaPrefillKernel::TensorCore;
    CHECK(cuda::launchMlaPrefill(p, nullptr).code() == StatusCode::Unsupported);  // head dims
    p.d_nope = 128;
    p.d_rope = 64;
    p.d_v = 128;
    p.q_token_stride = p.q_head_stride = 192;
    p.kv_token_stride = p.kv_head_stride = 256;
    p.k_pe_token_stride = 64;
    p.out_token_stride = p.out_head_stride = 128;
    p.k_pe = buf.data() + 4;  // 8-byte aligned only: no 16-byte cp.async
    CHECK(cuda::launchMlaPrefill(p, nullptr).code() == StatusCode::Unsupported);
    p.k_pe = buf.data();
    p.mma_q_tile = 32;
    CHECK(cuda::launchMlaPrefill(p, nullptr).code() == StatusCode::InvalidArgument);
    p.mma_q_tile = 0;
    p.n_kv = 3;  // the chunk's own keys missing
    CHECK(cuda::launchMlaPrefill(p, nullptr).code() == StatusCode::InvalidArgument);
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

    // Auto takes the tensor cores where they apply (kv_lora 512, rope 64), the CUDA cores otherwise;
    // the sliced tensor-core kernel is asked for explicitly where it applies.
    std::vector<cuda::MlaDecodeKernel> kernels{cuda::MlaDecodeKernel::Auto, cuda::MlaDecodeKernel::Simt};
    if (c.kvLora == 512 && c.dr == 64) kernels.push_back(cuda::MlaDecodeKernel::TensorCoreSliced);
    for (auto kernel : kernels) {
        CAPTURE(static_cast<int>(kernel));
        call.decode_kernel = kernel;
        REQUIRE_OK(dOut.zero());
        REQUIRE_OK(cuda::mlaAttentionAbsorbed(blas.get(), g, call, *scratch, 132, nullptr, c.forcedSplit));
        CHECK_TENSORS("gpu absorbed", downloadBf16(dOut), want, shape, tol);
    }
    if (c.kvLora != 512) {
        for (auto kernel : {cuda::MlaDecodeKernel::TensorCore, cuda::MlaDecodeKernel::TensorCoreSliced}) {
            call.decode_kernel = kernel;
            CHECK(cuda::mlaAttentionAbsorbed(blas.get(), g, call, *scratch, 132, nullptr, c.forcedSplit).code() ==
                  StatusCode::Unsupported);
        }
    }
    call.decode_kernel = cuda::MlaDecodeKernel::Auto;

    if (c.nq == 1) {  // the graph-replayable form: position on the device, fixed split count
        const std::vector<int32_t> pos{static_cast<int32_t>(c.ctx - 1)};
        auto dPos = upload(pos);
        for (auto kernel : kernels)
            for (int splits : {1, 7, 64, 128}) {
                CAPTURE(splits);
                CAPTURE(static_cast<int>(kernel));
                cuda::MlaCall dev = call;
                dev.q_pos0 = 0;  // ignored: the device position wins
                dev.q_pos0_device = dPos.data();
                dev.device_splits = splits;
                dev.decode_kernel = kernel;
                REQUIRE_OK(dOut.zero());
                REQUIRE_OK(cuda::mlaAttentionAbsorbed(blas.get(), g, dev, *scratch, 132, nullptr));
                const auto merged = downloadBf16(dOut);
                CHECK_TENSORS("gpu absorbed, device position", merged, want, shape, tol);
                // The split merge left to the v GEMV (the sliced kernel defers it; the others
                // ignore the request): the same bits, whether this position's splits are within
                // the limit (64) or not (1).
                for (int mergeInV : {64, 1}) {
                    CAPTURE(mergeInV);
                    dev.merge_in_v_max_splits = mergeInV;
                    REQUIRE_OK(dOut.zero());
                    REQUIRE_OK(cuda::mlaAttentionAbsorbed(blas.get(), g, dev, *scratch, 132, nullptr));
                    CHECK(downloadBf16(dOut) == merged);
                }
            }
        cuda::MlaCall tooMany = call;
        tooMany.q_pos0_device = dPos.data();
        tooMany.device_splits = 129;  // more than the scratch holds
        CHECK(cuda::mlaAttentionAbsorbed(blas.get(), g, tooMany, *scratch, 132, nullptr).code() ==
              StatusCode::InvalidArgument);
    }

    // Expanded: the flash kernel (tensor cores for the V2 dims) and the GEMM form. Both round P to
    // bf16 (relative 2^-9 a weight), which moves an output by up to 2^-9 · max_j |v_j - o| ~ 0.02
    // for these v (~N(0, 1.28)) over short contexts: on an H200 both forms put 1-2 of the 1.5M
    // outputs of the 128-head case just past 1e-2 (max 0.027), so the absolute part here is 3e-2.
    const Tolerance expandedTol{3e-2, 2e-2, 0.9995};
    for (auto form : {cuda::MlaPrefillForm::Flash, cuda::MlaPrefillForm::Gemm}) {
        CAPTURE(static_cast<int>(form));
        call.prefill_form = form;
        REQUIRE_OK(dOut.zero());
        REQUIRE_OK(cuda::mlaAttentionExpanded(blas.get(), g, call, *scratch, nullptr));
        CHECK_TENSORS("gpu expanded", downloadBf16(dOut), want, shape, expandedTol);
    }
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
        {16, 128, 64, 128, 512, 700, 200, 0},  // a later prefill chunk (q_pos0 500)
        {128, 128, 64, 128, 512, 96, 96, 0},   // V2's head count
    };
    for (const auto& c : cases)
        if (!smallSizesOnly() || c.ctx <= 1024) runAttentionCase(c, rng, *blas);
}

// ---------------------------------------------------------------------------------------------
// The decode kernels on their own: o_lat [n_q, H, 512] from fp32 q_lat, bf16 q_pe and a paged
// cache, against a float64 loop.

namespace {

constexpr int kDl = 512, kDr = 64, kEntry = kDl + kDr;
constexpr int kKernelTestMaxSplits = 132;  // an H200's multiprocessors

// o_lat of query i (position qPos0 + i) and head h: softmax over positions [0, qPos0 + i] of
// scale · ([q_lat | q_pe] · entry_j), times the latent parts of the entries; in double.
std::vector<float> referenceDecode(int H, const std::vector<float>& qLat, const std::vector<float>& qPe,
                                   const std::vector<float>& latent, int nq, int64_t qPos0, float scale) {
    std::vector<float> out(static_cast<size_t>(nq) * H * kDl);
    std::vector<double> s, acc(kDl);
    for (int i = 0; i < nq; ++i)
        for (int h = 0; h < H; ++h) {
            const int64_t keys = qPos0 + i + 1;
            const float* ql = qLat.data() + (static_cast<int64_t>(i) * H + h) * kDl;
            const float* qp = qPe.data() + (static_cast<int64_t>(i) * H + h) * kDr;
            s.assign(static_cast<size_t>(keys), 0.0);
            double mx = -1e300;
            for (int64_t j = 0; j < keys; ++j) {
                const float* e = latent.data() + j * kEntry;
                double d = 0.0;
                for (int c = 0; c < kDl; ++c) d += static_cast<double>(ql[c]) * e[c];
                for (int c = 0; c < kDr; ++c) d += static_cast<double>(qp[c]) * e[kDl + c];
                s[j] = d * scale;
                mx = std::max(mx, s[j]);
            }
            double sum = 0.0;
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int64_t j = 0; j < keys; ++j) {
                const double w = std::exp(s[j] - mx);
                sum += w;
                const float* e = latent.data() + j * kEntry;
                for (int c = 0; c < kDl; ++c) acc[c] += w * e[c];
            }
            float* o = out.data() + (static_cast<int64_t>(i) * H + h) * kDl;
            for (int c = 0; c < kDl; ++c) o[c] = static_cast<float>(acc[c] / sum);
        }
    return out;
}

// One sequence's entries in a paged cache of 64-token blocks, its blocks interleaved with another
// sequence's so that the block table is not the identity.
struct PagedLatent {
    cuda::PagedLatentCache cache;
    cuda::LatentSequence seq, other;
    cuda::PagedCacheRef ref;
};

PagedLatent makePagedLatent(const std::vector<float>& latent, int64_t ctx) {
    cuda::LatentCacheLayout layout;
    layout.nLayers = 2;
    layout.entryDim = kEntry;
    layout.blockSize = 64;
    layout.nBlocks = static_cast<int32_t>((ctx + 63) / 64 + 8);
    auto cache = cuda::PagedLatentCache::create(layout);
    REQUIRE_MESSAGE(cache.isOk(), cache.status().toString());
    PagedLatent pl;
    pl.cache = std::move(cache).value();
    auto seq = pl.cache.newSequence(ctx);
    auto other = pl.cache.newSequence(512);
    REQUIRE(seq.isOk());
    REQUIRE(other.isOk());
    pl.seq = std::move(seq).value();
    pl.other = std::move(other).value();
    REQUIRE_OK(pl.cache.reserve(pl.seq, std::min<int64_t>(ctx, 64)));
    REQUIRE_OK(pl.cache.reserve(pl.other, 3 * 64));
    REQUIRE_OK(pl.cache.reserve(pl.seq, ctx));
    REQUIRE_OK(pl.cache.syncTable(pl.seq, nullptr));
    pl.ref = cuda::PagedCacheRef{pl.cache.layerBase(1), pl.seq.deviceTable.data(), 64, kEntry};
    auto dLatent = uploadBf16(latent);
    cuda::LatentCacheWriteParams w;
    w.cache = pl.ref;
    w.n_tokens = static_cast<int>(ctx);
    w.src = dLatent.data();
    w.src_stride = kEntry;
    REQUIRE_OK(cuda::launchLatentCacheWrite(w, nullptr));
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    return pl;
}

// o_lat is bf16, so its rounding alone is up to 2^-8 = 3.9e-3 relative; the CUDA-core kernel is
// fp32 everywhere else (errors ~1e-6). The tensor-core kernel's scores match fp32 (q as bf16 hi +
// lo: 2^-18 relative), but its probabilities are bf16: each weight is off by <= 2^-8 relative, so
// |Δo| <= 2^-8 · max_j |v_j − o| (~0.01 at worst for N(0,1) entries, ~1e-3 typical): hence the
// wider absolute term. A wrong fragment index or a lost tile gives errors of order 0.1-1, a
// cosine far below these floors, or NaN (the output and workspace start as NaN).
const Tolerance kSimtTol{1e-4, 4e-3, 0.99999};
const Tolerance kMmaTol{8e-3, 6e-3, 0.99999};

const char* kernelName(cuda::MlaDecodeKernel k) {
    switch (k) {
    case cuda::MlaDecodeKernel::Simt: return "simt";
    case cuda::MlaDecodeKernel::TensorCore: return "mma";
    case cuda::MlaDecodeKernel::TensorCoreSliced: return "sliced";
    case cuda::MlaDecodeKernel::Auto: break;
    }
    return "auto";
}

struct DecodeCase {
    int H;
    int64_t ctx;
    int nq;
    float qStd;  // 1: peaked softmax (score std ≈ 2.8); 0.3: broad (≈ 1.2)
};

struct DecodeRun {
    const char* what;
    cuda::MlaDecodeKernel kernel;
    bool devicePos;
    int nSplits;
    int64_t splitLen;        // 0 with devicePos
    int slicedVariant = -1;  // TensorCoreSliced: the compiled shape (-1: the default)
};

// Runs the kernels over the same inputs in every split mode and compares each output with the
// reference. Output and workspace are filled with NaN first: an output element never written, or a
// partial read that no split wrote, shows up as NaN. With the position on the device, the splits
// a query does not reach must leave their partial (m, l) untouched, and a query that fits one
// split must not touch the workspace at all. The sliced kernel runs every mode in its default
// shape, and its other compiled shapes with partial tiles and with one, seven and the most splits.
void checkDecodeKernels(const DecodeCase& c, const std::vector<float>& qLat, const std::vector<float>& qPe,
                        const PagedLatent& paged, const std::vector<float>& want, const Tolerance& simtTol = kSimtTol,
                        const Tolerance& mmaTol = kMmaTol) {
    const int64_t qPos0 = c.ctx - c.nq;
    const size_t rows = static_cast<size_t>(c.nq) * c.H;
    auto dQLat = upload(qLat);
    auto dQPe = uploadBf16(qPe);
    auto dOut = deviceZeros<bf16>(rows * kDl);
    auto dPartialO = deviceZeros<float>(rows * kKernelTestMaxSplits * kDl);
    auto dPartialMl = deviceZeros<float>(rows * kKernelTestMaxSplits * 2);
    const auto nCounters = static_cast<size_t>(cuda::mlaDecodeMergeCounterCount(c.nq, c.H));
    auto dCounters = deviceZeros<int32_t>(nCounters);  // zero once: every launch must leave them zero
    auto dPos = upload(std::vector<int32_t>{static_cast<int32_t>(qPos0)});
    const std::vector<int64_t> shape{c.nq, c.H, kDl};

    std::vector<DecodeRun> runs;
    const auto plan = cuda::planMlaDecode(c.ctx, c.nq, c.H, 132, kKernelTestMaxSplits);
    const bool split32 = (c.ctx + 31) / 32 <= kKernelTestMaxSplits;  // splits that end inside tensor-core tiles
    for (auto kernel :
         {cuda::MlaDecodeKernel::Simt, cuda::MlaDecodeKernel::TensorCore, cuda::MlaDecodeKernel::TensorCoreSliced}) {
        runs.push_back({"planned splits", kernel, false, plan.n_splits, plan.split_len});
        if (split32) runs.push_back({"32-position splits", kernel, false, static_cast<int>((c.ctx + 31) / 32), 32});
        for (int splits : {1, 7, 64, kKernelTestMaxSplits})
            runs.push_back({"device position", kernel, true, splits, 0});
    }
    for (int v = 0; v < cuda::kMlaDecodeSlicedVariants; ++v) {
        const auto sliced = cuda::MlaDecodeKernel::TensorCoreSliced;
        if (split32) runs.push_back({"32-position splits", sliced, false, static_cast<int>((c.ctx + 31) / 32), 32, v});
        // One split (every tile of the context in one cluster: the score exchange's two mbarriers
        // go through many phases), seven (uneven, long), the most.
        for (int splits : {1, 7, kKernelTestMaxSplits}) runs.push_back({"device position", sliced, true, splits, 0, v});
    }
    for (const auto& run : runs)
        for (int rep = 0; rep < 2; ++rep) {  // the same launch twice: the merge counters must be reset
            CAPTURE(run.what);
            CAPTURE(kernelName(run.kernel));
            CAPTURE(run.nSplits);
            CAPTURE(run.splitLen);
            CAPTURE(run.slicedVariant);
            CAPTURE(rep);
            REQUIRE(cudaMemset(dOut.data(), 0xff, rows * kDl * sizeof(bf16)) == cudaSuccess);
            REQUIRE(cudaMemset(dPartialO.data(), 0xff, rows * kKernelTestMaxSplits * kDl * sizeof(float)) ==
                    cudaSuccess);
            REQUIRE(cudaMemset(dPartialMl.data(), 0xff, rows * kKernelTestMaxSplits * 2 * sizeof(float)) ==
                    cudaSuccess);
            cuda::MlaDecodeParams p;
            p.n_q = c.nq;
            p.n_heads = c.H;
            p.d_latent = kDl;
            p.d_rope = kDr;
            p.q_pos0 = run.devicePos ? 0 : qPos0;  // ignored with the device position
            p.q_pos0_device = run.devicePos ? dPos.data() : nullptr;
            p.q_lat = dQLat.data();
            p.q_lat_token_stride = static_cast<int64_t>(c.H) * kDl;
            p.q_lat_head_stride = kDl;
            p.q_pe = dQPe.data();
            p.q_pe_token_stride = static_cast<int64_t>(c.H) * kDr;
            p.q_pe_head_stride = kDr;
            p.cache = paged.ref;
            p.n_splits = run.nSplits;
            p.split_len = run.splitLen;
            p.partial_o = dPartialO.data();
            p.partial_ml = dPartialMl.data();
            p.merge_counters = dCounters.data();
            p.out = dOut.data();
            p.out_token_stride = static_cast<int64_t>(c.H) * kDl;
            p.out_head_stride = kDl;
            p.softmax_scale = kLiteScale;
            p.kernel = run.kernel;
            p.tiles_before_wait = rep == 1;  // the second launch loads its first tiles before the PDL wait
            p.sliced_variant = run.slicedVariant;
            REQUIRE_OK(cuda::launchMlaDecode(p, nullptr));
            const bool simt = run.kernel == cuda::MlaDecodeKernel::Simt;
            const bool sliced = run.kernel == cuda::MlaDecodeKernel::TensorCoreSliced;
            CHECK_TENSORS(kernelName(run.kernel), downloadBf16(dOut), want, shape, simt ? simtTol : mmaTol);

            // Which partials were written: splits [0, used) of a query that needs more than one.
            const int64_t splitLen =
                run.devicePos ? cuda::mlaDecodeDeviceSplits(c.ctx, run.nSplits).split_len : run.splitLen;
            const auto ml = download(dPartialMl);
            const auto poisoned = [](float v) {
                uint32_t bits = 0;
                std::memcpy(&bits, &v, sizeof(bits));
                return bits == 0xffffffffu;
            };
            int64_t wrongSlots = 0;
            int64_t maxUsed = 0;
            for (int i = 0; i < c.nq; ++i) {
                const int64_t used = (qPos0 + i + 1 + splitLen - 1) / splitLen;
                maxUsed = std::max(maxUsed, used);
                CHECK(used <= run.nSplits);
                for (int h = 0; h < c.H; ++h)
                    for (int sIdx = 0; sIdx < run.nSplits; ++sIdx) {
                        const size_t slot = ((static_cast<size_t>(i) * c.H + h) * run.nSplits + sIdx) * 2;
                        const bool written = used > 1 && sIdx < used;
                        if (written ? !(std::isfinite(ml[slot]) && ml[slot + 1] >= 1.0f) : !poisoned(ml[slot]))
                            ++wrongSlots;
                    }
            }
            const auto counters = download(dCounters);
            const bool countersZero = std::all_of(counters.begin(), counters.end(), [](int32_t v) { return v == 0; });
            if (simt || (sliced && !run.devicePos)) {
                CHECK_MESSAGE(wrongSlots == 0, "partial (m, l) slots written where they should not be, or not written");
            } else if (sliced) {
                // With the position on the device the sliced kernel may use fewer, longer splits
                // (rows n_splits' apart): every (m, l) pair is untouched or a split's (finite m,
                // l >= 1), and a context that fits one split of the uncapped plan (so one of any
                // plan) touches no workspace at all.
                int64_t badPairs = 0;
                for (size_t k = 0; k < ml.size(); k += 2)
                    if (!(poisoned(ml[k]) && poisoned(ml[k + 1])) && !(std::isfinite(ml[k]) && ml[k + 1] >= 1.0f))
                        ++badPairs;
                CHECK_MESSAGE(badPairs == 0, "partial (m, l) pairs half written or invalid");
                if (maxUsed == 1) {
                    const auto po = download(dPartialO);
                    const bool untouched =
                        std::all_of(ml.begin(), ml.end(), poisoned) && std::all_of(po.begin(), po.end(), poisoned);
                    CHECK_MESSAGE(untouched, "one split's worth of context wrote the workspace");
                }
            } else {
                // Tensor cores: cluster partials in partial_o only; partial_ml stays untouched, and
                // a context that fits one cluster of 8 splits touches no workspace at all.
                CHECK_MESSAGE(std::all_of(ml.begin(), ml.end(), poisoned), "the tensor cores wrote partial_ml");
                if (maxUsed <= cuda::kMlaDecodeClusterBlocks) {
                    const auto po = download(dPartialO);
                    CHECK_MESSAGE(std::all_of(po.begin(), po.end(), poisoned),
                                  "one cluster's worth of splits wrote the partial workspace");
                }
            }
            if (!simt) CHECK_MESSAGE(countersZero, "the merge counters were not put back to zero");
            requireDeviceOk();
        }
}

void runDecodeCase(const DecodeCase& c, std::mt19937_64& rng) {
    CAPTURE(c.H);
    CAPTURE(c.ctx);
    CAPTURE(c.nq);
    CAPTURE(c.qStd);
    const auto latent = randomBf16(rng, static_cast<size_t>(c.ctx) * kEntry);
    const auto paged = makePagedLatent(latent, c.ctx);
    const auto qLat = randomFloat(rng, static_cast<size_t>(c.nq) * c.H * kDl, c.qStd);  // fp32, not bf16-exact
    const auto qPe = randomBf16(rng, static_cast<size_t>(c.nq) * c.H * kDr, c.qStd);
    const auto want = referenceDecode(c.H, qLat, qPe, latent, c.nq, c.ctx - c.nq, kLiteScale);
    checkDecodeKernels(c, qLat, qPe, paged, want);
}

}  // namespace

TEST_CASE("MLA decode kernels (CUDA cores, tensor cores, sliced) match a float64 reference in every split mode") {
    auto rng = makeRng("mla-decode-kernels");
    std::vector<DecodeCase> cases;
    // Heads: one partial MMA tile (1, 8), one full (16), a full and a partial one (20), several
    // (32: V2 over 4 GPUs; 128: V2 on one). Contexts around tiles, splits and 64-token blocks.
    int n = 0;
    for (int H : {1, 8, 16, 20, 32, 128})
        for (int64_t ctx : {1, 31, 33, 257, 1000, 4100}) cases.push_back({H, ctx, 1, (n++ % 2) ? 0.3f : 1.0f});
    // Several queries (chunks through the absorbed form): causal per query, early queries use
    // fewer splits than later ones.
    cases.push_back({16, 300, 3, 1.0f});
    cases.push_back({20, 130, 5, 0.3f});
    cases.push_back({8, 65, 2, 1.0f});
    // Long contexts: many tiles per split, many splits.
    cases.push_back({16, 8200, 1, 1.0f});
    cases.push_back({16, 16448, 1, 0.3f});
    for (const auto& c : cases)
        if (!smallSizesOnly() || c.ctx <= 1024) runDecodeCase(c, rng);
}

TEST_CASE("tensor-core MLA decode merges 1 to 16 clusters of splits in the kernel, repeatedly") {
    // Split counts around the cluster size (1 cluster with empty ranks, exactly 1, 1 + 1 block, 2,
    // many), contexts that end inside a split, 16 and 128 heads (8 head groups, each with its own
    // counters), and several queries whose split counts differ. checkDecodeKernels runs every mode
    // twice with NaN-poisoned outputs and checks that the counters end at zero.
    auto rng = makeRng("mla-decode-cluster-merge");
    std::vector<DecodeCase> cases{
        {16, 64 * 8, 1, 1.0f},        // 8 splits of 64: one full cluster
        {16, 64 * 8 + 1, 1, 0.3f},    // 9 splits: a second cluster with one block of one position
        {16, 64 * 16 - 5, 1, 1.0f},   // Lite at ~1K: two clusters
        {128, 64 * 17 + 3, 1, 0.3f},  // 128 heads, three clusters
        {16, 32 * 130, 1, 1.0f},      // 32-position splits: 17 clusters (more than resident at once)
        {16, 600, 4, 0.3f},           // four queries, 9-10 used splits each
    };
    for (const auto& c : cases) runDecodeCase(c, rng);

    // The tensor-core kernel needs its counters; Auto then takes the CUDA cores.
    const DecodeCase c{16, 200, 1, 1.0f};
    const auto latent = randomBf16(rng, static_cast<size_t>(c.ctx) * kEntry);
    const auto paged = makePagedLatent(latent, c.ctx);
    const auto qLat = randomFloat(rng, static_cast<size_t>(c.H) * kDl);
    const auto qPe = randomBf16(rng, static_cast<size_t>(c.H) * kDr);
    const auto want = referenceDecode(c.H, qLat, qPe, latent, 1, c.ctx - 1, kLiteScale);
    auto dQLat = upload(qLat);
    auto dQPe = uploadBf16(qPe);
    auto dOut = deviceZeros<bf16>(static_cast<size_t>(c.H) * kDl);
    auto dPartialO = deviceZeros<float>(static_cast<size_t>(c.H) * 8 * kDl);
    auto dPartialMl = deviceZeros<float>(static_cast<size_t>(c.H) * 8 * 2);
    const auto plan = cuda::planMlaDecode(c.ctx, 1, c.H, 132, 8);
    cuda::MlaDecodeParams p;
    p.n_q = 1;
    p.n_heads = c.H;
    p.d_latent = kDl;
    p.d_rope = kDr;
    p.q_pos0 = c.ctx - 1;
    p.q_lat = dQLat.data();
    p.q_lat_token_stride = static_cast<int64_t>(c.H) * kDl;
    p.q_lat_head_stride = kDl;
    p.q_pe = dQPe.data();
    p.q_pe_token_stride = static_cast<int64_t>(c.H) * kDr;
    p.q_pe_head_stride = kDr;
    p.cache = paged.ref;
    p.n_splits = plan.n_splits;
    p.split_len = plan.split_len;
    p.partial_o = dPartialO.data();
    p.partial_ml = dPartialMl.data();
    p.out = dOut.data();
    p.out_token_stride = static_cast<int64_t>(c.H) * kDl;
    p.out_head_stride = kDl;
    p.softmax_scale = kLiteScale;
    p.kernel = cuda::MlaDecodeKernel::TensorCore;
    CHECK(cuda::launchMlaDecode(p, nullptr).code() == StatusCode::InvalidArgument);
    p.kernel = cuda::MlaDecodeKernel::TensorCoreSliced;
    CHECK(cuda::launchMlaDecode(p, nullptr).code() == StatusCode::InvalidArgument);
    p.sliced_variant = cuda::kMlaDecodeSlicedVariants;  // no such shape
    CHECK(cuda::launchMlaDecode(p, nullptr).code() == StatusCode::InvalidArgument);
    p.sliced_variant = -1;
    p.kernel = cuda::MlaDecodeKernel::Auto;
    REQUIRE_OK(cuda::launchMlaDecode(p, nullptr));
    CHECK_TENSORS("auto without counters", downloadBf16(dOut), want, (std::vector<int64_t>{1, c.H, kDl}), kSimtTol);
    requireDeviceOk();
}

TEST_CASE("tensor-core MLA decode keeps q_lat at fp32 precision (bf16 hi + lo)") {
    // Scores that are large sums with small differences between positions: q_lat ~ N(0, 256²)
    // (one vector, all heads) and latent rows made orthogonal to it before rounding to bf16, so
    // q_lat·c_j is only the rounding residue (std ≈ 0.7 after the scale, a broad softmax). Dropping
    // q's low bf16 half would move every score by about as much (std ≈ 0.7) and the outputs by
    // ~0.1-0.5; the hi + lo product moves them by 2^-9 of that. The test first checks that the bf16-q
    // reference really is that far from the fp32 one.
    auto rng = makeRng("mla-decode-precision");
    const DecodeCase c{16, 150, 1, 0.3f};
    const auto q0 = randomFloat(rng, kDl, 256.0f);
    std::vector<float> qLat(static_cast<size_t>(c.H) * kDl);
    for (int h = 0; h < c.H; ++h) std::copy(q0.begin(), q0.end(), qLat.begin() + static_cast<int64_t>(h) * kDl);
    const auto qPe = randomBf16(rng, static_cast<size_t>(c.H) * kDr, c.qStd);
    std::vector<float> latent = randomFloat(rng, static_cast<size_t>(c.ctx) * kEntry);
    double qq = 0.0;
    for (float v : q0) qq += static_cast<double>(v) * v;
    for (int64_t j = 0; j < c.ctx; ++j) {
        float* e = latent.data() + j * kEntry;
        double qr = 0.0;
        for (int d = 0; d < kDl; ++d) qr += static_cast<double>(q0[d]) * e[d];
        for (int d = 0; d < kDl; ++d) e[d] = static_cast<float>(e[d] - qr / qq * q0[d]);
        for (int d = 0; d < kEntry; ++d) e[d] = roundBf16(e[d]);
    }
    const auto paged = makePagedLatent(latent, c.ctx);
    const auto want = referenceDecode(c.H, qLat, qPe, latent, 1, c.ctx - 1, kLiteScale);
    std::vector<float> qLatBf16(qLat);
    for (auto& v : qLatBf16) v = roundBf16(v);
    const auto wantBf16Q = referenceDecode(c.H, qLatBf16, qPe, latent, 1, c.ctx - 1, kLiteScale);
    double sensitivity = 0.0;
    for (size_t i = 0; i < want.size(); ++i)
        sensitivity = std::max(sensitivity, std::fabs(double{want[i]} - wantBf16Q[i]));
    CAPTURE(sensitivity);
    REQUIRE(sensitivity > 10 * kMmaTol.atol);
    // fp32 sums of ±256-sized products (partial sums ~3000, ulp 2.4e-4) carry ~2e-4 of rounding into
    // the scaled scores in either kernel: up to ~2e-4 on the outputs, hence atol 1e-3 for the CUDA
    // cores here; the tensor-core tolerance already covers it.
    checkDecodeKernels(c, qLat, qPe, paged, want, Tolerance{1e-3, 4e-3, 0.99999}, kMmaTol);
}
