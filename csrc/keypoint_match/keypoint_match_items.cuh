// Keypoint match loss, the per-item work of the CUDA kernels: host+device code, run by the
// kernel shells of common/launch.cuh and by the host emulation of the tests alike.
// Forward: one item per keypoint row, fixed-grid two-pass sum; backward: one item per row.
#pragma once

#include "common/dispatch.cuh"
#include "common/reduced.cuh"
#include "common/rows.cuh"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"
#include "keypoint_match/keypoint_match_cuda.h"

namespace sirenpose {
namespace cuda {
namespace kml {

template <typename T>
struct Data {
  const T* pred;
  const T* target;
  RowWeight<T> weight;
  int64_t rows, D;
};

template <typename T>
Data<T> data(const KeypointMatchProblem& p) {
  return {static_cast<const T*>(p.pred), static_cast<const T*>(p.target),
          {static_cast<const T*>(p.weight), p.weight_shared, p.K}, p.rows, p.D};
}

// Row n of the forward: its term (stored for reduction none) added to the sums. DC: D at
// compile time (2 or 3), or 0 for any D.
template <typename T, bool STORE, int DC>
struct FwdItems {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  T* terms;

  SP_HD int64_t count() const { return a.rows; }
  SP_HD void operator()(int64_t n, Sums<kKeypointMatchSums>& s) const {
    const acc_t<T> w = a.weight.at_flat(n);
    const acc_t<T> term = w * squared_distance<DC>(a.pred + n * a.D, a.target + n * a.D, a.D);
    if (STORE) terms[n] = from_acc<T>(term);
    s.v[0] += static_cast<double>(term);
    s.v[1] += static_cast<double>(w);
  }
};

// Row n of the backward: d(w ||p - t||^2)/dp = 2 w (p - t) times the term's incoming
// gradient; -that for t. A null output is skipped.
template <typename T, int DC>
struct BwdItems {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  Reduce reduction;
  const T* grad;
  const double* denom;
  T* grad_pred;
  T* grad_target;

  SP_HD int64_t count() const { return a.rows; }
  // Read once per thread, on the device (no host sync).
  SP_HD TermGrad<T> context() const { return term_grad(reduction, grad, denom); }
  SP_HD void store(int64_t k, acc_t<T> c, acc_t<T> p, acc_t<T> t) const {
    const acc_t<T> v = c * (p - t);
    if (grad_pred) grad_pred[k] = from_acc<T>(v);
    if (grad_target) grad_target[k] = from_acc<T>(-v);
  }
  SP_HD void operator()(int64_t n, const TermGrad<T>& g) const {
    using A = acc_t<T>;
    const A c = A(2) * a.weight.at_flat(n) * g.at(n);
    const int64_t base = n * a.D;
    if constexpr (DC > 0) {
      A p[DC], t[DC];
      SP_UNROLL(DC)
      for (int k = 0; k < DC; ++k) {
        p[k] = to_acc(a.pred[base + k]);
        t[k] = to_acc(a.target[base + k]);
      }
      loads_issued();
      SP_UNROLL(DC)
      for (int k = 0; k < DC; ++k) store(base + k, c, p[k], t[k]);
    } else {
      for (int64_t k = base; k < base + a.D; ++k)
        store(k, c, to_acc(a.pred[k]), to_acc(a.target[k]));
    }
  }
};

template <typename Exec>
cudaError_t fwd(const Exec& exec, const KeypointMatchProblem& p, Reduce reduction, void* out,
                double* denom, double* scratch, int64_t blocks) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const bool none = reduction == Reduce::kNone;
    // denom: the weight total, or the row count when unweighted.
    const WeightedFinish<T> finish{none ? nullptr : static_cast<T*>(out), denom, reduction,
                                   p.weight != nullptr, 1.0, static_cast<double>(p.rows)};
    return dispatch_dim(p.D, [&](auto dim) {
      constexpr int DC = decltype(dim)::value;
      if (none)
        exec.template reduce<kKeypointMatchSums>(
            FwdItems<T, true, DC>{data<T>(p), static_cast<T*>(out)}, blocks, scratch, finish);
      else
        exec.template reduce<kKeypointMatchSums>(FwdItems<T, false, DC>{data<T>(p), nullptr},
                                                 blocks, scratch, finish);
      return exec.status();
    });
  });
}

template <typename Exec>
cudaError_t bwd(const Exec& exec, const KeypointMatchProblem& p, Reduce reduction,
                const void* grad, const double* denom, void* grad_pred, void* grad_target) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    return dispatch_dim(p.D, [&](auto dim) {
      exec.for_each(BwdItems<T, decltype(dim)::value>{
          data<T>(p), reduction, static_cast<const T*>(grad), denom, static_cast<T*>(grad_pred),
          static_cast<T*>(grad_target)});
      return exec.status();
    });
  });
}

}  // namespace kml
}  // namespace cuda
}  // namespace sirenpose
