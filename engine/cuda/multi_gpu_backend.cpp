#include "cuda/multi_gpu_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda/cuda_backend_impl.h"
#include "cuda/nccl_comm.h"
#include "dsv2/log.h"
#include "parallel/expert_placement.h"
#include "parallel/rank_slice.h"

namespace dsv2::cuda {
namespace {

// One thread per GPU, each with its device current, running the same job on all GPUs at once: a
// forward pass blocks on its GPU's stream, and NCCL collectives need every rank inside them.
class RankThreads {
public:
    explicit RankThreads(const std::vector<int>& devices) : m_results(devices.size(), Status::ok()) {
        for (size_t r = 0; r < devices.size(); ++r)
            m_threads.emplace_back([this, r, device = devices[r]] { loop(static_cast<int>(r), device); });
    }
    ~RankThreads() {
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_stop = true;
        }
        m_wake.notify_all();
        for (auto& t : m_threads) t.join();
    }
    RankThreads(const RankThreads&) = delete;
    RankThreads& operator=(const RankThreads&) = delete;

    // Runs job(rank) on every rank's thread; returns when all are done, with their results.
    std::vector<Status> run(const std::function<Status(int)>& job) {
        std::unique_lock<std::mutex> lock(m_mutex);
        m_job = &job;
        std::fill(m_results.begin(), m_results.end(), Status::ok());
        m_pending = static_cast<int>(m_threads.size());
        ++m_generation;
        m_wake.notify_all();
        m_done.wait(lock, [&] { return m_pending == 0; });
        m_job = nullptr;
        return m_results;
    }

private:
    void loop(int rank, int device) {
        const bool deviceOk = cudaSetDevice(device) == cudaSuccess;
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lock(m_mutex);
        for (;;) {
            m_wake.wait(lock, [&] { return m_stop || m_generation != seen; });
            if (m_stop) return;
            seen = m_generation;
            const std::function<Status(int)>* job = m_job;
            lock.unlock();
            Status st = deviceOk
                            ? (*job)(rank)
                            : Status(StatusCode::Unavailable, "cannot select CUDA device " + std::to_string(device));
            lock.lock();
            m_results[static_cast<size_t>(rank)] = std::move(st);
            if (--m_pending == 0) m_done.notify_all();
        }
    }

    std::mutex m_mutex;
    std::condition_variable m_wake, m_done;
    const std::function<Status(int)>* m_job = nullptr;
    std::vector<Status> m_results;
    int m_pending = 0;
    uint64_t m_generation = 0;
    bool m_stop = false;
    std::vector<std::thread> m_threads;
};

// The first failure in rank order, naming its GPU.
Status firstError(const std::vector<Status>& results, const std::vector<int>& devices) {
    for (size_t r = 0; r < results.size(); ++r)
        if (!results[r].isOk())
            return results[r].code() == StatusCode::Cancelled
                       ? results[r]
                       : results[r].withContext("GPU " + std::to_string(devices[r]));
    return Status::ok();
}

class MultiGpuBackend;

class MultiGpuSession final : public BackendSession {
public:
    MultiGpuSession(MultiGpuBackend& backend, std::vector<LatentSequence> seqs, int64_t capacity)
        : m_backend(backend), m_seqs(std::move(seqs)), m_capacity(capacity) {}
    ~MultiGpuSession() override;
    Result<ForwardResult> forward(std::span<const int32_t> tokens, bool wantAllLogits) override;
    Status truncate(int64_t length) override;
    int64_t length() const override { return m_seqs.front().length; }
    int64_t capacity() const override { return m_capacity; }
    CacheStats cacheStats() const override;

private:
    MultiGpuBackend& m_backend;
    std::vector<LatentSequence> m_seqs;  // one per GPU: the latent cache is whole on every GPU
    int64_t m_capacity;
};

class MultiGpuBackend final : public Backend {
public:
    MultiGpuBackend(const ModelConfig& config, const BackendOptions& options)
        : m_config(config), m_options(options), m_devices(options.devices) {}
    ~MultiGpuBackend() override {
        // Each GPU's backend (graphs, stream, cuBLAS, buffers) is freed on its own thread, with its
        // device current, and before the communicators it uses.
        if (m_threads && !m_ranks.empty())
            m_threads->run([this](int r) {
                m_ranks[static_cast<size_t>(r)].reset();
                return Status::ok();
            });
        m_ranks.clear();
        m_nccl.reset();
    }

