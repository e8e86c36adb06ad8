// C-style launchers of the spatio-temporal consistency CUDA kernels, called by the ATen glue.
// Pointers are device pointers of contiguous tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

struct SpatioTemporalProblem {
  Dtype dtype;
  const void* positions;  // [batch, T, M, D]
  const void* weight;     // [M] (weight_shared) or [batch * M]; nullptr when absent
  bool weight_shared;
  int64_t batch, T, M, D;
  int order;              // 1 (velocity) or 2 (acceleration)
  int64_t steps;          // terms along time: T - order, > 0 (the glue handles 0)
};

constexpr int kSpatioTemporalSums = 2;

// First-pass grid of the forward: one work item per (batch, Gaussian) column of T * D elements.
inline int64_t spatiotemporal_fwd_blocks(const SpatioTemporalProblem& p) {
  return reduce_blocks(p.batch * p.M, p.T * p.D);
}

// out: the terms [batch, steps, M] (none) or the 0-dim loss (mean/sum); denom: 1 double.
cudaError_t spatiotemporal_consistency_fwd(const SpatioTemporalProblem& p, Reduce reduction,
                                           void* out, double* denom, double* scratch,
                                           int64_t blocks, cudaStream_t stream);

// grad: [batch, steps, M] (none) or 1 element (mean/sum); grad_positions: [batch, T, M, D].
cudaError_t spatiotemporal_consistency_bwd(const SpatioTemporalProblem& p, Reduce reduction,
                                           const void* grad, const double* denom,
                                           void* grad_positions, cudaStream_t stream);

}  // namespace cuda
}  // namespace sirenpose
