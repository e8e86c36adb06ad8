// The host side of the kernel shells of csrc/common/launch.cuh: the same interface as CudaExec
// (reduce, for_each, status), running the kernels' host+device code over an emulated grid.
// Reductions keep the GPU's order of additions exactly: each thread's grid-stride items in order,
// the block's shuffle tree through block_reduce.cuh's own code over an emulated 32-lane warp,
// the single-block shortcut and the final pass of two_pass.cuh.
#pragma once

#include <cstdint>
#include <vector>

#include "common/block_reduce.cuh"
#include "common/two_pass.cuh"

namespace sirenpose {
namespace cuda {
namespace emulation {

// All 32 lanes of one warp register, advanced in lockstep.
struct Lanes {
  double x[kWarpSize];
  Lanes(double v = 0.0) {  // NOLINT: Sums<NV, Lanes> zero-fills with V(0.0)
    for (double& l : x) l = v;
  }
  Lanes& operator+=(const Lanes& o) {
    for (int l = 0; l < kWarpSize; ++l) x[l] += o.x[l];
    return *this;
  }
};

// The warp policy of block_reduce.cuh over Lanes: __shfl_down_sync, lane 0 stores, per-lane loads.
struct HostWarp {
  using Value = Lanes;
  Lanes down(const Lanes& v, int offset) const {
    Lanes r;
    for (int l = 0; l < kWarpSize; ++l) r.x[l] = l + offset < kWarpSize ? v.x[l + offset] : v.x[l];
    return r;
  }
  void store_lane0(double* p, const Lanes& v) const { *p = v.x[0]; }
  Lanes lanes_from(const double* t, int n) const {
    Lanes r;
    for (int l = 0; l < kWarpSize; ++l) r.x[l] = l < n ? t[l] : 0.0;
    return r;
  }
};

// block_sum of launch.cuh for one block whose threads hold `threads` (kThreads of them): stage 1
// in every warp, the barrier, stage 2 in warp 0; the result is lane 0's.
template <int NV>
Sums<NV> block_sum(const std::vector<Sums<NV>>& threads) {
  double totals[NV][kWarps];
  const HostWarp warp;
  for (int w = 0; w < kWarps; ++w) {
    Sums<NV, Lanes> s;
    for (int l = 0; l < kWarpSize; ++l)
      for (int k = 0; k < NV; ++k) s.v[k].x[l] = threads[w * kWarpSize + l].v[k];
    block_sum_stage1(s, warp, totals, w);
  }
  Sums<NV, Lanes> s;  // warp 0 after the barrier; stage 2 overwrites what it held
  block_sum_stage2(s, warp, totals);
  Sums<NV> out;
  for (int k = 0; k < NV; ++k) out.v[k] = s.v[k].x[0];
  return out;
}

struct HostExec {
  // first_pass_kernel over `blocks` blocks, then final_pass_kernel when blocks > 1.
  template <int NV, typename Items, typename Finish>
  void reduce(const Items& items, int64_t blocks, double* scratch, const Finish& finish) const {
    std::vector<Sums<NV>> threads(kThreads);
    for (int64_t b = 0; b < blocks; ++b) {
      for (int t = 0; t < kThreads; ++t)
        threads[t] = thread_sums<NV>(items, b * kThreads + t, blocks * kThreads);
      block_result(block_sum(threads), b, blocks, scratch, finish);
    }
    if (blocks <= 1) return;
    for (int t = 0; t < kThreads; ++t) threads[t] = final_pass_thread<NV>(scratch, blocks, t);
    finish(block_sum(threads));
  }

  // for_each_kernel: items in reverse order, since no result may depend on the order.
  template <typename Items>
  void for_each(const Items& items) const {
    const auto ctx = items.context();
    for (int64_t it = items.count() - 1; it >= 0; --it) items(it, ctx);
  }

  cudaError_t status() const { return cudaSuccess; }
};

}  // namespace emulation
}  // namespace cuda
}  // namespace sirenpose