    Status init(const ModelWeights& weights, const CudaBackendExtras& extras);
    BackendKind kind() const override { return BackendKind::Cuda; }
    std::string description() const override { return m_description; }
    std::vector<int> devices() const override { return m_devices; }
    Result<std::unique_ptr<BackendSession>> createSession(int64_t maxContext) override;

    const ModelConfig& config() const { return m_config; }
    const std::vector<int>& deviceList() const { return m_devices; }
    std::vector<std::unique_ptr<CudaBackend>>& ranks() { return m_ranks; }
    RankThreads& threads() { return *m_threads; }
    std::mutex& mutex() { return m_mutex; }

private:
    const ModelConfig& m_config;
    BackendOptions m_options;
    std::vector<int> m_devices;
    std::string m_description;
    std::vector<parallel::RankSlice> m_slices;
    std::vector<std::unique_ptr<ModelConfig>> m_rankConfigs;  // what each CudaBackend refers to
    std::unique_ptr<RankThreads> m_threads;
    std::unique_ptr<NcclGroup> m_nccl;
    std::vector<std::unique_ptr<CudaBackend>> m_ranks;
    std::mutex m_mutex;  // one forward at a time
};

Status checkDevices(const std::vector<int>& devices) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0)
        return Status(StatusCode::Unavailable, std::string("no usable NVIDIA GPU for the CUDA backend: ") +
                                                   (err != cudaSuccess ? cudaGetErrorString(err) : "none found"));
    std::vector<int> seen;
    for (int d : devices) {
        if (d < 0 || d >= count)
            return Status(StatusCode::InvalidArgument,
                          "CUDA device " + std::to_string(d) + " does not exist (" + std::to_string(count) + " found)");
        if (std::find(seen.begin(), seen.end(), d) != seen.end())
            return Status(StatusCode::InvalidArgument, "CUDA device " + std::to_string(d) + " is listed twice");
        seen.push_back(d);
    }
    return Status::ok();
}

