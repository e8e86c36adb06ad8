// Fixed-grid two-pass scalar reductions, with no atomics and no host sync: every block of the
// first pass writes its NV totals to a scratch buffer, then one block adds them in block order
// and calls the loss's finisher, which writes the outputs. A one-block first pass finishes by
// itself (tiny inputs then cost one launch).
//
// The per-thread parts are host+device code, shared by the kernels (launch.cuh) and the host
// emulation of the tests. An `Items` functor describes the work: count() items, and
// operator()(it, sums) adds item it to a thread's sums.
#pragma once

#include <cstdint>

#include "common/block_reduce.cuh"
#include "common/launch_cuda.h"
#include "common/scalar.cuh"

namespace sirenpose {
namespace cuda {

// First pass, one thread: items first, first + stride, ... (a grid-stride loop), in that order.
template <int NV, typename Items>
SP_HD Sums<NV> thread_sums(const Items& items, int64_t first, int64_t stride) {
  Sums<NV> s;
  const int64_t n = items.count();
  for (int64_t it = first; it < n; it += stride) items(it, s);
  return s;
}

// First pass, thread 0 of block `block` with the block's totals: a one-block grid is final;
// otherwise the totals go to the block's slots of partials (NV * blocks doubles, k-major).
template <int NV, typename Finish>
SP_HD void block_result(const Sums<NV>& total, int64_t block, int64_t blocks, double* partials,
                        const Finish& finish) {
  if (blocks == 1) {
    finish(total);
    return;
  }
  SP_UNROLL(NV)
  for (int k = 0; k < NV; ++k) partials[k * blocks + block] = total.v[k];
}

// Final pass (one block), thread t: the partials of blocks t, t + kThreads, ... in block order.
template <int NV>
SP_HD Sums<NV> final_pass_thread(const double* partials, int64_t blocks, int64_t t) {
  Sums<NV> s;
  for (int64_t b = t; b < blocks; b += kThreads) {
    SP_UNROLL(NV)
    for (int k = 0; k < NV; ++k) s.v[k] += partials[k * blocks + b];
  }
  return s;
}

}  // namespace cuda
}  // namespace sirenpose
