// dsv2 inspect-model DIR [--json] [--devices N [--device-memory GIB] [--attention tp|dp] [--context T]]:
// what a model folder holds and whether the engine can run it. Unlike ModelFolder::open, which stops
// at the first broken file, this checks each part on its own and prints everything it learned plus
// every problem found. With --devices, also the plan for N GPUs of one host (engine/parallel,
// docs/multi-gpu.md): expert placement, bytes moved per token, and the per-device memory plan or
// its refusal. It needs only config.json, so it works on a folder without weights too.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.h"
#include "model/model_folder.h"
#include "model/model_stats.h"
#include "model/safetensors_checkpoint.h"
#include "model/weight_binding.h"
#include "parallel/expert_placement.h"
#include "parallel/parallel_memory_plan.h"
#include "parallel/token_traffic.h"
#include "parallel/weight_sharding.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dsv2::cli {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string withCommas(uint64_t v) {
    // Built front to back (an insert into the string itself drew GCC 12's -Wrestrict false positive
    // in the Release build).
    const std::string digits = std::to_string(v);
    std::string out;
    out.reserve(digits.size() + digits.size() / 3);
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string humanBytes(uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

std::string billions(int64_t n) {
    char buf[32];
    if (n >= 1'000'000'000)
        std::snprintf(buf, sizeof buf, "%.2f B", static_cast<double>(n) / 1e9);
    else if (n >= 1'000'000)
        std::snprintf(buf, sizeof buf, "%.2f M", static_cast<double>(n) / 1e6);
    else
        std::snprintf(buf, sizeof buf, "%s", withCommas(static_cast<uint64_t>(n)).c_str());
    return buf;
}

std::string number(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

struct Inspection {
    fs::path dir;
    std::optional<ModelConfig> config;
    std::unique_ptr<SafetensorsCheckpoint> checkpoint;
    bool weightsBound = false;
    std::optional<int32_t> tokenizerSize;
    std::optional<bool> hasChatTemplate;
    std::optional<GenerationDefaults> generation;
    std::vector<std::string> problems;
};

std::string readText(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

Inspection inspect(const fs::path& dir) {
    Inspection r;
    r.dir = dir;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        r.problems.push_back(dir.string() + ": not a folder");
        return r;
    }
    auto config = loadModelConfig(dir / "config.json");
    if (config)
        r.config = *config;
    else
        r.problems.push_back(config.status().toString());

    auto checkpoint = SafetensorsCheckpoint::openFolder(dir);
    if (checkpoint)
        r.checkpoint = std::move(checkpoint).value();
    else
        r.problems.push_back(checkpoint.status().toString());

    if (r.config && r.checkpoint) {
        auto weights = bindModelWeights(*r.config, r.checkpoint->tensors(), dir.string());
        if (weights)
            r.weightsBound = true;
        else
            r.problems.push_back(weights.status().toString());
    }

    if (!fs::is_regular_file(dir / "tokenizer.json", ec)) {
        r.problems.push_back("NotFound: " + (dir / "tokenizer.json").string() + ": missing");
    } else {
        auto tokenizer = Tokenizer::fromFile(dir / "tokenizer.json");
        if (tokenizer) {
            r.tokenizerSize = (*tokenizer)->size();
            if (r.config && *r.tokenizerSize > r.config->vocabSize)
                r.problems.push_back("InvalidData: tokenizer.json has " + std::to_string(*r.tokenizerSize) +
                                     " tokens, more than vocab_size " + std::to_string(r.config->vocabSize));
        } else {
            r.problems.push_back(tokenizer.status().toString());
        }
    }
    if (fs::is_regular_file(dir / "tokenizer_config.json", ec)) {
        auto chatTemplate = ChatTemplate::fromTokenizerConfig(dir / "tokenizer_config.json");
        r.hasChatTemplate = chatTemplate.isOk();
        if (!chatTemplate && chatTemplate.status().code() != StatusCode::NotFound)
            r.problems.push_back(chatTemplate.status().toString());
    } else {
        r.hasChatTemplate = false;
    }
    if (fs::is_regular_file(dir / "generation_config.json", ec)) {
        auto generation =
            parseGenerationConfig(readText(dir / "generation_config.json"), (dir / "generation_config.json").string());
        if (generation)
            r.generation = *generation;
        else
            r.problems.push_back(generation.status().toString());
    }
    return r;
}

const char* topkName(TopkMethod m) { return m == TopkMethod::Greedy ? "greedy" : "group_limited_greedy"; }

Json configJson(const ModelConfig& c) {
    int64_t moeLayers = 0;
    for (int64_t l = 0; l < c.numHiddenLayers; ++l) moeLayers += c.isMoeLayer(l) ? 1 : 0;
    Json j = {{"architecture", c.architecture},
              {"model_type", c.modelType},
              {"vocab_size", c.vocabSize},
              {"hidden_size", c.hiddenSize},
              {"num_hidden_layers", c.numHiddenLayers},
              {"dense_layers", c.numHiddenLayers - moeLayers},
              {"moe_layers", moeLayers},
              {"num_attention_heads", c.numAttentionHeads},
              {"q_lora_rank", c.qLoraRank ? Json(*c.qLoraRank) : Json(nullptr)},
              {"kv_lora_rank", c.kvLoraRank},
              {"qk_nope_head_dim", c.qkNopeHeadDim},
              {"qk_rope_head_dim", c.qkRopeHeadDim},
              {"v_head_dim", c.vHeadDim},
              {"intermediate_size", c.intermediateSize},
              {"moe_intermediate_size", c.moeIntermediateSize},
              {"n_routed_experts", c.nRoutedExperts},
              {"n_shared_experts", c.nSharedExperts},
              {"num_experts_per_tok", c.numExpertsPerTok},
              {"topk_method", topkName(c.topkMethod)},
              {"n_group", c.nGroup},
              {"topk_group", c.topkGroup},
              {"routed_scaling_factor", c.routedScalingFactor},
              {"norm_topk_prob", c.normTopkProb},
              {"max_position_embeddings", c.maxPositionEmbeddings},
              {"rope_theta", c.ropeTheta},
              {"softmax_scale", c.softmaxScale()}};
    if (c.ropeScaling.yarn)
        j["rope_scaling"] = {{"type", "yarn"},
                             {"factor", c.ropeScaling.factor},
                             {"mscale", c.ropeScaling.mscale},
                             {"mscale_all_dim", c.ropeScaling.mscaleAllDim},
                             {"original_max_position_embeddings", c.ropeScaling.originalMaxPositionEmbeddings},
                             {"beta_fast", c.ropeScaling.betaFast},
                             {"beta_slow", c.ropeScaling.betaSlow}};
    else
        j["rope_scaling"] = nullptr;
    return j;
}

struct DtypeTally {
    size_t tensors = 0;
    uint64_t bytes = 0;
};

std::map<std::string, DtypeTally> dtypeTally(const SafetensorsCheckpoint& ckpt) {
    std::map<std::string, DtypeTally> tally;
    for (const auto& [name, t] : ckpt.tensors()) {
        auto& d = tally[dtypeName(t.dtype)];
        ++d.tensors;
        d.bytes += t.nbytes;
    }
    return tally;
}

Json toJson(const Inspection& r) {
    Json j = {{"path", r.dir.string()}, {"ok", r.problems.empty()}, {"problems", r.problems}};
    if (r.config) {
        const ModelConfig& c = *r.config;
        j["config"] = configJson(c);
        const ParameterCounts p = countParameters(c);
        j["parameters"] = {{"total", p.total},
                           {"active_per_token", p.activePerToken},
                           {"active_with_embedding", p.activeWithEmbedding},
                           {"embedding", p.embedding},
                           {"attention", p.attention},
                           {"dense_mlp", p.denseMlp},
                           {"router", p.router},
                           {"routed_experts", p.routedExperts},
                           {"shared_experts", p.sharedExperts},
                           {"norms", p.norms},
                           {"lm_head", p.lmHead}};
        j["kv_bytes_per_token"] = {{"mla", mlaKvBytesPerToken(c)}, {"mha", mhaKvBytesPerToken(c)}};
    }
    if (r.checkpoint) {
        Json files = Json::array();
        for (const auto& s : r.checkpoint->shards())
            files.push_back({{"file", s.path.filename().string()}, {"bytes", s.fileBytes}, {"tensors", s.tensorCount}});
        Json dtypes = Json::object();
        for (const auto& [name, d] : dtypeTally(*r.checkpoint))
            dtypes[name] = {{"tensors", d.tensors}, {"bytes", d.bytes}};
        j["weights"] = {{"files", files},
                        {"file_bytes", r.checkpoint->fileBytes()},
                        {"sharded", r.checkpoint->sharded()},
                        {"tensors", r.checkpoint->tensors().size()},
                        {"dtypes", dtypes},
                        {"bound", r.weightsBound}};
    }
    j["tokenizer"] = {{"size", r.tokenizerSize ? Json(*r.tokenizerSize) : Json(nullptr)},
                      {"chat_template", r.hasChatTemplate.value_or(false)}};
    if (r.generation) {
        Json g = Json::object();
        if (r.generation->temperature) g["temperature"] = *r.generation->temperature;
        if (r.generation->topP) g["top_p"] = *r.generation->topP;
        if (r.generation->topK) g["top_k"] = *r.generation->topK;
        if (r.generation->repetitionPenalty) g["repetition_penalty"] = *r.generation->repetitionPenalty;
        if (r.generation->maxNewTokens) g["max_new_tokens"] = *r.generation->maxNewTokens;
        if (r.generation->doSample) g["do_sample"] = *r.generation->doSample;
        j["generation"] = g;
    }
    return j;
}

void printText(const Inspection& r, std::ostream& out) {
    out << "model folder   " << r.dir.string() << '\n';
    if (r.config) {
        const ModelConfig& c = *r.config;
        int64_t moeLayers = 0;
        for (int64_t l = 0; l < c.numHiddenLayers; ++l) moeLayers += c.isMoeLayer(l) ? 1 : 0;
        out << "architecture   " << c.architecture << " (" << c.modelType << ")\n"
            << "  shape        vocab " << c.vocabSize << ", hidden " << c.hiddenSize << ", " << c.numHiddenLayers
            << " layers (" << c.numHiddenLayers - moeLayers << " dense + " << moeLayers << " MoE), "
            << c.numAttentionHeads << " heads\n"
            << "  attention    MLA: "
            << (c.qLoraRank ? "q_lora_rank " + std::to_string(*c.qLoraRank) : "q_proj (no q_lora)") << ", kv_lora_rank "
            << c.kvLoraRank << ", qk " << c.qkNopeHeadDim << " nope + " << c.qkRopeHeadDim << " rope, v " << c.vHeadDim
            << ", softmax scale " << number(c.softmaxScale()) << '\n';
        if (c.nRoutedExperts > 0)
            out << "  experts      " << c.nRoutedExperts << " routed (" << c.numExpertsPerTok << " per token, "
                << topkName(c.topkMethod) << ", n_group " << c.nGroup << ", topk_group " << c.topkGroup << ", scaling "
                << number(c.routedScalingFactor) << ", norm_topk_prob " << (c.normTopkProb ? "true" : "false") << ") + "
                << c.nSharedExperts << " shared, width " << c.moeIntermediateSize << '\n';
        if (moeLayers < c.numHiddenLayers) out << "  dense MLP    width " << c.intermediateSize << '\n';
        out << "  rope         theta " << number(c.ropeTheta);
        if (c.ropeScaling.yarn)
            out << ", yarn factor " << number(c.ropeScaling.factor) << " (original "
                << c.ropeScaling.originalMaxPositionEmbeddings << ", beta " << number(c.ropeScaling.betaFast) << "/"
                << number(c.ropeScaling.betaSlow) << ", mscale " << number(c.ropeScaling.mscale) << "/"
                << number(c.ropeScaling.mscaleAllDim) << ")";
        out << ", max positions " << c.maxPositionEmbeddings << '\n';

        const ParameterCounts p = countParameters(c);
        out << "parameters     " << billions(p.total) << " total, " << billions(p.activePerToken)
            << " active per token (" << billions(p.activeWithEmbedding) << " with the embedding table)\n"
            << "  by part      embedding " << billions(p.embedding) << ", attention " << billions(p.attention)
            << ", dense " << billions(p.denseMlp) << ", routed experts " << billions(p.routedExperts) << ", shared "
            << billions(p.sharedExperts) << ", router " << billions(p.router) << ", lm_head " << billions(p.lmHead)
            << '\n';
        const int64_t mla = mlaKvBytesPerToken(c);
        const int64_t mha = mhaKvBytesPerToken(c);
        char ratio[32];
        std::snprintf(ratio, sizeof ratio, "%.1f", static_cast<double>(mha) / static_cast<double>(mla));
        out << "KV per token   MLA " << withCommas(static_cast<uint64_t>(mla)) << " B (bf16, "
            << humanBytes(static_cast<uint64_t>(mla)) << "); plain MHA would need "
            << withCommas(static_cast<uint64_t>(mha)) << " B (" << humanBytes(static_cast<uint64_t>(mha)) << ", "
            << ratio << "x)\n";
    }
    if (r.checkpoint) {
        out << "weights        " << r.checkpoint->shards().size() << " file(s), "
            << withCommas(r.checkpoint->fileBytes()) << " bytes (" << humanBytes(r.checkpoint->fileBytes()) << "), "
            << r.checkpoint->tensors().size() << " tensors" << (r.weightsBound ? ", all bound" : "") << '\n';
        constexpr size_t kMaxFiles = 8;
        for (size_t i = 0; i < r.checkpoint->shards().size() && i < kMaxFiles; ++i) {
            const auto& s = r.checkpoint->shards()[i];
            out << "  " << s.path.filename().string() << "  " << humanBytes(s.fileBytes) << ", " << s.tensorCount
                << " tensors\n";
        }
        if (r.checkpoint->shards().size() > kMaxFiles)
            out << "  ... and " << r.checkpoint->shards().size() - kMaxFiles << " more files\n";
        out << "  dtypes      ";
        for (const auto& [name, d] : dtypeTally(*r.checkpoint))
            out << ' ' << name << " (" << d.tensors << " tensors, " << humanBytes(d.bytes) << ")";
        out << '\n';
    }
    if (r.tokenizerSize)
        out << "tokenizer      " << *r.tokenizerSize << " tokens";
    else
        out << "tokenizer      not loaded";
    out << "; chat template " << (r.hasChatTemplate.value_or(false) ? "yes" : "no") << '\n';
    if (r.generation) {
        out << "generation    ";
        const auto& g = *r.generation;
        if (g.temperature) out << " temperature " << number(*g.temperature);
        if (g.topP) out << " top_p " << number(*g.topP);
        if (g.topK) out << " top_k " << *g.topK;
        if (g.repetitionPenalty) out << " repetition_penalty " << number(*g.repetitionPenalty);
        if (g.maxNewTokens) out << " max_new_tokens " << *g.maxNewTokens;
        if (g.doSample) out << " do_sample " << (*g.doSample ? "true" : "false");
        out << '\n';
    }
    if (r.problems.empty()) {
        out << "problems       none\n";
    } else {
        out << "problems       " << r.problems.size() << '\n';
        for (const auto& p : r.problems) out << "  - " << p << '\n';
    }
}

// --- the multi-GPU section (--devices) ---

struct ParallelOptions {
    int devices = 0;               // 0: no section
    double deviceMemoryGiB = 139;  // an H200 as the device tool reports it ("about 139 GiB")
    std::string attention = "tp";
    int64_t context = 0;  // 0: automatic, as the single-GPU plan
};

struct ParallelReport {
    std::string error;  // placement impossible or no config
    parallel::AttentionSplit split = parallel::AttentionSplit::Tensor;
    parallel::ExpertPlacement placement;
    parallel::TokenTraffic tp, dp;
    std::vector<int64_t> tpReads, dpReads;
    Result<parallel::ParallelMemoryPlan> plan = Status(StatusCode::Internal, "not planned");
    int64_t deviceBytes = 0;
};

ParallelReport planParallel(const Inspection& r, const ParallelOptions& o) {
    ParallelReport p;
    p.deviceBytes = static_cast<int64_t>(o.deviceMemoryGiB * 1024.0 * 1024.0 * 1024.0);
    if (!r.config) {
        p.error = "no usable config.json: nothing to plan";
        return p;
    }
    const ModelConfig& c = *r.config;
    p.split = *parallel::parseAttentionSplit(o.attention);  // CLI11 checked the value
    auto placement = parallel::placeExperts(c, o.devices);
    if (!placement) {
        p.error = placement.status().toString();
        return p;
    }
    p.placement = *placement;
    p.tp = parallel::tokenTraffic(c, p.placement, parallel::AttentionSplit::Tensor);
    p.dp = parallel::tokenTraffic(c, p.placement, parallel::AttentionSplit::Data);
    p.tpReads = parallel::batchOneReadBytes(c, p.placement, parallel::AttentionSplit::Tensor);
    p.dpReads = parallel::batchOneReadBytes(c, p.placement, parallel::AttentionSplit::Data);
    const std::vector<parallel::DeviceMemory> devices(static_cast<size_t>(o.devices),
                                                      parallel::DeviceMemory{"GPU", p.deviceBytes, p.deviceBytes});
    p.plan = parallel::planParallelMemory(c, p.placement, p.split, {}, o.context, devices);
    return p;
}

// "0-39" or "0-19, 40-59": ascending ids as ranges.
std::string idRanges(const std::vector<int32_t>& ids) {
    std::string out;
    for (size_t i = 0; i < ids.size();) {
        size_t j = i;
        while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
        if (!out.empty()) out += ", ";
        out += std::to_string(ids[i]) + (j > i ? "-" + std::to_string(ids[j]) : "");
        i = j + 1;
    }
    return out.empty() ? "none" : out;
}

std::string gigabytes(int64_t bytes) {
    char buf[32];
    // decimal units, as bandwidths are quoted (TB/s); MB for toy models
    if (bytes >= 100'000'000)
        std::snprintf(buf, sizeof buf, "%.2f GB", static_cast<double>(bytes) / 1e9);
    else
        std::snprintf(buf, sizeof buf, "%.2f MB", static_cast<double>(bytes) / 1e6);
    return buf;
}

Json trafficJson(const parallel::TokenTraffic& t) {
    return {{"link_bytes_worst", t.linkBytesWorst},
            {"link_bytes_mean", t.linkBytesMean},
            {"collectives", t.collectives},
            {"derivation", t.derivation}};
}

Json parallelJson(const ParallelReport& p, const ParallelOptions& o) {
    Json j = {{"devices", o.devices}, {"device_memory_bytes", p.deviceBytes}};
    if (!p.error.empty()) {
        j["error"] = p.error;
        return j;
    }
    j["attention"] = parallel::attentionSplitName(p.split);
    Json devices = Json::array();
    for (int d = 0; d < p.placement.nDevices; ++d) {
        Json dev = {{"experts", p.placement.deviceExperts[static_cast<size_t>(d)]}};
        if (p.placement.groupAligned) dev["groups"] = p.placement.deviceGroups[static_cast<size_t>(d)];
        devices.push_back(dev);
    }
    j["placement"] = {{"group_aligned", p.placement.groupAligned},
                      {"max_devices_per_token", p.placement.maxDevicesPerToken},
                      {"mean_devices_per_token", p.placement.meanDevicesPerToken},
                      {"devices", devices}};
    j["bytes_per_token"] = {{"tensor_parallel", trafficJson(p.tp)}, {"data_parallel", trafficJson(p.dp)}};
    j["batch1_read_bytes"] = {{"tensor_parallel", p.tpReads}, {"data_parallel", p.dpReads}};
    if (!p.plan) {
        j["plan"] = {{"fits", false}, {"refusal", p.plan.status().message()}};
        return j;
    }
    Json planDevices = Json::array();
    for (const auto& d : p.plan->devices)
        planDevices.push_back({{"heads", d.heads},
                               {"experts_per_layer", d.expertCount},
                               {"weights_replicated", d.weights.replicated},
                               {"weights_sharded", d.weights.sharded},
                               {"weights_experts", d.weights.experts},
                               {"kv_cache", d.cacheBytes},
                               {"workspace", d.workspaceBytes},
                               {"reserve", d.reserveBytes},
                               {"needed", d.neededBytes()},
                               {"free", d.freeBytes}});
    j["plan"] = {{"fits", true},
                 {"cache_tokens", p.plan->cacheTokens},
                 {"kv_bytes_per_token_per_device", p.plan->cacheBytesPerToken},
                 {"devices", planDevices}};
    return j;
}

void printParallel(const ParallelReport& p, const ParallelOptions& o, std::ostream& out) {
    out << "devices        " << o.devices << " x " << parallel::formatGiB(p.deviceBytes) << " (--device-memory)";
    if (p.error.empty()) out << ", " << parallel::attentionSplitName(p.split) << " attention";
    out << '\n';
    if (!p.error.empty()) {
        out << "  not planned  " << p.error << '\n';
        return;
    }
    out << "  experts      " << p.placement.summary() << '\n';
    for (int d = 0; d < p.placement.nDevices; ++d) {
        out << "    device " << d << "   experts " << idRanges(p.placement.deviceExperts[static_cast<size_t>(d)]);
        if (p.placement.groupAligned)
            out << " (groups " << idRanges(p.placement.deviceGroups[static_cast<size_t>(d)]) << ")";
        out << '\n';
    }
    auto traffic = [&](const char* label, const parallel::TokenTraffic& t) {
        out << "  " << label << withCommas(static_cast<uint64_t>(t.linkBytesWorst)) << " B per token";
        if (t.linkBytesMean < t.linkBytesWorst)
            out << " at most, " << withCommas(static_cast<uint64_t>(t.linkBytesMean + 0.5)) << " B on average";
        out << ", " << t.collectives << " collectives: " << t.derivation << '\n';
    };
    traffic("TP traffic   ", p.tp);
    traffic("DP traffic   ", p.dp);
    out << "  batch 1      the busiest device reads "
        << gigabytes(*std::max_element(p.tpReads.begin(), p.tpReads.end()))
        << " of weights per token (tensor-parallel), "
        << gigabytes(*std::max_element(p.dpReads.begin(), p.dpReads.end())) << " (data-parallel)\n";
    if (!p.plan) {
        out << "  plan         REFUSED: " << p.plan.status().message() << '\n';
        return;
    }
    out << "  plan         KV cache " << p.plan->cacheTokens << " tokens x "
        << withCommas(static_cast<uint64_t>(p.plan->cacheBytesPerToken)) << " B on every device\n";
    for (const auto& d : p.plan->devices)
        out << "    device " << d.device << "   " << d.heads << " heads, " << d.describe(p.plan->moeLayers) << " of "
            << parallel::formatGiB(d.freeBytes) << " free\n";
}

void installInspectModel(CLI::App& root, CliContext& ctx) {
    auto* cmd = root.add_subcommand("inspect-model",
                                    "Show a model folder's architecture, parameters, weights, KV bytes per token and "
                                    "every problem found");
    auto dir = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("dir", *dir, "Model folder (config.json, *.safetensors, tokenizer.json)")->required();
    cmd->add_flag("--json", *json, "Print one JSON object instead of text");
    auto par = std::make_shared<ParallelOptions>();
    cmd->add_option("--devices", par->devices,
                    "Also plan the model across N GPUs of one host: expert placement, bytes per token, memory per GPU")
        ->check(CLI::Range(1, 1024));
    cmd->add_option("--device-memory", par->deviceMemoryGiB, "Free memory of each GPU in GiB (with --devices)")
        ->check(CLI::Range(0.5, 1.0e6))
        ->capture_default_str();
    cmd->add_option("--attention", par->attention,
                    "Attention, shared experts, dense MLP and lm_head: tp (tensor-parallel) or dp (data-parallel)")
        ->check(CLI::IsMember({"tp", "dp"}))
        ->capture_default_str();
    cmd->add_option("--context", par->context, "KV cache tokens per GPU for the plan (default: the longest that fits)")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
    cmd->callback([&ctx, dir, json, par] {
        const Inspection r = inspect(*dir);
        std::optional<ParallelReport> parallelReport;
        if (par->devices > 0) parallelReport = planParallel(r, *par);
        if (*json) {
            Json j = toJson(r);
            if (parallelReport) j["parallel"] = parallelJson(*parallelReport, *par);
            std::cout << j.dump(2) << '\n';
        } else {
            printText(r, std::cout);
            if (parallelReport) printParallel(*parallelReport, *par, std::cout);
        }
        ctx.exitCode = r.problems.empty() ? 0 : 1;
    });
}

}  // namespace

DSV2_CLI_COMMAND(40, installInspectModel);

}  // namespace dsv2::cli
