// ARAP on CUDA: terms w_e ||(x_j - x_i) - R_i (X_j - X_i)||^2 with each centre's best rotation.
// The per-item work is in arap_items.cuh (host+device code, also run by the host emulation of
// the tests); this file instantiates it in the kernel shells of common/launch.cuh.
#include "arap/arap_cuda.h"
#include "arap/arap_items.cuh"
#include "common/launch.cuh"

namespace sirenpose {
namespace cuda {

cudaError_t arap_fwd(const ArapProblem& p, Reduce reduction, void* loss, void* terms, double* state,
                     double* scratch, int64_t blocks, cudaStream_t stream) {
  return arap::fwd(CudaExec{stream}, p, reduction, loss, terms, state, scratch, blocks);
}

cudaError_t arap_bwd(const ArapProblem& p, Reduce reduction, const void* grad, const double* state,
                     void* factors, void* grad_positions, cudaStream_t stream) {
  return arap::bwd(CudaExec{stream}, p, reduction, grad, state, factors, grad_positions);
}

}  // namespace cuda
}  // namespace sirenpose
