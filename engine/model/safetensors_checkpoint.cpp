#include "model/safetensors_checkpoint.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/problem_list.h"
#include "model/safetensors_header.h"

namespace dsv2 {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// Reads model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard file}}.
Result<std::map<std::string, std::string>> readIndex(const fs::path& indexPath) {
    std::ifstream in(indexPath, std::ios::binary);
    if (!in) return Status(StatusCode::IoError, indexPath.string() + ": cannot be opened for reading");
    std::ostringstream text;
    text << in.rdbuf();
    Json root;
    try {
        root = Json::parse(text.str());
    } catch (const Json::exception& e) {
        return Status(StatusCode::InvalidData, indexPath.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (!root.is_object() || !root.contains("weight_map") || !root.at("weight_map").is_object())
        return Status(StatusCode::InvalidData, indexPath.string() + ": missing the \"weight_map\" object");
    std::map<std::string, std::string> map;
    for (const auto& item : root.at("weight_map").items()) {
        if (!item.value().is_string())
            return Status(StatusCode::InvalidData,
                          indexPath.string() + ": \"weight_map\" entry '" + item.key() + "' is not a file name");
        const std::string file = item.value().get<std::string>();
        const fs::path rel(file);
        bool escapes = rel.is_absolute() || file.empty();
        for (const auto& part : rel) escapes |= (part == "..");
        if (escapes)
            return Status(StatusCode::InvalidData,
                          indexPath.string() + ": shard name '" + file + "' must be a file inside the model folder");
        map[item.key()] = file;
    }
    if (map.empty()) return Status(StatusCode::InvalidData, indexPath.string() + ": \"weight_map\" is empty");
    return map;
}

}  // namespace

const TensorView* SafetensorsCheckpoint::find(const std::string& name) const {
    const auto it = m_tensors.find(name);
    return it == m_tensors.end() ? nullptr : &it->second;
}

uint64_t SafetensorsCheckpoint::fileBytes() const {
    uint64_t total = 0;
    for (const auto& s : m_shards) total += s.fileBytes;
    return total;
}

Result<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::openFiles(const std::vector<fs::path>& files) {
    std::unique_ptr<SafetensorsCheckpoint> ckpt(new SafetensorsCheckpoint());
    ProblemList problems;
    std::map<std::string, std::string> owner;  // tensor -> shard file name, to report duplicates
    for (const auto& path : files) {
        auto mapped = MappedFile::open(path);
        if (!mapped) {
            problems.add(mapped.status());
            continue;
        }
        auto header = parseSafetensorsHeader(mapped->bytes(), path.filename().string());
        if (!header) {
            problems.add(header.status());
            continue;
        }
        const std::byte* data = mapped->bytes().data() + header->dataStart;
        for (auto& e : header->tensors) {
            const auto [it, inserted] = owner.emplace(e.name, path.filename().string());
            if (!inserted) {
                problems.add(StatusCode::InvalidData, "tensor '" + e.name + "' appears in both " + it->second +
                                                          " and " + path.filename().string());
                continue;
            }
            TensorView view;
            view.name = e.name;
            view.dtype = e.dtype;
            view.shape = e.shape;
            view.data = data + e.begin;
            view.nbytes = static_cast<size_t>(e.end - e.begin);
            ckpt->m_tensors.emplace(e.name, std::move(view));
            ckpt->m_shardOf.emplace(e.name, ckpt->m_shards.size());
        }
        ckpt->m_shards.push_back({path, mapped->size(), header->tensors.size(), std::move(header->metadata)});
        ckpt->m_files.push_back(std::move(mapped).value());
    }
    if (!problems.empty()) return problems.toStatus("the model's weight files have problems");
    return ckpt;
}

Result<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::openFolder(const fs::path& dir) {
    std::error_code ec;
    // As transformers: a single model.safetensors wins over an index.
    if (fs::is_regular_file(dir / kSingleFile, ec)) return openFiles({dir / kSingleFile});
    if (!fs::is_regular_file(dir / kIndexFile, ec))
        return Status(StatusCode::NotFound, dir.string() + ": no " + kSingleFile + " and no " + kIndexFile +
                                                " (download the model's *.safetensors files into the folder)");

    DSV2_ASSIGN_OR_RETURN(auto weightMap, readIndex(dir / kIndexFile));
    std::set<std::string> shardNames;
    for (const auto& [tensor, shard] : weightMap) shardNames.insert(shard);
    ProblemList missing;
    std::vector<fs::path> files;
    for (const auto& shard : shardNames) {
        if (!fs::is_regular_file(dir / shard, ec))
            missing.add(StatusCode::NotFound, shard + " is listed in " + kIndexFile + " but not in the folder");
        else
            files.push_back(dir / shard);
    }
    if (!missing.empty()) return missing.toStatus(dir.string() + ": shards are missing (download them)");

    DSV2_ASSIGN_OR_RETURN(auto ckpt, openFiles(files));
    ckpt->m_indexed = true;
    ProblemList problems;
    for (const auto& [tensor, shard] : weightMap) {
        const auto it = ckpt->m_shardOf.find(tensor);
        const bool inShard = it != ckpt->m_shardOf.end() && ckpt->m_shards[it->second].path == dir / shard;
        if (!inShard)
            problems.add(StatusCode::InvalidData, kIndexFile + std::string(" puts '") + tensor + "' in " + shard +
                                                      ", which does not contain it");
    }
    if (!problems.empty()) return problems.toStatus(dir.string() + ": the shard index does not match the shards");
    return ckpt;
}

Status SafetensorsCheckpoint::prefetch(const ProgressCallback& progress, size_t chunkBytes) const {
    const size_t kChunk = std::max<size_t>(chunkBytes, 1);
    constexpr size_t kPage = 4096;
    const uint64_t total = fileBytes();
    uint64_t done = 0;
    if (progress && !progress(0, total)) return Status(StatusCode::Cancelled, "model load cancelled");
    for (const MappedFile& file : m_files) {
        const std::span<const std::byte> bytes = file.bytes();
        for (size_t begin = 0; begin < bytes.size(); begin += kChunk) {
            const size_t end = std::min(bytes.size(), begin + kChunk);
            adviseWillNeed(bytes.subspan(begin, end - begin));
            // Touch one byte per page so the chunk is resident when we report it done.
            volatile std::byte sink{};
            for (size_t at = begin; at < end; at += kPage) sink = bytes[at];
            (void)sink;
            done += end - begin;
            if (progress && !progress(done, total)) return Status(StatusCode::Cancelled, "model load cancelled");
        }
    }
    return Status::ok();
}

}  // namespace dsv2