Status MultiGpuBackend::init(const ModelWeights& weights, const CudaBackendExtras& extras) {
    const int n = static_cast<int>(m_devices.size());
    DSV2_RETURN_IF_ERROR(checkDevices(m_devices));
    DSV2_ASSIGN_OR_RETURN(parallel::ExpertPlacement placement, parallel::placeExperts(m_config, n));
    DSV2_ASSIGN_OR_RETURN(m_slices, parallel::planRankSlices(m_config, placement));
    DSV2_ASSIGN_OR_RETURN(m_nccl, NcclGroup::create(m_devices));
    for (const parallel::RankSlice& s : m_slices)
        m_rankConfigs.push_back(std::make_unique<ModelConfig>(parallel::rankConfig(m_config, s)));
    m_threads = std::make_unique<RankThreads>(m_devices);
    m_ranks.resize(static_cast<size_t>(n));

    // The GPUs upload their slices at once; progress is the sum over all of them.
    std::mutex progressMutex;
    std::vector<uint64_t> done(static_cast<size_t>(n), 0), total(static_cast<size_t>(n), 0);
    std::atomic<bool> cancelled{false};
    std::vector<MemoryPlan> plans(static_cast<size_t>(n));
    const auto results = m_threads->run([&](int r) -> Status {
        const auto i = static_cast<size_t>(r);
        BackendOptions o = m_options;
        o.device = m_devices[i];
        o.devices.clear();
        CudaBackendExtras x;
        x.shape = extras.shape;
        x.planOut = &plans[i];
        x.model = &m_config;
        x.slice = &m_slices[i];
        x.nccl = m_nccl.get();
        x.loadProgress = [&, i](uint64_t d, uint64_t t) {
            if (cancelled) return false;
            std::lock_guard<std::mutex> lock(progressMutex);
            done[i] = d;
            total[i] = t;
            uint64_t sumDone = 0, sumTotal = 0;
            for (size_t k = 0; k < done.size(); ++k) {
                sumDone += done[k];
                sumTotal += total[k];
            }
            if (extras.loadProgress && !extras.loadProgress(sumDone, sumTotal)) cancelled = true;
            return !cancelled;
        };
        auto backend = std::make_unique<CudaBackend>(*m_rankConfigs[i], o);
        DSV2_RETURN_IF_ERROR(backend->init(weights, x));
        m_ranks[i] = std::move(backend);
        return Status::ok();
    });
    if (extras.planOut) *extras.planOut = plans.front();
    if (cancelled) return Status(StatusCode::Cancelled, "model load cancelled");
    DSV2_RETURN_IF_ERROR(firstError(results, m_devices));

    std::string gpus;
    for (int d : m_devices) {
        if (!gpus.empty()) gpus += ',';
        gpus += std::to_string(d);
    }
    m_description = "cuda bf16, " + std::to_string(n) + " × " + m_ranks.front()->deviceName() + " (GPUs " + gpus +
                    "; heads and shared experts split, routed experts " + placement.summary() + "; " +
                    m_nccl->version() + ")";
    for (int r = 0; r < n; ++r)
        logInfo("multi-gpu: GPU " + std::to_string(m_devices[static_cast<size_t>(r)]) + ": " +
                std::to_string(m_slices[static_cast<size_t>(r)].headCount) + " heads, " +
                std::to_string(m_slices[static_cast<size_t>(r)].expertCount(m_config.nRoutedExperts)) +
                " routed experts, plan " + plans[static_cast<size_t>(r)].describe());
    return Status::ok();
}

Result<std::unique_ptr<BackendSession>> MultiGpuBackend::createSession(int64_t maxContext) {
    // The same capacity on every GPU: the smallest any of them would give by default.
    int64_t capacity = maxContext > 0 ? maxContext : m_options.maxContext;
    if (capacity <= 0) {
        capacity = m_config.maxPositionEmbeddings;
        for (auto& r : m_ranks) capacity = std::min(capacity, r->cacheTokens());
    }
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<LatentSequence> seqs;
    for (auto& r : m_ranks) {
        std::lock_guard<std::mutex> rankLock(r->mutex());
        if (capacity > r->cacheTokens())
            return Status(StatusCode::OutOfRange, "a context of " + std::to_string(capacity) +
                                                      " tokens exceeds the KV cache of GPU " +
                                                      std::to_string(m_devices[seqs.size()]) + " (" +
                                                      std::to_string(r->cacheTokens()) + " tokens)");
        DSV2_RETURN_IF_ERROR(r->selectDevice());
        auto seq = r->cache().newSequence(capacity);
        if (!seq.isOk()) {
            for (size_t k = 0; k < seqs.size(); ++k) m_ranks[k]->cache().release(seqs[k]);
            return seq.status();
        }
        seqs.push_back(std::move(seq).value());
    }
    return std::unique_ptr<BackendSession>(std::make_unique<MultiGpuSession>(*this, std::move(seqs), capacity));
}

MultiGpuSession::~MultiGpuSession() {
    std::lock_guard<std::mutex> lock(m_backend.mutex());
    auto& ranks = m_backend.ranks();
    for (size_t r = 0; r < ranks.size(); ++r) {
        std::lock_guard<std::mutex> rankLock(ranks[r]->mutex());
        (void)ranks[r]->selectDevice();
        ranks[r]->cache().release(m_seqs[r]);
    }
}

