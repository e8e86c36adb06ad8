// What the CUDA launchers and their ATen glue share: the dtype code and the grid sizes. Plain
// C++ (no CUDA, no torch headers) so both nvcc and the host compiler include it.
#pragma once

#include <cstdint>

// The few helpers here that the kernels call too (host+device under nvcc).
#ifdef __CUDACC__
#define SP_LAUNCH_HD __host__ __device__
#else
#define SP_LAUNCH_HD
#endif

namespace sirenpose {
namespace cuda {

// Floating dtypes the kernels are compiled for; the glue maps at::ScalarType onto these.
enum class Dtype : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// Reduction codes, the same numbers as csrc/common/reduction.h and sirenpose_loss/_ops.py.
enum class Reduce : int { kNone = 0, kMean = 1, kSum = 2 };

// Integer width of edge_index (both int64 and int32 are accepted by the Python API).
enum class IndexType : int { kInt64 = 0, kInt32 = 1 };

constexpr int kThreads = 256;                // threads per block, every kernel
constexpr int64_t kMaxReduceBlocks = 1024;   // cap of the first pass of a scalar reduction
constexpr int64_t kWorkPerReduceBlock = 2048;  // elements one reduction block should cover
constexpr int64_t kMaxElementwiseBlocks = int64_t{1} << 22;  // grid-stride loops cover the rest

SP_LAUNCH_HD inline int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks of the first pass of a reduction over `items` work items of `work_per_item` elements
// each. A function of the problem size only (never of the GPU), so the summation tree, and with
// it every bit of the result, is the same on any GPU and any run. One block means no second
// pass: the block writes the final result itself.
inline int64_t reduce_blocks(int64_t items, int64_t work_per_item) {
  if (items <= 0) return 1;
  const int64_t by_work = ceil_div64(items * (work_per_item > 0 ? work_per_item : 1),
                                     kWorkPerReduceBlock);
  const int64_t by_items = ceil_div64(items, kThreads);  // never an idle block
  int64_t blocks = by_work < by_items ? by_work : by_items;
  if (blocks > kMaxReduceBlocks) blocks = kMaxReduceBlocks;
  return blocks < 1 ? 1 : blocks;
}

// Blocks of an elementwise kernel (one item per thread, grid-stride beyond the cap).
inline int64_t elementwise_blocks(int64_t items) {
  const int64_t blocks = ceil_div64(items > 0 ? items : 1, kThreads);
  return blocks < kMaxElementwiseBlocks ? blocks : kMaxElementwiseBlocks;
}

}  // namespace cuda
}  // namespace sirenpose
