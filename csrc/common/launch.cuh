// The kernels' shells (nvcc only): each thread runs the host+device per-item code of
// <loss>_items.cuh, and the block and grid logic of block_reduce.cuh / two_pass.cuh, over the
// real warp. CudaExec launches them; the host emulation in tests/host_emulation/ provides the
// same interface (reduce, for_each, status) over an emulated grid.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/block_reduce.cuh"
#include "common/launch_cuda.h"
#include "common/two_pass.cuh"

namespace sirenpose {
namespace cuda {

// 64-bit thread indexing for grid-stride loops: tensors may hold more than 2^31 elements.
__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t grid_threads() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// The warp policy of block_reduce.cuh on the device: one double per thread.
struct DeviceWarp {
  using Value = double;
  int lane;

  __device__ __forceinline__ double down(double x, int offset) const {
    return __shfl_down_sync(0xffffffffu, x, offset);
  }
  __device__ __forceinline__ void store_lane0(double* p, double x) const {
    if (lane == 0) *p = x;
  }
  __device__ __forceinline__ double lanes_from(const double* t, int n) const {
    return lane < n ? t[lane] : 0.0;
  }
};

// The block's totals in thread 0 (other threads get partial values). Every thread of the
// block must call it; blockDim.x must be kThreads.
template <int NV>
__device__ __forceinline__ Sums<NV> block_sum(Sums<NV> s) {
  __shared__ double totals[NV][kWarps];
  const DeviceWarp warp{static_cast<int>(threadIdx.x % kWarpSize)};
  const int warp_id = static_cast<int>(threadIdx.x / kWarpSize);
  block_sum_stage1(s, warp, totals, warp_id);
  __syncthreads();
  if (warp_id == 0) block_sum_stage2(s, warp, totals);
  return s;
}

// Items::kMinBlocks: the blocks per SM the kernel must fit (caps its registers), so that enough
// threads, and with them enough loads, are in flight on every SM (docs/cuda.md).
template <int NV, typename Items, typename Finish>
__global__ void __launch_bounds__(kThreads, Items::kMinBlocks)
first_pass_kernel(const Items items, double* partials, const Finish finish) {
  const Sums<NV> total = block_sum(thread_sums<NV>(items, global_thread(), grid_threads()));
  if (threadIdx.x == 0) block_result(total, blockIdx.x, gridDim.x, partials, finish);
}

template <int NV, typename Finish>
__global__ void __launch_bounds__(kThreads)
final_pass_kernel(const double* partials, int64_t blocks, const Finish finish) {
  const Sums<NV> total = block_sum(final_pass_thread<NV>(partials, blocks, threadIdx.x));
  if (threadIdx.x == 0) finish(total);
}

// Elementwise work: every item writes its own outputs, in any order. items.context() is what a
// thread reads once for all its items (the incoming gradient's coefficient).
template <typename Items>
__global__ void __launch_bounds__(kThreads, Items::kMinBlocks) for_each_kernel(const Items items) {
  const int64_t n = items.count();
  const auto ctx = items.context();
  for (int64_t it = global_thread(); it < n; it += grid_threads()) items(it, ctx);
}

struct CudaExec {
  cudaStream_t stream;

  // Both passes on `stream`; scratch holds NV * blocks doubles (unused for one block).
  template <int NV, typename Items, typename Finish>
  void reduce(const Items& items, int64_t blocks, double* scratch, const Finish& finish) const {
    first_pass_kernel<NV, Items, Finish>
        <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(items, scratch, finish);
    if (blocks > 1)
      final_pass_kernel<NV, Finish><<<1, kThreads, 0, stream>>>(scratch, blocks, finish);
  }

  template <typename Items>
  void for_each(const Items& items) const {
    const unsigned blocks = static_cast<unsigned>(elementwise_blocks(items.count()));
    for_each_kernel<Items><<<blocks, kThreads, 0, stream>>>(items);
  }

  cudaError_t status() const { return cudaGetLastError(); }
};

}  // namespace cuda
}  // namespace sirenpose
