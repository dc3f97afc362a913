#include "cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/thread_pool.h"

namespace dsv2::cpu {

float dot(const float* a, const float* b, int64_t n) {
    // Eight independent partial sums: the compiler can keep them in vector lanes, and the error
    // grows with n/8 rather than n.
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
    float tail = 0.0f;
    for (; i < n; ++i) tail += a[i] * b[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

void rmsNorm(const float* x, const float* weight, int64_t n, float eps, float* out) {
    double sumSquares = 0.0;
    for (int64_t i = 0; i < n; ++i) sumSquares += static_cast<double>(x[i]) * x[i];
    const float meanSquare = static_cast<float>(sumSquares / static_cast<double>(n));
    const float inv = 1.0f / std::sqrt(meanSquare + eps);
    for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inv);
}

void softmaxInPlace(float* x, int64_t n) {
    if (n <= 0) return;
    const float maxValue = *std::max_element(x, x + n);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - maxValue);
        sum += x[i];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void linearRows(const TensorView& w, int64_t rowBegin, int64_t rows, const float* x, int64_t nTokens, float* y,
                ThreadPool* pool) {
    const int64_t in = w.dim(1);
    // Rows are widened a small block at a time and dotted with every token while the block is in
    // cache. The grain keeps tiny matrices on one thread, where waking workers would cost more.
    constexpr int64_t kBlockRows = 8;
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, in * nTokens));
    auto body = [&](int64_t begin, int64_t end) {
        std::vector<float> block(static_cast<size_t>(kBlockRows * in));  // (kBlockRows, in)
        for (int64_t r0 = begin; r0 < end; r0 += kBlockRows) {
            const int64_t nr = std::min(kBlockRows, end - r0);
            readRow(w, (rowBegin + r0) * in, nr * in, block.data());
            for (int64_t t = 0; t < nTokens; ++t) {
                const float* xt = x + t * in;
                float* yt = y + t * rows;
                for (int64_t r = 0; r < nr; ++r) yt[r0 + r] = dot(block.data() + r * in, xt, in);
            }
        }
    };
    if (pool)
        pool->parallelFor(rows, grain, body);
    else
        body(0, rows);
}

void linear(const TensorView& w, const float* x, int64_t nTokens, float* y, ThreadPool* pool) {
    linearRows(w, 0, w.dim(0), x, nTokens, y, pool);
}

void gatedMlp(const MlpWeights& w, const float* x, int64_t nTokens, float* y, ThreadPool* pool) {
    const int64_t inter = w.gateProj.dim(0);
    std::vector<float> gate(static_cast<size_t>(nTokens * inter));  // (T, inter)
    std::vector<float> up(static_cast<size_t>(nTokens * inter));    // (T, inter)
    linear(w.gateProj, x, nTokens, gate.data(), pool);
    linear(w.upProj, x, nTokens, up.data(), pool);
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = silu(gate[i]) * up[i];
    linear(w.downProj, gate.data(), nTokens, y, pool);
}

}  // namespace dsv2::cpu
