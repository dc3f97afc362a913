#include "model/random_weights.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <new>
#include <numbers>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "model/weight_binding.h"

namespace dsv2 {
namespace {

constexpr std::align_val_t kAlignment{256};

// splitmix64: tiny, fast, and good enough for test weights.
struct SplitMix64 {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
};

bool isNorm(const std::string& name) { return name == "model.norm.weight" || name.ends_with("layernorm.weight"); }

void store(DType dtype, std::byte* out, int64_t i, float value) {
    switch (dtype) {
    case DType::BF16: {
        const uint16_t bits = floatToBf16(value);
        std::memcpy(out + 2 * i, &bits, 2);
        return;
    }
    case DType::F16: {
        const uint16_t bits = floatToF16(value);
        std::memcpy(out + 2 * i, &bits, 2);
        return;
    }
    default: std::memcpy(out + 4 * i, &value, 4); return;
    }
}

// Tensor k of the list gets its own stream, so the fill is the same for any thread count.
void fill(const TensorView& t, size_t index, uint64_t seed, float stddev) {
    auto* out = const_cast<std::byte*>(t.data);  // the arena is ours and writable
    const int64_t n = t.numel();
    if (isNorm(t.name)) {
        for (int64_t i = 0; i < n; ++i) store(t.dtype, out, i, 1.0f);
        return;
    }
    SplitMix64 rng{seed ^ (0xd1b54a32d192ed03ull * (index + 1))};
    for (int64_t i = 0; i < n; i += 2) {  // Box–Muller: two normals per two uniforms
        const double r = std::sqrt(-2.0 * std::log(rng.uniform())) * stddev;
        const double a = 2.0 * std::numbers::pi * rng.uniform();
        store(t.dtype, out, i, static_cast<float>(r * std::cos(a)));
        if (i + 1 < n) store(t.dtype, out, i + 1, static_cast<float>(r * std::sin(a)));
    }
}

// Fills every view (its own stream: index k), on up to 32 threads.
void fillAll(const std::vector<const TensorView*>& views, uint64_t seed, float stddev) {
    const unsigned threads = std::max(1u, std::min(std::thread::hardware_concurrency(), 32u));
    std::atomic<size_t> next{0};
    const auto worker = [&] {
        for (size_t k = next++; k < views.size(); k = next++) fill(*views[k], k, seed, stddev);
    };
    std::vector<std::thread> pool;
    try {
        for (unsigned i = 1; i < threads; ++i) pool.emplace_back(worker);
    } catch (const std::system_error&) {
        // Fewer threads is only slower: the fill does not depend on who fills which tensor.
    }
    worker();
    for (auto& th : pool) th.join();
}

Status checkDtype(DType dtype) {
    if (dtypeComputable(dtype)) return Status::ok();
    return Status(StatusCode::InvalidArgument,
                  std::string("random weights: dtype ") + dtypeName(dtype) + " is not BF16, F16 or F32");
}

}  // namespace

void RandomWeights::ArenaDeleter::operator()(std::byte* p) const { ::operator delete[](p, kAlignment); }

RandomWeights::~RandomWeights() = default;

Result<std::unique_ptr<RandomWeights>> RandomWeights::create(const ModelConfig& config, DType dtype, uint64_t seed,
                                                             float stddev) {
    DSV2_RETURN_IF_ERROR(checkDtype(dtype));
    std::unique_ptr<RandomWeights> rw(new RandomWeights());
    rw->m_config = config;
    const std::vector<ExpectedTensor> expected = expectedTensors(config);

    const uint64_t align = static_cast<uint64_t>(kAlignment);
    std::vector<uint64_t> offsets;
    offsets.reserve(expected.size());
    uint64_t total = 0;
    for (const auto& e : expected) {
        uint64_t numel = 1;
        for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
        offsets.push_back(total);
        total += (numel * dtypeSize(dtype) + align - 1) / align * align;
    }
    try {
        rw->m_arena.reset(static_cast<std::byte*>(::operator new[](std::max<uint64_t>(total, 1), kAlignment)));
    } catch (const std::bad_alloc&) {
        return Status(StatusCode::ResourceExhausted,
                      "random weights: cannot allocate " + std::to_string(total >> 20) + " MiB of host memory");
    }
    rw->m_bytes = total;

    std::vector<const TensorView*> views;
    views.reserve(expected.size());
    for (size_t k = 0; k < expected.size(); ++k) {
        TensorView t;
        t.name = expected[k].name;
        t.dtype = dtype;
        t.shape = expected[k].shape;
        t.data = rw->m_arena.get() + offsets[k];
        t.nbytes = static_cast<size_t>(t.numel()) * dtypeSize(dtype);
        views.push_back(&rw->m_tensors.emplace(t.name, std::move(t)).first->second);
    }

    fillAll(views, seed, stddev);

    DSV2_ASSIGN_OR_RETURN(rw->m_weights, bindModelWeights(config, rw->m_tensors, "random weights"));
    return rw;
}

uint64_t RandomWeights::bytesFor(const ModelConfig& config, DType dtype) {
    const uint64_t align = static_cast<uint64_t>(kAlignment);
    uint64_t total = 0;
    for (const auto& e : expectedTensors(config)) {
        uint64_t numel = 1;
        for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
        total += (numel * dtypeSize(dtype) + align - 1) / align * align;
    }
    return total;
}

Result<std::unique_ptr<RandomWeights>> RandomWeights::createPooled(const ModelConfig& config, DType dtype,
                                                                   uint64_t seed, uint64_t poolBytes, float stddev) {
    DSV2_RETURN_IF_ERROR(checkDtype(dtype));
    std::unique_ptr<RandomWeights> rw(new RandomWeights());
    rw->m_config = config;
    const std::vector<ExpectedTensor> expected = expectedTensors(config);
    const uint64_t align = static_cast<uint64_t>(kAlignment);
    uint64_t largest = 0, normBytes = 0;
    for (const auto& e : expected) {
        uint64_t numel = 1;
        for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
        const uint64_t bytes = numel * dtypeSize(dtype);
        largest = std::max(largest, bytes);
        if (isNorm(e.name)) normBytes = std::max(normBytes, bytes);
    }
    const uint64_t pool = (std::max(poolBytes, 2 * largest) + align - 1) / align * align;
    const uint64_t ones = (normBytes + align - 1) / align * align;
    try {
        rw->m_arena.reset(static_cast<std::byte*>(::operator new[](pool + ones, kAlignment)));
    } catch (const std::bad_alloc&) {
        return Status(StatusCode::ResourceExhausted,
                      "random weights: cannot allocate " + std::to_string((pool + ones) >> 20) + " MiB of host memory");
    }
    rw->m_bytes = pool + ones;

    // The pool is filled as tensors of 64 MiB each (in parallel), then the ones for the norms.
    constexpr uint64_t kPiece = 64ull << 20;
    const uint64_t elt = dtypeSize(dtype);
    std::vector<TensorView> pieces;
    for (uint64_t off = 0; off < pool; off += kPiece) {
        TensorView t;
        t.name = "pool";
        t.dtype = dtype;
        t.shape = {static_cast<int64_t>(std::min(kPiece, pool - off) / elt)};
        t.data = rw->m_arena.get() + off;
        pieces.push_back(std::move(t));
    }
    TensorView onesView;
    onesView.name = "model.norm.weight";  // isNorm: filled with 1
    onesView.dtype = dtype;
    onesView.shape = {static_cast<int64_t>(normBytes / elt)};
    onesView.data = rw->m_arena.get() + pool;
    pieces.push_back(onesView);
    std::vector<const TensorView*> pieceViews;
    for (const TensorView& t : pieces) pieceViews.push_back(&t);
    fillAll(pieceViews, seed, stddev);

    SplitMix64 rng{seed ^ 0x5851f42d4c957f2dull};
    for (const auto& e : expected) {
        TensorView t;
        t.name = e.name;
        t.dtype = dtype;
        t.shape = e.shape;
        t.nbytes = static_cast<size_t>(t.numel()) * elt;
        const uint64_t slots = (pool - t.nbytes) / align + 1;  // where a window of this size fits
        t.data = isNorm(e.name) ? rw->m_arena.get() + pool : rw->m_arena.get() + (rng.next() % slots) * align;
        rw->m_tensors.emplace(t.name, std::move(t));
    }
    DSV2_ASSIGN_OR_RETURN(rw->m_weights, bindModelWeights(config, rw->m_tensors, "random weights"));
    return rw;
}

}  // namespace dsv2
