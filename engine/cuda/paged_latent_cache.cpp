#include "cuda/paged_latent_cache.h"

#include <algorithm>
#include <string>

namespace dsv2::cuda {

Result<PagedLatentCache> PagedLatentCache::create(const LatentCacheLayout& layout) {
    if (layout.nLayers <= 0 || layout.entryDim <= 0 || layout.entryDim % 2 != 0 || layout.blockSize <= 0 ||
        layout.blockSize % 32 != 0 || layout.nBlocks <= 0)
        return Status(StatusCode::InvalidArgument,
                      "latent cache layout: need layers > 0, an even entry size, a block size that is a "
                      "multiple of 32 and at least one block");
    PagedLatentCache cache;
    cache.m_layout = layout;
    const size_t elements = static_cast<size_t>(layout.totalBytes() / 2);
    auto pool = DeviceBuffer<__nv_bfloat16>::allocate(elements);
    if (!pool.isOk())
        return pool.status().withContext("allocating the latent KV cache (" + std::to_string(layout.nBlocks) +
                                         " blocks of " + std::to_string(layout.blockSize) + " tokens)");
    cache.m_pool = std::move(pool).value();
    // Zeroed so that a read past a sequence's length (a bug) gives zeros rather than NaN garbage.
    DSV2_RETURN_IF_ERROR(cache.m_pool.zero());
    DSV2_CUDA_CHECK(cudaDeviceSynchronize());
    cache.m_allocator = BlockAllocator(layout.nBlocks);
    return cache;
}

Result<LatentSequence> PagedLatentCache::newSequence(int64_t maxTokens) {
    if (maxTokens <= 0) return Status(StatusCode::InvalidArgument, "latent sequence: maxTokens must be positive");
    LatentSequence seq;
    seq.maxTokens = maxTokens;
    DSV2_ASSIGN_OR_RETURN(seq.deviceTable, DeviceBuffer<int32_t>::allocate(static_cast<size_t>(blocksFor(maxTokens))));
    seq.blocks.reserve(static_cast<size_t>(blocksFor(maxTokens)));
    return seq;
}

Status PagedLatentCache::reserve(LatentSequence& seq, int64_t newLength) {
    if (newLength > seq.maxTokens)
        return Status(StatusCode::OutOfRange, "context of " + std::to_string(newLength) +
                                                  " tokens exceeds this session's limit of " +
                                                  std::to_string(seq.maxTokens));
    const int64_t needed = blocksFor(newLength) - static_cast<int64_t>(seq.blocks.size());
    if (needed <= 0) return Status::ok();
    if (!m_allocator.allocateMany(static_cast<int32_t>(needed), seq.blocks))
        return Status(StatusCode::ResourceExhausted,
                      "KV cache full: " + std::to_string(newLength) + " tokens need " + std::to_string(needed) +
                          " more blocks of " + std::to_string(m_layout.blockSize) + " tokens, " +
                          std::to_string(m_allocator.numFree()) + " of " + std::to_string(m_allocator.numBlocks()) +
                          " are free");
    seq.tableDirty = true;
    return Status::ok();
}

Status PagedLatentCache::commit(LatentSequence& seq, int64_t newLength) {
    if (newLength < 0 || blocksFor(newLength) > static_cast<int64_t>(seq.blocks.size()))
        return Status(StatusCode::Internal, "latent cache: commit of " + std::to_string(newLength) +
                                                " tokens without reserved blocks");
    m_tokensStored += newLength - seq.length;
    seq.length = newLength;
    return Status::ok();
}

void PagedLatentCache::truncate(LatentSequence& seq, int64_t newLength) {
    newLength = std::max<int64_t>(newLength, 0);
    if (newLength < seq.length) {
        m_tokensStored -= seq.length - newLength;
        seq.length = newLength;
    }
    const auto keep = static_cast<size_t>(blocksFor(std::max(newLength, seq.length)));
    if (seq.blocks.size() > keep) {
        for (size_t i = keep; i < seq.blocks.size(); ++i) m_allocator.free(seq.blocks[i]);
        seq.blocks.resize(keep);
        seq.tableDirty = true;
    }
}

void PagedLatentCache::release(LatentSequence& seq) {
    m_tokensStored -= seq.length;
    seq.length = 0;
    for (int32_t b : seq.blocks) m_allocator.free(b);
    seq.blocks.clear();
    seq.tableDirty = true;
}

Status PagedLatentCache::syncTable(LatentSequence& seq, cudaStream_t stream) {
    if (!seq.tableDirty || seq.blocks.empty()) return Status::ok();
    // The host vector is not pinned, so this copy is staged synchronously by the driver: the host
    // table may be changed right after the call returns.
    DSV2_CUDA_CHECK(cudaMemcpyAsync(seq.deviceTable.data(), seq.blocks.data(), seq.blocks.size() * sizeof(int32_t),
                                    cudaMemcpyHostToDevice, stream));
    seq.tableDirty = false;
    return Status::ok();
}

LatentCacheStats PagedLatentCache::stats() const {
    LatentCacheStats s;
    s.blocksTotal = m_allocator.numBlocks();
    s.blocksUsed = m_allocator.numUsed();
    s.blocksFree = m_allocator.numFree();
    s.blockSize = m_layout.blockSize;
    s.bytesPerToken = m_layout.bytesPerToken();
    s.bytesPerLayerPerToken = m_layout.bytesPerLayerPerToken();
    s.bytesPerLayer = m_layout.bytesPerLayerPerToken() * m_layout.capacityTokens();
    s.bytesUsed = m_layout.bytesPerBlock() * s.blocksUsed;
    s.bytesTotal = m_layout.totalBytes();
    s.tokensStored = m_tokensStored;
    s.capacityTokens = m_layout.capacityTokens();
    return s;
}

}  // namespace dsv2::cuda