Result<ForwardResult> MultiGpuSession::forward(std::span<const int32_t> tokens, bool wantAllLogits) {
    const ModelConfig& c = m_backend.config();
    DSV2_RETURN_IF_ERROR(validateForwardInput(tokens, c.vocabSize, length(), m_capacity));
    std::lock_guard<std::mutex> lock(m_backend.mutex());
    auto& ranks = m_backend.ranks();
    const int64_t start = length();
    const auto T = static_cast<int64_t>(tokens.size());
    auto rollback = [&] {
        for (size_t r = 0; r < ranks.size(); ++r) ranks[r]->cache().truncate(m_seqs[r], start);
    };
    // Cache blocks on every GPU before any GPU starts: a GPU failing alone later would leave the
    // others waiting inside a collective.
    for (size_t r = 0; r < ranks.size(); ++r) {
        Status st = ranks[r]->cache().reserve(m_seqs[r], start + T);
        if (!st.isOk()) {
            rollback();
            return st.withContext("GPU " + std::to_string(m_backend.deviceList()[r]));
        }
    }

    ForwardResult result;
    result.nTokens = T;
    result.nRows = wantAllLogits ? T : 1;
    result.vocab = c.vocabSize;
    result.routing.moeLayers = ranks.front()->moeLayers();
    result.routing.topK = static_cast<int32_t>(c.numExpertsPerTok);
    result.routing.nTokens = T;
    const size_t routingSize =
        static_cast<size_t>(T) * result.routing.moeLayers.size() * static_cast<size_t>(c.numExpertsPerTok);
    try {
        result.routing.expertIds.assign(routingSize, 0);
        result.routing.weights.assign(routingSize, 0.0f);
        result.logits.resize(static_cast<size_t>(result.nRows * c.vocabSize));
    } catch (const std::bad_alloc&) {
        rollback();
        return Status(StatusCode::ResourceExhausted, "out of host memory for the logits");
    }

    // Every GPU writes its own vocabulary columns of result.logits; the first records the routing
    // (all GPUs route alike: whole routers, identical inputs after each all-reduce).
    const auto results = m_backend.threads().run([&](int r) -> Status {
        const auto i = static_cast<size_t>(r);
        CudaBackend& rank = *ranks[i];
        std::lock_guard<std::mutex> rankLock(rank.mutex());
        DSV2_RETURN_IF_ERROR(rank.cache().syncTable(m_seqs[i], rank.stream()));
        ForwardRouting none;  // empty arrays: the routing is recorded once, by the first GPU
        return rank.runChunks(m_seqs[i], tokens, wantAllLogits, result.logits.data(), r == 0 ? result.routing : none);
    });
    Status st = firstError(results, m_backend.deviceList());
    if (!st.isOk()) {
        rollback();
        for (auto& r : ranks) {
            (void)r->selectDevice();
            (void)cudaGetLastError();
        }
        return st.withContext("multi-GPU forward");
    }
    return result;
}

Status MultiGpuSession::truncate(int64_t length) {
    if (length < 0 || length > this->length())
        return {StatusCode::InvalidArgument, "cannot truncate a session of " + std::to_string(this->length()) +
                                                 " tokens to " + std::to_string(length)};
    std::lock_guard<std::mutex> lock(m_backend.mutex());
    auto& ranks = m_backend.ranks();
    for (size_t r = 0; r < ranks.size(); ++r) {
        std::lock_guard<std::mutex> rankLock(ranks[r]->mutex());
        ranks[r]->cache().truncate(m_seqs[r], length);
    }
    return Status::ok();
}

CacheStats MultiGpuSession::cacheStats() const {
    return makeCacheStats(m_backend.config(), "bf16", 2, length(),
                          static_cast<int64_t>(m_seqs.front().blocks.size()) * kCacheBlockTokens, m_capacity);
}

}  // namespace

Result<std::unique_ptr<Backend>> createMultiGpuBackend(const ModelConfig& config, const ModelWeights& weights,
                                                       const BackendOptions& options, const CudaBackendExtras& extras) {
    if (options.devices.size() < 2)
        return Status(StatusCode::InvalidArgument, "a multi-GPU backend needs at least two devices");
    if (extras.residualTap) return Status(StatusCode::Unsupported, "the residual tap (tests) runs on one GPU only");
    auto backend = std::make_unique<MultiGpuBackend>(config, options);
    DSV2_RETURN_IF_ERROR(backend->init(weights, extras).withContext("multi-GPU backend"));
    return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace dsv2::cuda
