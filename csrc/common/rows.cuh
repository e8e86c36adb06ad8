// Per-row quantities shared by the keypoint terms of KML and SirenPose (and SCL's weights).
#pragma once

#include <cstdint>

#include "common/grid.cuh"
#include "common/scalar.cuh"

namespace sirenpose {
namespace cuda {

// Per-row weight: shared by the batch ([rows]) or per batch entry ([batch * rows]); a null
// pointer means every weight is 1. Mirrors RowWeight of the CPU kernels.
template <typename T>
struct RowWeight {
  const T* data;
  bool shared;
  int64_t rows;  // rows per batch entry (K keypoints or M Gaussians)

  // Weight of flat row n = b * rows + r.
  SP_HD acc_t<T> at_flat(int64_t n) const {
    if (!data) return acc_t<T>(1);
    if (!shared) return to_acc(data[n]);
    int64_t r;
    div_rem(n, rows, &r);
    return to_acc(data[r]);
  }
  SP_HD acc_t<T> at(int64_t b, int64_t r) const {
    return data ? to_acc(data[shared ? r : b * rows + r]) : acc_t<T>(1);
  }
};

// ||a - b||^2 over D contiguous coordinates, in the arithmetic type, the terms added in
// coordinate order. DC = D known at compile time (0: any D); then all 2 DC loads are issued
// before the first is used.
template <int DC = 0, typename T>
SP_HD acc_t<T> squared_distance(const T* a, const T* b, int64_t D) {
  acc_t<T> sq = 0;
  if constexpr (DC > 0) {
    acc_t<T> va[DC], vb[DC];
    SP_UNROLL(DC)
    for (int k = 0; k < DC; ++k) {
      va[k] = to_acc(a[k]);
      vb[k] = to_acc(b[k]);
    }
    loads_issued();
    SP_UNROLL(DC)
    for (int k = 0; k < DC; ++k) {
      const acc_t<T> d = va[k] - vb[k];
      sq += d * d;
    }
  } else {
    for (int64_t k = 0; k < D; ++k) {
      const acc_t<T> d = to_acc(a[k]) - to_acc(b[k]);
      sq += d * d;
    }
  }
  return sq;
}

}  // namespace cuda
}  // namespace sirenpose
