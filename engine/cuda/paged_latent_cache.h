#pragma once
// The paged latent KV cache of MLA: per layer and token one entry [c_kv (kv_lora_rank) | k_pe
// (qk_rope_head_dim)] in bf16 (576 values on V2), stored in fixed blocks of `blockSize` tokens
// (64, as FlashMLA). One pool for all layers, laid out [layer][block][slot][entry]; a sequence owns
// a list of block ids (its block table) that is the same for every layer.
//
// Lifecycle: reserve(seq, n) before writing positions < n (allocates blocks or fails with the
// numbers), commit(seq, n) once they are written, truncate(seq, n) to rewind (frees whole blocks
// past n), release(seq) when the session ends.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cuda/block_allocator.h"
#include "cuda/device_buffer.h"
#include "dsv2/status.h"

namespace dsv2::cuda {

struct LatentCacheLayout {
    int32_t nLayers = 0;
    int32_t entryDim = 0;    // kv_lora_rank + qk_rope_head_dim
    int32_t blockSize = 64;  // tokens per block
    int32_t nBlocks = 0;     // blocks in the pool

    int64_t bytesPerLayerPerToken() const { return static_cast<int64_t>(entryDim) * 2; }
    int64_t bytesPerToken() const { return bytesPerLayerPerToken() * nLayers; }  // Lite: 31,104 B
    int64_t bytesPerBlock() const { return bytesPerToken() * blockSize; }        // all layers
    int64_t totalBytes() const { return bytesPerBlock() * nBlocks; }
    int64_t capacityTokens() const { return static_cast<int64_t>(nBlocks) * blockSize; }
};

struct LatentCacheStats {
    int32_t blocksTotal = 0;
    int32_t blocksUsed = 0;
    int32_t blocksFree = 0;
    int32_t blockSize = 0;
    int64_t bytesPerToken = 0;          // all layers
    int64_t bytesPerLayerPerToken = 0;
    int64_t bytesPerLayer = 0;          // one layer's slice of the whole pool
    int64_t bytesUsed = 0;              // blocksUsed · bytesPerBlock
    int64_t bytesTotal = 0;
    int64_t tokensStored = 0;           // sum of committed sequence lengths
    int64_t capacityTokens = 0;
};

// One sequence's view of the cache. Owned by a session; its blocks belong to the cache's allocator.
struct LatentSequence {
    std::vector<int32_t> blocks;          // block table, host copy
    int64_t length = 0;                   // committed tokens (positions [0, length) hold entries)
    int64_t maxTokens = 0;                // capacity of deviceTable
    DeviceBuffer<int32_t> deviceTable;    // [maxTokens / blockSize rounded up]
    bool tableDirty = true;               // host table changed since the last upload
};

class PagedLatentCache {
public:
    PagedLatentCache() = default;
    PagedLatentCache(PagedLatentCache&&) noexcept = default;
    PagedLatentCache& operator=(PagedLatentCache&&) noexcept = default;

    // Allocates the pool (layout.totalBytes() of device memory, zeroed).
    static Result<PagedLatentCache> create(const LatentCacheLayout& layout);

    const LatentCacheLayout& layout() const { return m_layout; }
    __nv_bfloat16* layerBase(int32_t layer) {
        return m_pool.data() + static_cast<int64_t>(layer) * m_layout.nBlocks * m_layout.blockSize * m_layout.entryDim;
    }

    // A sequence that can grow to maxTokens (its device block table is sized for that).
    Result<LatentSequence> newSequence(int64_t maxTokens);
    // Makes room for positions [0, newLength): allocates the missing blocks, all or nothing.
    Status reserve(LatentSequence& seq, int64_t newLength);
    // Marks positions [0, newLength) as written (newLength must be reserved).
    Status commit(LatentSequence& seq, int64_t newLength);
    // Rewinds to `newLength` tokens (no-op when longer than the sequence); frees blocks no longer needed.
    void truncate(LatentSequence& seq, int64_t newLength);
    // Frees every block of the sequence.
    void release(LatentSequence& seq);
    // Uploads the block table when it changed (asynchronously on `stream`; the host copy stays valid).
    Status syncTable(LatentSequence& seq, cudaStream_t stream);

    LatentCacheStats stats() const;

private:
    int64_t blocksFor(int64_t tokens) const { return (tokens + m_layout.blockSize - 1) / m_layout.blockSize; }

    LatentCacheLayout m_layout;
    DeviceBuffer<__nv_bfloat16> m_pool;  // [nLayers, nBlocks, blockSize, entryDim]
    BlockAllocator m_allocator;
    int64_t m_tokensStored = 0;
};

}  // namespace dsv2::cuda
