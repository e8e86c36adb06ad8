// Graph smoothness on CUDA: terms pen(w_e, ||f_j - f_i||^2). The per-item work is in
// graph_smoothness_items.cuh (host+device code, also run by the host emulation of the tests);
// this file instantiates it in the kernel shells of common/launch.cuh.
#include "common/launch.cuh"
#include "graph_smoothness/graph_smoothness_cuda.h"
#include "graph_smoothness/graph_smoothness_items.cuh"

namespace sirenpose {
namespace cuda {

cudaError_t graph_smoothness_fwd(const GraphSmoothnessProblem& p, Reduce reduction, void* loss,
                                 void* terms, double* denom, double* scratch, int64_t blocks,
                                 cudaStream_t stream) {
  return smooth::fwd(CudaExec{stream}, p, reduction, loss, terms, denom, scratch, blocks);
}

cudaError_t graph_smoothness_bwd(const GraphSmoothnessProblem& p, Reduce reduction,
                                 const void* grad, const double* denom, void* factors,
                                 void* grad_features, cudaStream_t stream) {
  return smooth::bwd(CudaExec{stream}, p, reduction, grad, denom, factors, grad_features);
}

}  // namespace cuda
}  // namespace sirenpose
