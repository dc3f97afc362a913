#pragma once
// The weight files of a model folder: `model.safetensors`, or the shards that
// `model.safetensors.index.json` lists (hub layout). Every shard is memory-mapped and its header
// validated; the tensors of all shards form one TensorMap of zero-copy views.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dsv2/progress.h"
#include "dsv2/status.h"
#include "model/mapped_file.h"
#include "model/tensor.h"

namespace dsv2 {

struct SafetensorsShard {
    std::filesystem::path path;
    uint64_t fileBytes = 0;
    size_t tensorCount = 0;
    std::map<std::string, std::string> metadata;  // "__metadata__", e.g. {"format": "pt"}
};

class SafetensorsCheckpoint {
public:
    // Opens the weights of a model folder (single file or sharded). All problems of all shards
    // (truncated files, lying headers, an index that names missing shards or tensors) are listed
    // in one error.
    static Result<std::unique_ptr<SafetensorsCheckpoint>> openFolder(const std::filesystem::path& dir);
    // Opens the given files as one checkpoint (no index).
    static Result<std::unique_ptr<SafetensorsCheckpoint>> openFiles(const std::vector<std::filesystem::path>& files);

    const TensorMap& tensors() const { return m_tensors; }
    const TensorView* find(const std::string& name) const;
    const std::vector<SafetensorsShard>& shards() const { return m_shards; }
    bool sharded() const { return m_indexed; }
    uint64_t fileBytes() const;  // sum of the shard file sizes
    // Reads every shard into memory (the page cache) in order, reporting bytes done, so the
    // first generation does not stall on disk and a load shows real progress. Cancelled when
    // `progress` returns false. Chunks of 64 MiB: small enough for a smooth progress bar and a
    // prompt cancel, large enough that the kernel's read-ahead streams at the disk's speed.
    Status prefetch(const ProgressCallback& progress, size_t chunkBytes = size_t{64} << 20) const;

private:
    SafetensorsCheckpoint() = default;

    std::vector<MappedFile> m_files;
    std::vector<SafetensorsShard> m_shards;
    TensorMap m_tensors;
    std::map<std::string, size_t> m_shardOf;  // tensor -> index into m_shards
    bool m_indexed = false;
};

}  // namespace dsv2
