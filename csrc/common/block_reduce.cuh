// Deterministic block-wide sums of NV doubles: a fixed shuffle tree inside each warp, then the
// warps' results in warp order. The order depends only on blockDim, never on timing.
//
// Written over a warp policy W so that the host instantiates the very same code: W::Value is
// what one thread holds (a double on the device; all 32 lanes at once in the host emulation of
// tests/host_emulation/), and W provides the shuffle and the lane-0 / per-lane memory accesses.
// The device policy and block_sum itself are in launch.cuh.
#pragma once

#include "common/launch_cuda.h"
#include "common/scalar.cuh"

namespace sirenpose {
namespace cuda {

constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;

template <int NV, typename V = double>
struct Sums {
  V v[NV];
  SP_HD Sums() {
    for (int k = 0; k < NV; ++k) v[k] = V(0.0);
  }
};

// The tree: lane l adds lane l + offset for offset = 16, 8, 4, 2, 1, so lane 0 ends with
// ((x0 + x16) + (x8 + x24)) + ... in that fixed pairing. W::down(x, offset) is the value of lane
// l + offset (its own value where l + offset > 31, as __shfl_down_sync).
template <int NV, typename W>
SP_HD void warp_sum(Sums<NV, typename W::Value>& s, const W& warp) {
  SP_UNROLL(5)
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    SP_UNROLL(NV)
    for (int k = 0; k < NV; ++k) s.v[k] += warp.down(s.v[k], offset);
  }
}

// First stage, run by every warp: its tree, then lane 0 stores the warp's totals in
// totals[k][warp_id].
template <int NV, typename W>
SP_HD void block_sum_stage1(Sums<NV, typename W::Value>& s, const W& warp,
                            double (*totals)[kWarps], int warp_id) {
  warp_sum(s, warp);
  SP_UNROLL(NV)
  for (int k = 0; k < NV; ++k) warp.store_lane0(&totals[k][warp_id], s.v[k]);
}

// Second stage, run by warp 0 once every warp has stored: lane l < kWarps takes warp l's totals
// (the other lanes 0) and the same tree adds them; lane 0 then holds the block's sums.
template <int NV, typename W>
SP_HD void block_sum_stage2(Sums<NV, typename W::Value>& s, const W& warp,
                            const double (*totals)[kWarps]) {
  SP_UNROLL(NV)
  for (int k = 0; k < NV; ++k) s.v[k] = warp.lanes_from(totals[k], kWarps);
  warp_sum(s, warp);
}

}  // namespace cuda
}  // namespace sirenpose
