// The mean/sum conventions of csrc/common/reduction.h, on the device: a mean over zero weight is
// 0 with a zero gradient, never NaN.
#pragma once

#include "common/launch_cuda.h"
#include "common/scalar.cuh"

namespace sirenpose {
namespace cuda {

SP_HD double safe_mean(double sum, double denom) { return denom > 0 ? sum / denom : 0.0; }

// The value a reduced loss reports: the mean or the sum of its terms.
SP_HD double reduced_value(double sum, double denom, Reduce r) {
  return r == Reduce::kMean ? safe_mean(sum, denom) : sum;
}

// d(loss)/d(term) of a reduced loss: grad / denom (mean) or grad (sum). Read on the device from
// the incoming gradient and the forward's denom, so the backward never syncs with the host.
SP_HD double reduced_coef(double grad, double denom, Reduce r) {
  if (r == Reduce::kMean) return denom > 0 ? grad / denom : 0.0;
  return grad;
}

}  // namespace cuda
}  // namespace sirenpose
