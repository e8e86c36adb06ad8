// C-style launchers of the graph smoothness CUDA kernels, called by the ATen glue. Pointers are
// device pointers of contiguous tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

struct GraphSmoothnessProblem {
  Dtype dtype;
  const void* features;     // [batch, M, C]
  const int64_t* edges;     // [2, E] int64 (row 0 neighbour j, row 1 centre i)
  const int64_t* incidence; // the packed per-node lists of sirenpose_loss._graph_ops
  const void* edge_weight;  // [E] or nullptr
  int64_t batch, M, C, E;
  int penalty;              // 0 squared, 1 norm
};

constexpr int kGraphSmoothnessSums = 2;  // (terms, edge weights of batch entry 0)

inline int64_t graph_smoothness_fwd_blocks(const GraphSmoothnessProblem& p) {
  return reduce_blocks(p.batch * p.E, p.C);
}

// none: terms [batch * E]; mean/sum: loss is 0-dim. denom: 1 double. An edge index outside
// [0, M) makes its term NaN (never read).
cudaError_t graph_smoothness_fwd(const GraphSmoothnessProblem& p, Reduce reduction, void* loss,
                                 void* terms, double* denom, double* scratch, int64_t blocks,
                                 cudaStream_t stream);

// Pass 1 writes each edge's factor at its place in the outgoing lists (factors: batch * E of
// float, double for float64); pass 2 gathers each (node, channel) over its incoming then
// outgoing edges, without atomics. grad: per term (none) or 1 element.
cudaError_t graph_smoothness_bwd(const GraphSmoothnessProblem& p, Reduce reduction,
                                 const void* grad, const double* denom, void* factors,
                                 void* grad_features, cudaStream_t stream);

}  // namespace cuda
}  // namespace sirenpose
