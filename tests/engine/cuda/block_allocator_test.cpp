// The latent cache's block allocator: host-only bookkeeping, so this suite runs without a GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "cuda/block_allocator.h"

using dsv2::cuda::BlockAllocator;

TEST_CASE("a fresh allocator hands out every block once, lowest id first") {
    BlockAllocator a(5);
    CHECK(a.numBlocks() == 5);
    CHECK(a.numFree() == 5);
    std::vector<int32_t> got;
    for (int i = 0; i < 5; ++i) got.push_back(*a.allocate());
    CHECK(got == std::vector<int32_t>{0, 1, 2, 3, 4});
    CHECK_FALSE(a.allocate().has_value());
    CHECK(a.numUsed() == 5);
    CHECK(a.numFree() == 0);
}

TEST_CASE("freed blocks are reused, most recent first; bad frees are ignored and counted") {
    BlockAllocator a(4);
    for (int i = 0; i < 4; ++i) (void)a.allocate();
    a.free(2);
    a.free(0);
    CHECK(a.numFree() == 2);
    CHECK(*a.allocate() == 0);
    CHECK(*a.allocate() == 2);
    a.free(3);
    a.free(3);   // double free
    a.free(-1);  // out of range
    a.free(99);
    CHECK(a.badFrees() == 3);
    CHECK(a.numFree() == 1);
    CHECK_FALSE(a.isAllocated(3));
    CHECK(a.isAllocated(2));
}

TEST_CASE("allocateMany is all or nothing") {
    BlockAllocator a(6);
    std::vector<int32_t> blocks;
    CHECK(a.allocateMany(4, blocks));
    CHECK(blocks.size() == 4);
    CHECK_FALSE(a.allocateMany(3, blocks));  // only 2 left
    CHECK(blocks.size() == 4);
    CHECK(a.numFree() == 2);
    CHECK(a.allocateMany(2, blocks));
    CHECK(std::set<int32_t>(blocks.begin(), blocks.end()).size() == 6);
    CHECK(a.allocateMany(0, blocks));
}
