// Spatio-temporal consistency loss on CUDA: sum over (tau, i) of w_i ||Delta^order P[tau, i]||^2.
// The per-item work is in spatiotemporal_consistency_items.cuh (host+device code, also run by
// the host emulation of the tests); this file instantiates it in the kernel shells of
// common/launch.cuh.
#include "common/launch.cuh"
#include "spatiotemporal_consistency/spatiotemporal_consistency_cuda.h"
#include "spatiotemporal_consistency/spatiotemporal_consistency_items.cuh"

namespace sirenpose {
namespace cuda {

cudaError_t spatiotemporal_consistency_fwd(const SpatioTemporalProblem& p, Reduce reduction,
                                           void* out, double* denom, double* scratch,
                                           int64_t blocks, cudaStream_t stream) {
  return scl::fwd(CudaExec{stream}, p, reduction, out, denom, scratch, blocks);
}

cudaError_t spatiotemporal_consistency_bwd(const SpatioTemporalProblem& p, Reduce reduction,
                                           const void* grad, const double* denom,
                                           void* grad_positions, cudaStream_t stream) {
  return scl::bwd(CudaExec{stream}, p, reduction, grad, denom, grad_positions);
}

}  // namespace cuda
}  // namespace sirenpose
