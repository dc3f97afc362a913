// dsv2 bench (--model DIR | --random-weights CONFIG.json) [--backend cuda|cpu] --prompt-len N[,N2...]
//            --decode-tokens M [--json]
// For each prompt length (one load, one fresh session each): times one prefill of N seeded random
// tokens and M greedy decode steps on the backend directly (no tokenizer, no sampling), and prints
// prefill tok/s, decode tok/s at that context, time to first token, GPU memory in use and KV bytes
// per token. Each length runs once first as a warm-up (kernel loading, cuBLAS heuristics, CUDA
// graph capture), so the figures are the steady state a chat sees. Random weights give the real Lite/V2 shapes without
// the files; for those the CUDA memory plan is checked before any host memory is filled.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.h"
#include "core/backend.h"
#include "core/sampler.h"
#include "model/model_config.h"
#include "model/model_folder.h"
#include "model/random_weights.h"
#if defined(DSV2_HAS_CUDA_BACKEND)
#include <cuda_runtime.h>

#include <nvtx3/nvToolsExt.h>

#include "cuda/cuda_backend.h"
#include "cuda/memory_plan.h"
#endif

namespace dsv2::cli {
namespace {

struct BenchArgs {
    std::string model;
    std::string randomConfig;
    std::string backend = "cuda";
    std::vector<int64_t> promptLens{512};
    int64_t decodeTokens = 64;
    int64_t context = 0;
    int threads = 0;
    uint64_t seed = 1;
    std::vector<int> devices;  // several: one model across them (tensor + expert parallel)
    bool json = false;
};

// Random weights above this are pooled (RandomWeights::createPooled): DeepSeek-V2's 472 GB do not
// fit host memory, and filling them would take minutes.
constexpr uint64_t kPooledAbove = 64ull << 30;

using Clock = std::chrono::steady_clock;

// An NVTX range around a benchmark phase, so a profiler (nsys) can split kernels by phase.
class PhaseMark {
public:
    explicit PhaseMark([[maybe_unused]] const std::string& name) {
#if defined(DSV2_HAS_CUDA_BACKEND)
        nvtxRangePushA(name.c_str());
#endif
    }
    ~PhaseMark() {
#if defined(DSV2_HAS_CUDA_BACKEND)
        nvtxRangePop();
#endif
    }
    PhaseMark(const PhaseMark&) = delete;
    PhaseMark& operator=(const PhaseMark&) = delete;
};

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// The last row's argmax, as greedy generation picks it (the sampler's argmax: this is host time
// inside every measured decode step).
int32_t argmax(const std::vector<float>& logits, int64_t vocab) {
    return dsv2::argmax(std::span<const float>(logits).last(static_cast<size_t>(vocab)));
}

int runBench(const BenchArgs& a) {
    if (a.model.empty() == a.randomConfig.empty())
        return fail("give exactly one of --model DIR and --random-weights CONFIG.json");
    if (a.promptLens.empty() || *std::min_element(a.promptLens.begin(), a.promptLens.end()) < 1 || a.decodeTokens < 0)
        return fail("--prompt-len must be >= 1 and --decode-tokens >= 0");
    const int64_t longest = *std::max_element(a.promptLens.begin(), a.promptLens.end());
    const bool cuda = a.backend == "cuda";
#if !defined(DSV2_HAS_CUDA_BACKEND)
    if (cuda) return fail("this dsv2 was built without the CUDA backend (-DDSV2_CUDA=OFF); use --backend cpu");
#endif

    // The model: a folder (mapped, zero copy) or seeded random weights of a config's shapes.
    std::unique_ptr<ModelFolder> folder;
    std::unique_ptr<RandomWeights> random;
    ModelConfig config;
    const ModelWeights* weights = nullptr;
    bool pooled = false;
    const auto tLoad0 = Clock::now();
    if (!a.model.empty()) {
        auto f = ModelFolder::open(a.model);
        if (!f.isOk()) return fail(f.status().toString());
        folder = std::move(f).value();
        config = folder->config();
        weights = &folder->weights();
    } else {
        auto c = loadModelConfig(a.randomConfig);
        if (!c.isOk()) return fail(c.status().toString());
        config = *c;
#if defined(DSV2_HAS_CUDA_BACKEND)
        if (cuda && a.devices.size() <= 1) {  // refuse a model that cannot fit before filling tens of GB of host memory
            size_t freeBytes = 0, totalBytes = 0;
            if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) return fail("no usable GPU for --backend cuda");
            auto plan = cuda::planMemory(config, {}, a.context, static_cast<int64_t>(freeBytes),
                                         static_cast<int64_t>(totalBytes), "the GPU");
            if (!plan.isOk()) return fail(plan.status().toString());
        }
#endif
        pooled = RandomWeights::bytesFor(config, DType::BF16) > kPooledAbove;
        auto r = pooled ? RandomWeights::createPooled(config, DType::BF16, a.seed, 4ull << 30)
                        : RandomWeights::create(config, DType::BF16, a.seed);
        if (!r.isOk()) return fail(r.status().toString());
        random = std::move(r).value();
        weights = &random->weights();
    }
    const auto tLoad1 = Clock::now();

