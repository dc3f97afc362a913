// The paged latent cache on the device: reserve/commit/truncate/release, the block table upload,
// the stats the GUI shows, and the refusal with numbers when the pool is full.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cuda/paged_latent_cache.h"
#include "cuda_test_util.h"
#include "gpu_skip.h"

using namespace dsv2;
using namespace dsv2::test;

namespace {

struct GpuGuard {
    GpuGuard() { requireGpuOrSkip("cuda_cache_test"); }
};
const GpuGuard kGuard;

cuda::LatentCacheLayout liteLayout(int32_t blocks) {
    cuda::LatentCacheLayout l;
    l.nLayers = 27;
    l.entryDim = 576;
    l.blockSize = 64;
    l.nBlocks = blocks;
    return l;
}

}  // namespace

TEST_CASE("stats report V2-Lite's 31,104 bytes per token and follow reserve/commit/truncate") {
    auto cache = cuda::PagedLatentCache::create(liteLayout(10));
    REQUIRE_MESSAGE(cache.isOk(), cache.status().toString());
    auto s = cache->stats();
    CHECK(s.bytesPerToken == 31104);
    CHECK(s.bytesPerLayerPerToken == 1152);
    CHECK(s.bytesPerLayer == 1152 * 640);
    CHECK(s.bytesTotal == 31104LL * 640);
    CHECK(s.capacityTokens == 640);
    CHECK(s.blocksFree == 10);

    auto seq = cache->newSequence(640);
    REQUIRE(seq.isOk());
    REQUIRE_OK(cache->reserve(*seq, 65));  // 2 blocks
    s = cache->stats();
    CHECK(s.blocksUsed == 2);
    CHECK(s.tokensStored == 0);
    REQUIRE_OK(cache->commit(*seq, 65));
    CHECK(cache->stats().tokensStored == 65);
    CHECK(seq->length == 65);
    REQUIRE_OK(cache->reserve(*seq, 64 * 5));
    REQUIRE_OK(cache->commit(*seq, 64 * 5));
    CHECK(cache->stats().blocksUsed == 5);

    cache->truncate(*seq, 64);  // rewind: exactly one block stays
    CHECK(seq->length == 64);
    CHECK(seq->blocks.size() == 1);
    CHECK(cache->stats().blocksUsed == 1);
    CHECK(cache->stats().tokensStored == 64);
    cache->truncate(*seq, 1000);  // longer than the sequence: nothing changes
    CHECK(seq->length == 64);
    cache->truncate(*seq, 63);
    CHECK(seq->blocks.size() == 1);
    cache->truncate(*seq, 0);
    CHECK(seq->blocks.empty());
    CHECK(cache->stats().blocksUsed == 0);
    CHECK(cache->stats().tokensStored == 0);
}

TEST_CASE("a full pool refuses with the numbers and allocates nothing") {
    auto cache = cuda::PagedLatentCache::create(liteLayout(4));
    REQUIRE(cache.isOk());
    auto a = cache->newSequence(1000);
    auto b = cache->newSequence(1000);
    REQUIRE(a.isOk());
    REQUIRE(b.isOk());
    REQUIRE_OK(cache->reserve(*a, 3 * 64));
    const Status st = cache->reserve(*b, 2 * 64);
    CHECK(st.code() == StatusCode::ResourceExhausted);
    CHECK(st.message().find("1 of 4 are free") != std::string::npos);
    CHECK(b->blocks.empty());
    CHECK(cache->stats().blocksFree == 1);
    const Status tooLong = cache->reserve(*a, 1001);
    CHECK(tooLong.code() == StatusCode::OutOfRange);
    cache->release(*a);
    CHECK(cache->stats().blocksFree == 4);
    REQUIRE_OK(cache->reserve(*b, 4 * 64));
}

TEST_CASE("the device block table follows the host table") {
    auto cache = cuda::PagedLatentCache::create(liteLayout(8));
    REQUIRE(cache.isOk());
    auto a = cache->newSequence(8 * 64);
    auto b = cache->newSequence(8 * 64);
    REQUIRE(a.isOk());
    REQUIRE(b.isOk());
    REQUIRE_OK(cache->reserve(*a, 64));
    REQUIRE_OK(cache->reserve(*b, 128));
    REQUIRE_OK(cache->reserve(*a, 200));
    REQUIRE_OK(cache->syncTable(*a, nullptr));
    CHECK_FALSE(a->tableDirty);
    std::vector<int32_t> dev(a->blocks.size());
    REQUIRE_OK(a->deviceTable.copyToHost(dev.data(), dev.size()));
    CHECK(dev == a->blocks);
    CHECK(a->blocks == std::vector<int32_t>{0, 3, 4, 5});
}

TEST_CASE("a layout that cannot work is refused") {
    auto l = liteLayout(4);
    l.blockSize = 48;
    CHECK(cuda::PagedLatentCache::create(l).status().code() == StatusCode::InvalidArgument);
    l = liteLayout(0);
    CHECK_FALSE(cuda::PagedLatentCache::create(l).isOk());
    l = liteLayout(4);
    l.entryDim = 577;
    CHECK_FALSE(cuda::PagedLatentCache::create(l).isOk());
}
