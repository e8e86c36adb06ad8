// Keypoint match loss on CUDA: sum_n w_n ||pred_n - target_n||^2. Forward: one thread per row
// and a fixed-grid two-pass sum; backward: one thread per row, no reduction.
#include "keypoint_match/keypoint_match_cuda.h"

#include "common/dispatch.cuh"
#include "common/grid.cuh"
#include "common/reduced.cuh"
#include "common/rows.cuh"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"

namespace sirenpose {
namespace cuda {
namespace {

template <typename T>
struct KmlData {
  const T* pred;
  const T* target;
  RowWeight<T> weight;
  int64_t rows, D;
};

template <typename T>
KmlData<T> kml_data(const KeypointMatchProblem& p) {
  return {static_cast<const T*>(p.pred), static_cast<const T*>(p.target),
          {static_cast<const T*>(p.weight), p.weight_shared, p.K}, p.rows, p.D};
}

// Writes the denominator and, for mean/sum, the loss (sums: weighted terms, weights).
template <typename T>
struct KmlFinish {
  T* loss;              // nullptr for reduction none
  double* denom;
  Reduce reduction;
  bool weighted;
  double rows;

  SP_HD void operator()(const Sums<kKeypointMatchSums>& s) const {
    const double d = weighted ? s.v[1] : rows;
    *denom = d;
    if (loss) *loss = from_acc<T>(reduced_value(s.v[0], d, reduction));
  }
};

// Row n of the forward: its term (stored for reduction none) added to the sums.
template <typename T>
SP_HD void kml_fwd_row(const KmlData<T>& a, int64_t n, T* terms, Sums<kKeypointMatchSums>& s) {
  const acc_t<T> w = a.weight.at_flat(n);
  const acc_t<T> term = w * squared_distance(a.pred + n * a.D, a.target + n * a.D, a.D);
  if (terms) terms[n] = from_acc<T>(term);
  s.v[0] += static_cast<double>(term);
  s.v[1] += static_cast<double>(w);
}

// Row n of the backward: d(w ||p - t||^2)/dp = 2 w (p - t) times the term's incoming
// gradient; -that for t. A null output is skipped.
template <typename T>
SP_HD void kml_bwd_row(const KmlData<T>& a, const TermGrad<T>& g, int64_t n, T* grad_pred,
                       T* grad_target) {
  using A = acc_t<T>;
  const A c = A(2) * a.weight.at_flat(n) * g.at(n);
  for (int64_t k = n * a.D, end = k + a.D; k < end; ++k) {
    const A v = c * (to_acc(a.pred[k]) - to_acc(a.target[k]));
    if (grad_pred) grad_pred[k] = from_acc<T>(v);
    if (grad_target) grad_target[k] = from_acc<T>(-v);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
kml_fwd_kernel(KmlData<T> a, T* terms, double* partials, KmlFinish<T> finish) {
  Sums<kKeypointMatchSums> s;
  for (int64_t n = global_thread(); n < a.rows; n += grid_threads()) kml_fwd_row(a, n, terms, s);
  finish_block(s, partials, finish);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
kml_bwd_kernel(KmlData<T> a, Reduce reduction, const T* grad, const double* denom, T* grad_pred,
               T* grad_target) {
  const TermGrad<T> g = term_grad(reduction, grad, denom);
  for (int64_t n = global_thread(); n < a.rows; n += grid_threads())
    kml_bwd_row(a, g, n, grad_pred, grad_target);
}

}  // namespace

cudaError_t keypoint_match_fwd(const KeypointMatchProblem& p, Reduce reduction, void* out,
                               double* denom, double* scratch, int64_t blocks,
                               cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const bool none = reduction == Reduce::kNone;
    const KmlFinish<T> finish{none ? nullptr : static_cast<T*>(out), denom, reduction,
                              p.weight != nullptr, static_cast<double>(p.rows)};
    kml_fwd_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        kml_data<T>(p), none ? static_cast<T*>(out) : nullptr, scratch, finish);
    launch_final_pass<kKeypointMatchSums>(scratch, blocks, finish, stream);
    return cudaGetLastError();
  });
}

cudaError_t keypoint_match_bwd(const KeypointMatchProblem& p, Reduce reduction, const void* grad,
                               const double* denom, void* grad_pred, void* grad_target,
                               cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    kml_bwd_kernel<T><<<static_cast<unsigned>(elementwise_blocks(p.rows)), kThreads, 0, stream>>>(
        kml_data<T>(p), reduction, static_cast<const T*>(grad), denom,
        static_cast<T*>(grad_pred), static_cast<T*>(grad_target));
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace sirenpose
