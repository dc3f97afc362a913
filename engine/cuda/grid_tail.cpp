#include "cuda/grid_tail.h"

#include <string>

namespace dsv2::cuda {

Status checkGridTail(const GridTail& t, int outputRows) {
    if (t.prologue.n_tokens != 0 && !t.prologueActive())
        return Status(StatusCode::InvalidArgument, "grid tail: the prologue runs for one token only");
    if (!t.active()) return Status::ok();
    if (!t.counter) return Status(StatusCode::InvalidArgument, "grid tail: no counter");
    if (t.normActive()) {
        if (!t.delta || !t.norm_weight || !t.x_out || t.n <= 0)
            return Status(StatusCode::InvalidArgument, "grid tail: the norm needs delta, a weight, x_out and n > 0");
        if (t.n != outputRows)
            return Status(StatusCode::InvalidArgument, "grid tail: the norm covers " + std::to_string(t.n) +
                                                           " values but the kernel writes " +
                                                           std::to_string(outputRows));
    }
    if (t.prologueActive()) return checkAttentionPrologue(t.prologue);
    return Status::ok();
}

}  // namespace dsv2::cuda
