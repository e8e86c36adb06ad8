// 64-bit thread indexing for grid-stride loops: tensors may hold more than 2^31 elements.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace sirenpose {
namespace cuda {

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t grid_threads() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// n / d and n % d for n >= 0, d > 0. Both operands almost always fit in 32 bits, where the
// hardware sequence is far cheaper than the 64-bit division subroutine.
__host__ __device__ __forceinline__ int64_t div_rem(int64_t n, int64_t d, int64_t* rem) {
  if (((n | d) >> 32) == 0) {
    const uint32_t q = static_cast<uint32_t>(n) / static_cast<uint32_t>(d);
    *rem = n - static_cast<int64_t>(q) * d;
    return q;
  }
  const int64_t q = n / d;
  *rem = n - q * d;
  return q;
}

}  // namespace cuda
}  // namespace sirenpose
