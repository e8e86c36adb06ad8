// C-style launchers of the SirenPose CUDA kernels, called by the ATen glue. Pointers are device
// pointers of contiguous tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

struct SirenPoseProblem {
  Dtype dtype;
  IndexType index;          // dtype of edge_index
  const void* pred;         // [batch, K, D]
  const void* target;       // [batch, K, D]
  const void* edge_index;   // [2, E]; values outside [0, K) poison the result with NaN
  const void* weight;       // [K] (weight_shared) or [batch * K]; nullptr when absent
  bool weight_shared;
  const void* edge_weight;  // [E]; nullptr when absent
  int64_t batch, K, D, E;
  double omega0, lambda_geo;
  bool with_pos;
};

constexpr int kSirenPoseSums = 4;  // (pos terms, keypoint weights, geo terms, edge weights)

// First-pass grid of the forward: one work item per keypoint row (with_pos) and per edge.
inline int64_t sirenpose_fwd_blocks(const SirenPoseProblem& p) {
  return reduce_blocks((p.with_pos ? p.batch * p.K : 0) + p.batch * p.E, p.D);
}

// none: pos gets the keypoint terms [batch * K] (with_pos; else nullptr), geo the edge terms
// [batch * E], loss is unused. mean/sum: loss, pos and geo are 0-dim. denom: 2 doubles.
cudaError_t sirenpose_fwd(const SirenPoseProblem& p, Reduce reduction, void* loss, void* pos,
                          void* geo, double* denom, double* scratch, int64_t blocks,
                          cudaStream_t stream);

// Gathers each keypoint's gradient over its incident edges in the fixed order of the CSR
// (incidence_ptr [K + 1], incidence_slot [2E], slot = 2 e + role, strictly increasing within a
// node), no atomics; one thread per keypoint and all its coordinates. grad_pos /
// grad_geo: per-term ([batch * K] / [batch * E], none) or 1 element (mean/sum). A null gradient
// output is not computed. An inconsistent CSR or edge index poisons the keypoint with NaN.
cudaError_t sirenpose_bwd(const SirenPoseProblem& p, Reduce reduction, const void* grad_pos,
                          const void* grad_geo, const double* denom, const int64_t* incidence_ptr,
                          const int64_t* incidence_slot, void* grad_pred, void* grad_target,
                          cudaStream_t stream);

}  // namespace cuda
}  // namespace sirenpose
