#include "cuda/block_allocator.h"

namespace dsv2::cuda {

BlockAllocator::BlockAllocator(int32_t nBlocks)
    : m_nBlocks(nBlocks > 0 ? nBlocks : 0), m_allocated(static_cast<size_t>(m_nBlocks), 0) {
    m_free.reserve(static_cast<size_t>(m_nBlocks));
    for (int32_t b = m_nBlocks - 1; b >= 0; --b) m_free.push_back(b);
}

std::optional<int32_t> BlockAllocator::allocate() {
    if (m_free.empty()) return std::nullopt;
    const int32_t b = m_free.back();
    m_free.pop_back();
    m_allocated[static_cast<size_t>(b)] = 1;
    return b;
}

bool BlockAllocator::allocateMany(int32_t count, std::vector<int32_t>& out) {
    if (count < 0 || count > numFree()) return false;
    for (int32_t i = 0; i < count; ++i) out.push_back(*allocate());
    return true;
}

void BlockAllocator::free(int32_t block) {
    if (!isAllocated(block)) {
        ++m_badFrees;
        return;
    }
    m_allocated[static_cast<size_t>(block)] = 0;
    m_free.push_back(block);
}

bool BlockAllocator::isAllocated(int32_t block) const {
    return block >= 0 && block < m_nBlocks && m_allocated[static_cast<size_t>(block)] != 0;
}

}  // namespace dsv2::cuda