    BackendOptions options;
    options.threads = a.threads;
    options.maxContext = a.context > 0 ? a.context : 0;
    options.devices = a.devices;
    Result<std::unique_ptr<Backend>> backend = Status(StatusCode::Internal, "no backend");
    int64_t planned = 0;
#if defined(DSV2_HAS_CUDA_BACKEND)
    if (cuda) {
        cuda::MemoryPlan plan;
        cuda::CudaBackendExtras extras;
        extras.planOut = &plan;
        backend = cuda::createCudaBackendWithExtras(config, *weights, options, extras);
        planned = plan.neededBytes();
    }
#endif
    if (!cuda) backend = createBackend(BackendKind::Cpu, config, *weights, options);
    if (!backend.isOk()) return fail(backend.status().toString());
    const auto tBackend = Clock::now();
    const int64_t capacity = std::max<int64_t>(a.context, longest + a.decodeTokens);
    std::mt19937 rng(static_cast<uint32_t>(a.seed));
    std::uniform_int_distribution<int32_t> pick(0,
                                                static_cast<int32_t>(std::min<int64_t>(config.vocabSize, 100000)) - 1);

    // One scenario: a fresh session, the prompt's prefill, then greedy decode steps.
    struct Run {
        int64_t promptLen = 0, decodeTokens = 0;
        double prefill = 0, decode = 0;
        CacheStats cache;
    };
    auto runOne = [&](int64_t promptLen, int64_t decodeTokens, bool warmUp) -> Result<Run> {
        const std::string tag = warmUp ? "warm-up " : "";
        DSV2_ASSIGN_OR_RETURN(auto session, (*backend)->createSession(capacity));
        std::vector<int32_t> prompt(static_cast<size_t>(promptLen));
        for (auto& t : prompt) t = pick(rng);
        Run r;
        r.promptLen = promptLen;
        r.decodeTokens = decodeTokens;
        const auto t0 = Clock::now();
        int32_t next = 0;
        {
            PhaseMark mark(tag + "prefill " + std::to_string(promptLen));
            DSV2_ASSIGN_OR_RETURN(ForwardResult first,
                                  session->forward(prompt, false));  // last row's logits on the host
            next = argmax(first.logits, first.vocab);
        }
        const auto t1 = Clock::now();
        {
            PhaseMark mark(tag + "decode " + std::to_string(promptLen));
            for (int64_t i = 0; i < decodeTokens; ++i) {
                DSV2_ASSIGN_OR_RETURN(ForwardResult step, session->forward(std::span<const int32_t>(&next, 1), false));
                next = argmax(step.logits, step.vocab);
            }
        }
        const auto t2 = Clock::now();
        r.prefill = seconds(t0, t1);
        r.decode = seconds(t1, t2);
        r.cache = session->cacheStats();
        return r;
    };
    // Warm-up: every prompt length once (cuBLAS and CUDA load kernels per shape on first use).
    for (int64_t n : a.promptLens)
        if (auto warm = runOne(n, std::min<int64_t>(a.decodeTokens, 4), true); !warm.isOk())
            return fail(warm.status().toString());
    std::vector<Run> runs;
    for (int64_t n : a.promptLens) {
        auto r = runOne(n, a.decodeTokens, false);
        if (!r.isOk()) return fail(r.status().toString());
        runs.push_back(*r);
    }

