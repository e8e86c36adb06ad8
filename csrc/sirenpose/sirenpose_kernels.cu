// SirenPose loss on CUDA. The per-item work is in sirenpose_items.cuh (host+device code, also
// run by the host emulation of the tests); this file instantiates it in the kernel shells of
// common/launch.cuh.
#include "common/launch.cuh"
#include "sirenpose/sirenpose_cuda.h"
#include "sirenpose/sirenpose_items.cuh"

namespace sirenpose {
namespace cuda {

cudaError_t sirenpose_fwd(const SirenPoseProblem& p, Reduce reduction, void* loss, void* pos,
                          void* geo, double* denom, double* scratch, int64_t blocks,
                          cudaStream_t stream) {
  return siren::fwd(CudaExec{stream}, p, reduction, loss, pos, geo, denom, scratch, blocks);
}

cudaError_t sirenpose_bwd(const SirenPoseProblem& p, Reduce reduction, const void* grad_pos,
                          const void* grad_geo, const double* denom, const int64_t* incidence_ptr,
                          const int64_t* incidence_slot, void* grad_pred, void* grad_target,
                          cudaStream_t stream) {
  return siren::bwd(CudaExec{stream}, p, reduction, grad_pos, grad_geo, denom, incidence_ptr,
                    incidence_slot, grad_pred, grad_target);
}

}  // namespace cuda
}  // namespace sirenpose
