#pragma once
// Fixed-size block allocator for the paged latent KV cache: hands out block ids in [0, n_blocks).
// Host-only bookkeeping (no CUDA), so it is tested without a GPU.

#include <cstdint>
#include <optional>
#include <vector>

namespace dsv2::cuda {

class BlockAllocator {
public:
    BlockAllocator() = default;
    explicit BlockAllocator(int32_t nBlocks);

    // Lowest free id first on a fresh allocator; recently freed ids are reused first (warm in L2).
    std::optional<int32_t> allocate();
    // Allocates `count` blocks or none at all.
    bool allocateMany(int32_t count, std::vector<int32_t>& out);
    // Freeing an id that is not allocated is a bug in the caller: ignored and counted.
    void free(int32_t block);

    int32_t numBlocks() const { return m_nBlocks; }
    int32_t numFree() const { return static_cast<int32_t>(m_free.size()); }
    int32_t numUsed() const { return m_nBlocks - numFree(); }
    bool isAllocated(int32_t block) const;
    int64_t badFrees() const { return m_badFrees; }

private:
    int32_t m_nBlocks = 0;
    std::vector<int32_t> m_free;      // stack: back() is handed out next
    std::vector<uint8_t> m_allocated; // [n_blocks]
    int64_t m_badFrees = 0;
};

}  // namespace dsv2::cuda
