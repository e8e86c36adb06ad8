// C-style launchers of the rigidity trio's CUDA kernels, called by the ATen glue. Pointers are
// device pointers of contiguous tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

struct RigidityProblem {
  Dtype dtype;
  const void* positions;    // [batch, T, M, 3] or nullptr (rotation term alone)
  const void* quaternions;  // [batch, T, M, 4] or nullptr (isometry alone)
  const int64_t* edges;     // [2, E] (row 0 neighbour j, row 1 centre i)
  const int64_t* incidence; // the packed per-node lists of sirenpose_loss._graph_ops
  const void* rest_length;  // [E] or nullptr
  const void* edge_weight;  // [E] or nullptr
  int64_t batch, T, M, E;
  int terms, penalty;       // term bits (1 rigid, 2 rotation, 4 isometry); 0 squared, 1 norm
  double lambdas[3];
};

constexpr int kRigiditySums = 4;  // (rigid, rotation, isometry, edge weights)

inline int64_t rigidity_fwd_blocks(const RigidityProblem& p) {
  return reduce_blocks(p.batch * p.T * p.E, 16);
}

// Values per node and frame pair of the relative-rotation scratch (float; double for float64).
constexpr int64_t kRigidityRel = 16;

// rel: batch * (T-1) * M * kRigidityRel scratch. none: terms[k] get [batch, steps_k, E] (or
// nullptr for terms off); mean/sum: loss and terms[k] are 0-dim. denom: 3 doubles.
cudaError_t rigidity_fwd(const RigidityProblem& p, Reduce reduction, void* loss, void* const terms[3],
                         double* denom, void* rel, double* scratch, int64_t blocks,
                         cudaStream_t stream);

// grads[k]: per-term gradients (none, nullptr for terms off) or the one reduced gradient in
// grads[0] (mean/sum, the lambdas and denominators applied on the device). factors: batch * T *
// E * 3 scratch. Each (batch entry, node) thread walks the frames and gathers its incoming then
// outgoing edges in list order; no atomics. A null output is not written.
cudaError_t rigidity_bwd(const RigidityProblem& p, Reduce reduction, const void* const grads[3],
                         const double* denom, void* rel, void* factors, void* grad_positions,
                         void* grad_quaternions, cudaStream_t stream);

}  // namespace cuda
}  // namespace sirenpose
