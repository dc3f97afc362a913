#pragma once
// Tensor comparator for the GPU kernel tests (FlashMLA's style): same shape, NaN/Inf in the same
// places, every element within atol + rtol·|want|, cosine similarity above a floor; the report
// names the worst element with its multi-dimensional index.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace dsv2::test {

struct Tolerance {
    double atol = 1e-2;
    double rtol = 1e-2;
    double minCosine = 0.9999;
};

struct CompareResult {
    bool ok = false;
    double maxAbsErr = 0.0;
    double maxRelErr = 0.0;  // at the worst element (by excess over its tolerance)
    double cosine = 0.0;
    int64_t worst = -1;
    int64_t failures = 0;
    std::string report;  // one line, printed on failure
};

inline std::string indexString(int64_t flat, const std::vector<int64_t>& shape) {
    // Appends only: gcc 12's -Wrestrict misfires on "[" + std::to_string(...) here.
    if (shape.empty()) {
        std::string s = "[";
        s += std::to_string(flat);
        s += "]";
        return s;
    }
    std::vector<int64_t> idx(shape.size());
    for (size_t d = shape.size(); d-- > 0;) {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    std::string s = "[";
    for (size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
    return s + "]";
}

inline CompareResult compareTensors(const std::string& name, std::span<const float> got, std::span<const float> want,
                                    const std::vector<int64_t>& shape, const Tolerance& tol = {}) {
    CompareResult r;
    std::ostringstream os;
    int64_t expected = 1;
    for (int64_t d : shape) expected *= d;
    if (got.size() != want.size() || (!shape.empty() && static_cast<int64_t>(want.size()) != expected)) {
        os << name << ": size mismatch, got " << got.size() << " want " << want.size() << " shape numel " << expected;
        r.report = os.str();
        return r;
    }
    double dotGw = 0.0, dotGg = 0.0, dotWw = 0.0, worstExcess = -1.0;
    int64_t nanMismatch = 0, firstNanMismatch = -1;
    for (size_t i = 0; i < got.size(); ++i) {
        const double g = got[i], w = want[i];
        const bool gf = std::isfinite(g), wf = std::isfinite(w);
        if (gf != wf || (!gf && !(std::isnan(g) && std::isnan(w)) && g != w)) {
            if (firstNanMismatch < 0) firstNanMismatch = static_cast<int64_t>(i);
            ++nanMismatch;
            continue;
        }
        if (!gf) continue;  // same non-finite value in both
        dotGw += g * w;
        dotGg += g * g;
        dotWw += w * w;
        const double err = std::fabs(g - w);
        const double allowed = tol.atol + tol.rtol * std::fabs(w);
        r.maxAbsErr = std::max(r.maxAbsErr, err);
        if (err > allowed) ++r.failures;
        if (err - allowed > worstExcess) {
            worstExcess = err - allowed;
            r.worst = static_cast<int64_t>(i);
        }
    }
    r.cosine = (dotGg == 0.0 && dotWw == 0.0) ? 1.0 : dotGw / std::sqrt(std::max(dotGg * dotWw, 1e-300));
    if (r.worst >= 0)
        r.maxRelErr = std::fabs(got[r.worst] - want[r.worst]) / std::max(std::fabs(double(want[r.worst])), 1e-30);
    r.ok = nanMismatch == 0 && r.failures == 0 && r.cosine >= tol.minCosine;
    os << name << ": " << (r.ok ? "ok" : "MISMATCH") << ", " << got.size() << " elements, max |err| " << r.maxAbsErr
       << ", cosine " << r.cosine << ", " << r.failures << " outside atol " << tol.atol << " + rtol " << tol.rtol;
    if (nanMismatch)
        os << ", " << nanMismatch << " NaN/Inf mismatches (first at " << indexString(firstNanMismatch, shape)
           << ": got " << got[firstNanMismatch] << " want " << want[firstNanMismatch] << ")";
    if (r.worst >= 0)
        os << "; worst at " << indexString(r.worst, shape) << ": got " << got[r.worst] << " want " << want[r.worst];
    r.report = os.str();
    return r;
}

}  // namespace dsv2::test

// CHECK_TENSORS(name, got, want, shape, tol): a doctest CHECK that prints the report on failure and,
// with DSV2_TEST_VERBOSE set, on success too.
#define CHECK_TENSORS(name, got, want, shape, tol)                                                            \
    do {                                                                                                      \
        const auto dsv2_cmp_ = ::dsv2::test::compareTensors((name), (got), (want), (shape), (tol));           \
        if (!dsv2_cmp_.ok || std::getenv("DSV2_TEST_VERBOSE")) std::printf("%s\n", dsv2_cmp_.report.c_str()); \
        CHECK_MESSAGE(dsv2_cmp_.ok, dsv2_cmp_.report);                                                        \
    } while (0)
