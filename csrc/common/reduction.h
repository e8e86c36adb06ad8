// Shared conventions of every CPU kernel: reduction codes and the fixed-chunk reduction
// that makes sums bit-identical for any thread count.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <array>
#include <vector>

namespace sirenpose {

// The reduction codes of every op: their one definition. Python reads them from the compiled
// module (csrc/ops.cpp exports them), and csrc/ops.cpp static_asserts that the CUDA launchers'
// cuda::Reduce (common/launch_cuda.h, a header without torch) uses the same numbers.
enum Reduction : int64_t { kNone = 0, kMean = 1, kSum = 2 };

inline Reduction checked_reduction(int64_t r) {
  TORCH_CHECK_VALUE(r >= 0 && r <= 2, "reduction code must be 0 (none), 1 (mean) or 2 (sum), got ", r);
  return static_cast<Reduction>(r);
}

// Below this many elements per task, threading costs more than it saves.
constexpr int64_t kMinWorkPerTask = 1 << 18;

inline int64_t chunk_grain(int64_t work_per_chunk) {
  return std::max<int64_t>(1, kMinWorkPerTask / std::max<int64_t>(1, work_per_chunk));
}

// Sums NV accumulators over `num_chunks` chunks. Chunk boundaries depend only on the problem
// size, each chunk is summed serially in double, and the per-chunk partials are added in chunk
// order, so the result never depends on how many threads ran the chunks.
// `work_per_chunk` (elements) sets how many chunks a thread takes at least, so that small
// problems run inline instead of waking the thread pool (it never changes the result).
template <int NV, typename ChunkFn>
std::array<double, NV> chunked_sum(int64_t num_chunks, int64_t work_per_chunk, const ChunkFn& chunk_fn) {
  std::array<double, NV> total{};
  if (num_chunks <= 0) return total;
  std::vector<std::array<double, NV>> partial(num_chunks);
  at::parallel_for(0, num_chunks, chunk_grain(work_per_chunk), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) partial[c] = chunk_fn(c);
  });
  for (int64_t c = 0; c < num_chunks; ++c)
    for (int v = 0; v < NV; ++v) total[v] += partial[c][v];
  return total;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Mean of `sum` over a weight total; an empty (or zero-weight) mean is 0, never NaN.
inline double safe_mean(double sum, double denom) { return denom > 0 ? sum / denom : 0.0; }

// Gradient coefficient of a reduced loss: d(loss)/d(term) = grad / denom (mean) or grad (sum).
inline double reduced_coef(double grad, double denom, Reduction r) {
  if (r == kMean) return denom > 0 ? grad / denom : 0.0;
  return grad;
}

}  // namespace sirenpose
