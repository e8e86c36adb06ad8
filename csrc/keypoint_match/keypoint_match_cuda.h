// C-style launchers of the keypoint match CUDA kernels (keypoint_match_kernels.cu), called by the
// ATen glue (keypoint_match_cuda.cpp). Pointers are device pointers of contiguous tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

struct KeypointMatchProblem {
  Dtype dtype;
  const void* pred;     // [rows, D]
  const void* target;   // [rows, D]
  const void* weight;   // [K] (weight_shared) or [rows]; nullptr when absent
  bool weight_shared;
  int64_t rows;         // batch * K
  int64_t K;
  int64_t D;
};

// First-pass grid of the forward; the caller allocates 2 * blocks doubles of scratch when > 1.
inline int64_t keypoint_match_fwd_blocks(const KeypointMatchProblem& p) {
  return reduce_blocks(p.rows, p.D);
}
constexpr int kKeypointMatchSums = 2;

// out: the per-row terms [rows] (none) or the 0-dim loss (mean/sum); denom: 1 double.
cudaError_t keypoint_match_fwd(const KeypointMatchProblem& p, Reduce reduction, void* out,
                               double* denom, double* scratch, int64_t blocks,
                               cudaStream_t stream);

// grad: [rows] (none) or 1 element (mean/sum); denom: the forward's. A null gradient output is
// not computed.
cudaError_t keypoint_match_bwd(const KeypointMatchProblem& p, Reduce reduction, const void* grad,
                               const double* denom, void* grad_pred, void* grad_target,
                               cudaStream_t stream);

}  // namespace cuda
}  // namespace sirenpose
