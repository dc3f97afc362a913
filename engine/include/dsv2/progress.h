#pragma once
// Progress of a long step (model load): bytes done of a total. Returning false asks the step to
// stop; it then fails with StatusCode::Cancelled and leaves nothing half-built behind.

#include <cstdint>
#include <functional>

namespace dsv2 {

using ProgressCallback = std::function<bool(uint64_t done, uint64_t total)>;

}  // namespace dsv2
