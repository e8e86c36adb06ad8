// The mean/sum conventions of csrc/common/reduction.h, on the device: a mean over zero weight is
// 0 with a zero gradient, never NaN.
#pragma once

#include "common/block_reduce.cuh"
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

// The incoming gradient of a term: grad[n] (none) or the reduced coefficient `coef`.
template <typename T>
struct TermGrad {
  const T* per_term;  // nullptr for mean/sum
  acc_t<T> coef;

  SP_HD acc_t<T> at(int64_t n) const { return per_term ? to_acc(per_term[n]) : coef; }
};

// Built on the device from the incoming gradient and the forward's denom (denom[0] is this
// component's denominator), so no host sync is needed.
template <typename T>
SP_HD TermGrad<T> term_grad(Reduce reduction, const T* grad, const double* denom) {
  if (reduction == Reduce::kNone) return {grad, acc_t<T>(0)};
  return {nullptr, static_cast<acc_t<T>>(reduced_coef(static_cast<double>(to_acc(grad[0])),
                                                      denom[0], reduction))};
}

// Finisher of a loss whose two sums are (weighted terms, weights): denom = scale * (the weight
// total, or `count` when unweighted) is written, and for mean/sum the loss (nullptr for none).
template <typename T>
struct WeightedFinish {
  T* loss;
  double* denom;
  Reduce reduction;
  bool weighted;
  double scale, count;

  SP_HD void operator()(const Sums<2>& s) const {
    const double d = scale * (weighted ? s.v[1] : count);
    *denom = d;
    if (loss) *loss = from_acc<T>(reduced_value(s.v[0], d, reduction));
  }
};

}  // namespace cuda
}  // namespace sirenpose