    int64_t gpuInUse = -1;  // the fullest GPU
    nlohmann::json perGpu = nlohmann::json::array();
#if defined(DSV2_HAS_CUDA_BACKEND)
    if (cuda) {
        const std::vector<int> used = (*backend)->devices();
        for (int d : used) {
            const int64_t bytes = cuda::deviceMemoryInUse(d);
            perGpu.push_back({{"device", d}, {"in_use_bytes", bytes}});
            gpuInUse = std::max(gpuInUse, bytes);
        }
    }
#endif
    nlohmann::json j = {
        {"backend", (*backend)->description()},
        {"model", a.model.empty() ? "random weights, " + a.randomConfig : a.model},
        {"layers", config.numHiddenLayers},
        {"load_s", seconds(tLoad0, tLoad1)},
        {"backend_init_s", seconds(tLoad1, tBackend)},
        {"kv_bytes_per_token", runs.front().cache.bytesPerToken},
        {"gpu_memory_in_use_bytes", gpuInUse},
        {"gpu_memory_planned_bytes", planned},
        {"gpu_memory_per_device", perGpu},
        {"random_weights_pooled", pooled},
        {"runs", nlohmann::json::array()},
    };
    for (const Run& r : runs)
        j["runs"].push_back({
            {"prompt_tokens", r.promptLen},
            {"decode_tokens", r.decodeTokens},
            {"ttft_s", r.prefill},
            {"prefill_tok_s", static_cast<double>(r.promptLen) / r.prefill},
            {"decode_s", r.decode},
            {"decode_tok_s", r.decodeTokens > 0 ? static_cast<double>(r.decodeTokens) / r.decode : 0.0},
            {"kv_bytes_used", r.cache.bytesUsed},
        });
    if (a.json) {
        std::cout << j.dump(2) << '\n';
        return 0;
    }
    auto gib = [](int64_t b) {
        return b < 0 ? std::string("n/a") : std::to_string(static_cast<double>(b) / (1 << 30)) + " GiB";
    };
    std::printf("backend            %s\n", (*backend)->description().c_str());
    std::printf("model              %s (%lld layers)\n", j["model"].get<std::string>().c_str(),
                static_cast<long long>(config.numHiddenLayers));
    std::printf("load / init        %.2f s / %.2f s\n", seconds(tLoad0, tLoad1), seconds(tLoad1, tBackend));
    std::printf("KV cache           %lld bytes per token\n", static_cast<long long>(runs.front().cache.bytesPerToken));
    std::printf("GPU memory         %s in use (planned %s)\n", gib(gpuInUse).c_str(), gib(planned).c_str());
    std::printf("\n%8s %12s %12s %10s %12s\n", "prompt", "prefill tok/s", "TTFT ms", "decode", "decode tok/s");
    for (const Run& r : runs)
        std::printf("%8lld %12.1f %12.2f %10lld %12.2f\n", static_cast<long long>(r.promptLen),
                    static_cast<double>(r.promptLen) / r.prefill, r.prefill * 1e3,
                    static_cast<long long>(r.decodeTokens),
                    r.decodeTokens > 0 ? static_cast<double>(r.decodeTokens) / r.decode : 0.0);
    return 0;
}

void installBench(CLI::App& root, CliContext& ctx) {
    auto* cmd =
        root.add_subcommand("bench", "Time prefill and decode on a model folder or on random weights of a config");
    auto a = std::make_shared<BenchArgs>();
    cmd->add_option("-m,--model", a->model, "Model folder (hub layout)")->check(CLI::ExistingDirectory);
    cmd->add_option("--random-weights", a->randomConfig, "config.json whose shapes get seeded random bf16 weights")
        ->check(CLI::ExistingFile);
    cmd->add_option("--backend", a->backend, "cuda or cpu")
        ->check(CLI::IsMember({"cuda", "cpu"}))
        ->capture_default_str();
    cmd->add_option("--prompt-len", a->promptLens, "Prompt tokens (seeded random ids); a list runs one session each")
        ->delimiter(',')
        ->capture_default_str();
    cmd->add_option("--decode-tokens", a->decodeTokens, "Greedy decode steps after the prompt")->capture_default_str();
    cmd->add_option("--context", a->context, "KV cache / session capacity in tokens (0 = as the backend plans)");
    cmd->add_option("--threads", a->threads, "CPU threads for --backend cpu (0 = all cores)");
    cmd->add_option("--seed", a->seed, "Seed of the prompt and of random weights")->capture_default_str();
    cmd->add_option("--devices", a->devices,
                    "CUDA devices to spread the model over, e.g. 0,1,2,3 (default: device 0 alone)")
        ->delimiter(',');
    cmd->add_flag("--json", a->json, "Print one JSON object");
    cmd->callback([a, &ctx] { ctx.exitCode = runBench(*a); });
}

}  // namespace

DSV2_CLI_COMMAND(80, installBench);

}  // namespace dsv2::cli
