// Fixed-grid two-pass scalar reductions, with no atomics and no host sync: every block of the
// first pass writes its NV totals to a scratch buffer, then one block adds them in block order
// and calls the loss's finisher, which writes the outputs. A one-block first pass finishes by
// itself (tiny inputs then cost one launch).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/block_reduce.cuh"
#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

// End of a first-pass kernel; every thread of the block must call it. partials holds
// NV * gridDim.x doubles (unused when the grid has one block).
template <int NV, typename Finish>
__device__ __forceinline__ void finish_block(const Sums<NV>& local, double* partials,
                                             const Finish& finish) {
  const Sums<NV> total = block_sum(local);
  if (threadIdx.x != 0) return;
  if (gridDim.x == 1) {
    finish(total);
    return;
  }
#pragma unroll
  for (int k = 0; k < NV; ++k) partials[k * gridDim.x + blockIdx.x] = total.v[k];
}

template <int NV, typename Finish>
__global__ void __launch_bounds__(kThreads) final_pass_kernel(const double* partials,
                                                              int64_t blocks, Finish finish) {
  Sums<NV> s;
  for (int64_t b = threadIdx.x; b < blocks; b += blockDim.x) {
#pragma unroll
    for (int k = 0; k < NV; ++k) s.v[k] += partials[k * blocks + b];
  }
  s = block_sum(s);
  if (threadIdx.x == 0) finish(s);
}

// Second pass, on the same stream as the first; nothing to do for a one-block first pass.
template <int NV, typename Finish>
void launch_final_pass(const double* partials, int64_t blocks, const Finish& finish,
                       cudaStream_t stream) {
  if (blocks > 1) final_pass_kernel<NV, Finish><<<1, kThreads, 0, stream>>>(partials, blocks, finish);
}

}  // namespace cuda
}  // namespace sirenpose
