// The rigidity trio on CUDA (local rigidity, rotation similarity, isometry). The per-item work
// is in rigidity_items.cuh (host+device code, also run by the host emulation of the tests); this
// file instantiates it in the kernel shells of common/launch.cuh.
#include "common/launch.cuh"
#include "rigidity/rigidity_cuda.h"
#include "rigidity/rigidity_items.cuh"

namespace sirenpose {
namespace cuda {

cudaError_t rigidity_fwd(const RigidityProblem& p, Reduce reduction, void* loss, void* const terms[3],
                         double* denom, void* rel, double* scratch, int64_t blocks,
                         cudaStream_t stream) {
  return trio::fwd(CudaExec{stream}, p, reduction, loss, terms, denom, rel, scratch, blocks);
}

cudaError_t rigidity_bwd(const RigidityProblem& p, Reduce reduction, const void* const grads[3],
                         const double* denom, void* rel, void* factors, void* grad_positions,
                         void* grad_quaternions, cudaStream_t stream) {
  return trio::bwd(CudaExec{stream}, p, reduction, grads, denom, rel, factors, grad_positions,
                   grad_quaternions);
}

}  // namespace cuda
}  // namespace sirenpose
