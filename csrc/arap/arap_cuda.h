// C-style launchers of the ARAP CUDA kernels, called by the ATen glue. Pointers are device
// pointers of contiguous tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

struct ArapProblem {
  Dtype dtype;
  const void* positions;    // [batch, T, M, 3]
  const void* rest;         // [M, 3] (rest_stride 0), [batch, M, 3], or positions (frame 0)
  int64_t rest_stride;      // elements between batch entries of rest
  const int64_t* edges;     // [2, E]
  const int64_t* incidence; // the packed per-node lists of sirenpose_loss._graph_ops
  const void* edge_weight;  // [E] or nullptr
  int64_t batch, T, M, E;
};

constexpr int kArapSums = 2;  // (terms, edge weights)

inline int64_t arap_fwd_blocks(const ArapProblem& p) { return reduce_blocks(p.batch * p.T * p.E, 16); }

// state: 1 + batch * T * M * 9 doubles (the mean's denominator, then the rotations, which the
// forward writes). none: terms [batch, T, E]; mean/sum: loss 0-dim.
cudaError_t arap_fwd(const ArapProblem& p, Reduce reduction, void* loss, void* terms, double* state,
                     double* scratch, int64_t blocks, cudaStream_t stream);

// factors: batch * T * E scratch (float; double for float64). grad: per term or 1 element.
cudaError_t arap_bwd(const ArapProblem& p, Reduce reduction, const void* grad, const double* state,
                     void* factors, void* grad_positions, cudaStream_t stream);

}  // namespace cuda
}  // namespace sirenpose
