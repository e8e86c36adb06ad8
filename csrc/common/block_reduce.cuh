// Deterministic block-wide sums of NV doubles: a fixed shuffle tree inside each warp, then the
// warps' results in warp order. The order depends only on blockDim, never on timing.
#pragma once

#include <cuda_runtime.h>

#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

template <int NV>
struct Sums {
  double v[NV];
  __host__ __device__ Sums() {
    for (int k = 0; k < NV; ++k) v[k] = 0.0;
  }
};

template <int NV>
__device__ __forceinline__ void warp_sum(Sums<NV>& s) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
#pragma unroll
    for (int k = 0; k < NV; ++k) s.v[k] += __shfl_down_sync(0xffffffffu, s.v[k], offset);
  }
}

// Returns the block's total in thread 0 (other threads get partial values). Every thread of the
// block must call it; blockDim.x must be kThreads.
template <int NV>
__device__ __forceinline__ Sums<NV> block_sum(Sums<NV> s) {
  constexpr int kWarps = kThreads / 32;
  __shared__ double warp_totals[NV][kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  warp_sum(s);
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < NV; ++k) warp_totals[k][warp] = s.v[k];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int k = 0; k < NV; ++k) s.v[k] = lane < kWarps ? warp_totals[k][lane] : 0.0;
    warp_sum(s);
  }
  return s;
}

}  // namespace cuda
}  // namespace sirenpose
