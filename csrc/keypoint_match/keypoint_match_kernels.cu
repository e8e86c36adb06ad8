// Keypoint match loss on CUDA: sum_n w_n ||pred_n - target_n||^2. The per-item work is in
// keypoint_match_items.cuh (host+device code, also run by the host emulation of the tests);
// this file instantiates it in the kernel shells of common/launch.cuh.
#include "common/launch.cuh"
#include "keypoint_match/keypoint_match_cuda.h"
#include "keypoint_match/keypoint_match_items.cuh"

namespace sirenpose {
namespace cuda {

cudaError_t keypoint_match_fwd(const KeypointMatchProblem& p, Reduce reduction, void* out,
                               double* denom, double* scratch, int64_t blocks,
                               cudaStream_t stream) {
  return kml::fwd(CudaExec{stream}, p, reduction, out, denom, scratch, blocks);
}

cudaError_t keypoint_match_bwd(const KeypointMatchProblem& p, Reduce reduction, const void* grad,
                               const double* denom, void* grad_pred, void* grad_target,
                               cudaStream_t stream) {
  return kml::bwd(CudaExec{stream}, p, reduction, grad, denom, grad_pred, grad_target);
}

}  // namespace cuda
}  // namespace sirenpose
