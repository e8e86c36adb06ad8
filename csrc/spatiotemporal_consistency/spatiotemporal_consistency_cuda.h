// C-style launchers of the spatio-temporal consistency CUDA kernels, called by the ATen glue.
// Pointers are device pointers of contiguous tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

struct SpatioTemporalProblem {
  Dtype dtype;
  const void* positions;  // [batch, T, M, D]
  const void* weight;     // [M] (weight_shared) or [batch * M]; nullptr when absent
  bool weight_shared;
  int64_t batch, T, M, D;
  int order;              // 1 (velocity) or 2 (acceleration)
  int64_t steps;          // terms along time: T - order, > 0 (the glue handles 0)
};

constexpr int kSpatioTemporalSums = 2;

// Chunks of the time axis. Work items are (chunk, column) pairs; few columns (small M) are cut
// into enough chunks that about kSclTargetItems threads are busy (a 132-SM GPU holds 135,168
// threads at 4 blocks of 256 per SM), but no chunk is shorter than kSclMinChunk, so the `order`
// frames a chunk re-reads (mostly from L2: the previous chunk of the column runs at the same
// time) add at most 2/8 to the requests. A function of the problem size only: the summation
// order, and with it every bit of the result, is the same on any GPU.
constexpr int64_t kSclTargetItems = int64_t{1} << 18;
constexpr int64_t kSclMinChunk = 8;

// Length of a chunk of `len` steps (forward) or frames (backward) over `columns` columns.
inline int64_t scl_chunk(int64_t columns, int64_t len) {
  if (len <= 0) return 1;
  const int64_t wanted = columns > 0 ? ceil_div64(kSclTargetItems, columns) : 1;
  int64_t chunk = ceil_div64(len, wanted);
  if (chunk < kSclMinChunk) chunk = kSclMinChunk;
  return chunk < len ? chunk : len;
}

// Forward: steps per chunk of a (batch, Gaussian) column. Backward: frames per chunk of a
// (batch, Gaussian, coordinate) column.
inline int64_t spatiotemporal_fwd_chunk(const SpatioTemporalProblem& p) {
  return scl_chunk(p.batch * p.M, p.steps);
}
inline int64_t spatiotemporal_bwd_chunk(const SpatioTemporalProblem& p) {
  return scl_chunk(p.batch * p.M * p.D, p.T);
}

// First-pass grid of the forward: one work item per chunk of a column, reading about
// (chunk + order) * D elements.
inline int64_t spatiotemporal_fwd_blocks(const SpatioTemporalProblem& p) {
  const int64_t chunk = spatiotemporal_fwd_chunk(p);
  return reduce_blocks(p.batch * p.M * ceil_div64(p.steps, chunk), (chunk + p.order) * p.D);
}

// out: the terms [batch, steps, M] (none) or the 0-dim loss (mean/sum); denom: 1 double.
cudaError_t spatiotemporal_consistency_fwd(const SpatioTemporalProblem& p, Reduce reduction,
                                           void* out, double* denom, double* scratch,
                                           int64_t blocks, cudaStream_t stream);

// grad: [batch, steps, M] (none) or 1 element (mean/sum); grad_positions: [batch, T, M, D].
cudaError_t spatiotemporal_consistency_bwd(const SpatioTemporalProblem& p, Reduce reduction,
                                           const void* grad, const double* denom,
                                           void* grad_positions, cudaStream_t stream);

}  // namespace cuda
}  // namespace sirenpose
