// checkGridTail (grid_tail.h): which tails a launch refuses before it runs. Host-only (no pointer
// is dereferenced), so this runs without a GPU; the tails' device work: cuda_residual_norm_test,
// cuda_moe_test and cuda_backend_test.
#include <doctest/doctest.h>

#include <cstdint>

#include "cuda/grid_tail.h"

using dsv2::StatusCode;
using dsv2::cuda::checkGridTail;
using dsv2::cuda::GridTail;

namespace {

// Addresses that are never dereferenced: the check only looks at which pointers are set.
alignas(16) float gFloats[16];
alignas(16) __nv_bfloat16 gBf16[16];
int32_t gInts[4];
unsigned gCounter;
float gInvFreq[2];

GridTail normTail() {
    GridTail t;
    t.counter = &gCounter;
    t.residual = gFloats;
    t.delta = gFloats + 8;
    t.norm_weight = gBf16;
    t.x_out = gBf16 + 8;
    t.n = 8;
    t.eps = 1e-6f;
    return t;
}

GridTail prologueTail() {
    GridTail t;
    t.counter = &gCounter;
    auto& p = t.prologue;
    p.n_tokens = 1;
    p.positions = gInts;
    p.kv_a = gBf16;
    p.kv_stride = 12;
    p.kv_lora = 8;
    p.kv_weight = gBf16;
    p.cache = {gBf16, gInts, 64, 12};
    p.q_pe = gBf16;
    p.n_heads = 2;
    p.q_token_stride = 24;
    p.q_head_stride = 12;
    p.rope_dim = 4;
    p.inv_freq = gInvFreq;
    return t;
}

}  // namespace

TEST_CASE("an inactive tail always passes; active ones need a counter") {
    CHECK(checkGridTail(GridTail{}, 0).isOk());
    CHECK(checkGridTail(GridTail{}, 123).isOk());
    CHECK(checkGridTail(normTail(), 8).isOk());
    CHECK(checkGridTail(prologueTail(), 0).isOk());
    for (GridTail t : {normTail(), prologueTail()}) {
        t.counter = nullptr;
        CHECK(checkGridTail(t, 8).code() == StatusCode::InvalidArgument);
    }
}

TEST_CASE("a tail norm needs all its buffers and must cover the kernel's output exactly") {
    GridTail t = normTail();
    CHECK(checkGridTail(t, 7).code() == StatusCode::InvalidArgument);
    CHECK(checkGridTail(t, 9).code() == StatusCode::InvalidArgument);
    CHECK(checkGridTail(t, 0).code() == StatusCode::InvalidArgument);  // a kernel without fp32 output
    t = normTail();
    t.delta = nullptr;
    CHECK(checkGridTail(t, 8).code() == StatusCode::InvalidArgument);
    t = normTail();
    t.norm_weight = nullptr;
    CHECK(checkGridTail(t, 8).code() == StatusCode::InvalidArgument);
    t = normTail();
    t.x_out = nullptr;
    CHECK(checkGridTail(t, 8).code() == StatusCode::InvalidArgument);
    t = normTail();
    t.n = 0;
    CHECK(checkGridTail(t, 0).code() == StatusCode::InvalidArgument);
}

TEST_CASE("a tail prologue is one token's, with the prologue launch's own checks") {
    GridTail t = prologueTail();
    t.prologue.n_tokens = 2;  // not active, but not empty either
    CHECK(checkGridTail(t, 0).code() == StatusCode::InvalidArgument);
    t = prologueTail();
    t.prologue.positions = nullptr;
    CHECK(checkGridTail(t, 0).code() == StatusCode::InvalidArgument);
    t = prologueTail();
    t.prologue.rope_dim = 3;
    CHECK(checkGridTail(t, 0).code() == StatusCode::InvalidArgument);
    t = prologueTail();
    t.prologue.cache.entry_dim = 11;  // != kv_lora + rope_dim
    CHECK(checkGridTail(t, 0).code() == StatusCode::InvalidArgument);
    // Both kinds at once (not used by the engine, but valid): each part is checked.
    t = prologueTail();
    const GridTail n = normTail();
    t.residual = n.residual;
    t.delta = n.delta;
    t.norm_weight = n.norm_weight;
    t.x_out = n.x_out;
    t.n = n.n;
    CHECK(checkGridTail(t, 8).isOk());
    t.prologue.q_pe = gBf16;
    t.prologue.n_heads = 0;
    CHECK(checkGridTail(t, 8).code() == StatusCode::InvalidArgument);
}
