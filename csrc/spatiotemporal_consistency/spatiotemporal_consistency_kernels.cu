// Spatio-temporal consistency loss on CUDA: sum over (tau, i) of w_i ||Delta^order P[tau, i]||^2.
// Every thread walks the time axis of its own column, keeping the frames it still needs in
// registers, so each element of positions is read from memory once per pass:
//   forward:  one (batch, Gaussian) column; D = 2 or 3 held in registers (any other D re-reads
//             its few previous frames, which the cache serves), fixed-grid two-pass sum;
//   backward: one (batch, Gaussian, coordinate) column, each gradient element written once.
#include "spatiotemporal_consistency/spatiotemporal_consistency_cuda.h"

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
struct SclData {
  const T* positions;  // [batch, T, M, D]
  RowWeight<T> weight;
  int64_t batch, frames, M, D, steps;  // frames: the T of [batch, T, M, D]

  SP_HD int64_t frame() const { return M * D; }  // elements between consecutive frames
};

template <typename T>
SclData<T> scl_data(const SpatioTemporalProblem& p) {
  return {static_cast<const T*>(p.positions),
          {static_cast<const T*>(p.weight), p.weight_shared, p.M},
          p.batch, p.T, p.M, p.D, p.steps};
}

// One coordinate of Delta^order: order 1 is x1 - x0, order 2 is (x2 - 2 x1) + x0 (the CPU's
// evaluation order). xs are consecutive frames, oldest first.
template <int ORDER, typename A>
SP_HD A stencil(A x0, A x1, A x2) {
  if constexpr (ORDER == 1) return x1 - x0;
  else return (x2 - A(2) * x1) + x0;
}

// Sum over time of the weighted terms of column (b, i), writing each to terms[b, tau, i] when
// terms is set. DC = D known at compile time (the last ORDER frames live in registers), or 0
// for any D (the previous frames are re-read, from cache).
template <typename T, int ORDER, int DC>
SP_HD double scl_column_fwd(const SclData<T>& a, int64_t b, int64_t i, acc_t<T> w, T* terms) {
  using A = acc_t<T>;
  const int64_t frame = a.frame();
  const T* col = a.positions + b * a.frames * frame + i * a.D;
  T* out = terms ? terms + b * a.steps * a.M + i : nullptr;
  double sum = 0.0;
  if constexpr (DC > 0) {
    A x[ORDER + 1][DC];  // x[0] oldest frame of the term, x[ORDER] newest
    for (int f = 0; f < ORDER; ++f)
      for (int k = 0; k < DC; ++k) x[f][k] = to_acc(col[f * frame + k]);
    // Unrolled so several frames' loads are in flight per thread (the walk is memory-bound).
    SP_UNROLL(4)
    for (int64_t s = 0; s < a.steps; ++s) {
      const T* newest = col + (s + ORDER) * frame;
      A sq = 0;
      for (int k = 0; k < DC; ++k) {
        x[ORDER][k] = to_acc(newest[k]);
        const A d = stencil<ORDER>(x[0][k], x[1][k], x[ORDER][k]);
        sq += d * d;
      }
      const A term = w * sq;
      if (out) out[s * a.M] = from_acc<T>(term);
      sum += static_cast<double>(term);
      for (int f = 0; f < ORDER; ++f)
        for (int k = 0; k < DC; ++k) x[f][k] = x[f + 1][k];
    }
  } else {
    for (int64_t s = 0; s < a.steps; ++s) {
      const T* first = col + s * frame;
      A sq = 0;
      for (int64_t k = 0; k < a.D; ++k) {
        const A x0 = to_acc(first[k]), x1 = to_acc(first[frame + k]);
        const A d = stencil<ORDER>(x0, x1, ORDER == 2 ? to_acc(first[2 * frame + k]) : A(0));
        sq += d * d;
      }
      const A term = w * sq;
      if (out) out[s * a.M] = from_acc<T>(term);
      sum += static_cast<double>(term);
    }
  }
  return sum;
}

// Gradient of column (b, i, d), each element written once. c_s = 2 w_i g_s with g_s the
// incoming gradient of the term starting at frame s (flat index (b * steps + s) * M + i). order 1: g[t] = c_{t-1} D_{t-1} - c_t D_t;
// order 2: g[t] = c_{t-2} a_{t-2} - 2 c_{t-1} a_{t-1} + c_t a_t  (terms outside [0, steps) drop).
template <typename T, int ORDER>
SP_HD void scl_column_bwd(const SclData<T>& a, int64_t b, int64_t i, int64_t d,
                          const TermGrad<T>& g_terms, T* grad) {
  using A = acc_t<T>;
  const int64_t frame = a.frame(), offset = b * a.frames * frame + i * a.D + d;
  const T* col = a.positions + offset;
  T* g = grad + offset;
  const A w2 = A(2) * a.weight.at(b, i);
  const int64_t g_col = b * a.steps * a.M + i;  // flat index of the column's first term
  if constexpr (ORDER == 1) {
    A x0 = to_acc(col[0]), d_prev = 0, c_prev = 0;
    for (int64_t t = 0; t < a.frames; ++t) {
      A v = 0, d_next = 0, c_next = 0, x1 = 0;
      if (t >= 1) v += c_prev * d_prev;
      if (t < a.steps) {
        x1 = to_acc(col[(t + 1) * frame]);
        d_next = x1 - x0;
        c_next = w2 * g_terms.at(g_col + t * a.M);
        v -= c_next * d_next;
      }
      g[t * frame] = from_acc<T>(v);
      d_prev = d_next;
      c_prev = c_next;
      x0 = x1;
    }
  } else {
    A x0 = to_acc(col[0]), x1 = to_acc(col[frame]);  // frames t and t + 1 (steps > 0: T >= 3)
    A a2 = 0, c2 = 0, a1 = 0, c1 = 0;                // terms starting at t - 2 and t - 1
    for (int64_t t = 0; t < a.frames; ++t) {
      A v = 0, a0 = 0, c0 = 0, x2 = 0;
      if (t >= 2) v += c2 * a2;
      if (t >= 1 && t - 1 < a.steps) v -= A(2) * c1 * a1;
      if (t < a.steps) {
        x2 = to_acc(col[(t + 2) * frame]);
        a0 = stencil<2>(x0, x1, x2);
        c0 = w2 * g_terms.at(g_col + t * a.M);
        v += c0 * a0;
      }
      g[t * frame] = from_acc<T>(v);
      a2 = a1;
      c2 = c1;
      a1 = a0;
      c1 = c0;
      x0 = x1;
      x1 = x2;
    }
  }
}

// denom = steps * (sum of the Gaussians' weights over the batch, or batch * M).
template <typename T>
struct SclFinish {
  T* loss;  // nullptr for reduction none
  double* denom;
  Reduce reduction;
  bool weighted;
  double steps, columns;

  SP_HD void operator()(const Sums<kSpatioTemporalSums>& s) const {
    const double d = steps * (weighted ? s.v[1] : columns);
    *denom = d;
    if (loss) *loss = from_acc<T>(reduced_value(s.v[0], d, reduction));
  }
};

// Work item c = b * M + i of the forward.
template <typename T, int ORDER, int DC>
SP_HD void scl_fwd_item(const SclData<T>& a, int64_t c, T* terms,
                        Sums<kSpatioTemporalSums>& s) {
  int64_t i;
  const int64_t b = div_rem(c, a.M, &i);
  const acc_t<T> w = a.weight.at(b, i);
  s.v[0] += scl_column_fwd<T, ORDER, DC>(a, b, i, w, terms);
  s.v[1] += static_cast<double>(w);
}

// Work item c = (b * M + i) * D + d of the backward.
template <typename T, int ORDER>
SP_HD void scl_bwd_item(const SclData<T>& a, const TermGrad<T>& g, int64_t c, T* grad_out) {
  int64_t rest, d;
  const int64_t b = div_rem(c, a.frame(), &rest), i = div_rem(rest, a.D, &d);
  scl_column_bwd<T, ORDER>(a, b, i, d, g, grad_out);
}

template <typename T, int ORDER, int DC>
__global__ void __launch_bounds__(kThreads)
scl_fwd_kernel(SclData<T> a, T* terms, double* partials, SclFinish<T> finish) {
  Sums<kSpatioTemporalSums> s;
  const int64_t columns = a.batch * a.M;
  for (int64_t c = global_thread(); c < columns; c += grid_threads())
    scl_fwd_item<T, ORDER, DC>(a, c, terms, s);
  finish_block(s, partials, finish);
}

template <typename T, int ORDER>
__global__ void __launch_bounds__(kThreads)
scl_bwd_kernel(SclData<T> a, Reduce reduction, const T* grad, const double* denom, T* grad_out) {
  const TermGrad<T> g = term_grad(reduction, grad, denom);
  const int64_t columns = a.batch * a.frame();
  for (int64_t c = global_thread(); c < columns; c += grid_threads())
    scl_bwd_item<T, ORDER>(a, g, c, grad_out);
}

template <typename T, int ORDER, int DC>
void launch_fwd(const SclData<T>& a, T* terms, double* scratch, int64_t blocks,
                const SclFinish<T>& finish, cudaStream_t stream) {
  scl_fwd_kernel<T, ORDER, DC><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      a, terms, scratch, finish);
}

template <typename T, int ORDER>
void launch_fwd_for_d(const SclData<T>& a, T* terms, double* scratch, int64_t blocks,
                      const SclFinish<T>& finish, cudaStream_t stream) {
  if (a.D == 3) launch_fwd<T, ORDER, 3>(a, terms, scratch, blocks, finish, stream);
  else if (a.D == 2) launch_fwd<T, ORDER, 2>(a, terms, scratch, blocks, finish, stream);
  else launch_fwd<T, ORDER, 0>(a, terms, scratch, blocks, finish, stream);
}

}  // namespace

cudaError_t spatiotemporal_consistency_fwd(const SpatioTemporalProblem& p, Reduce reduction,
                                           void* out, double* denom, double* scratch,
                                           int64_t blocks, cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const bool none = reduction == Reduce::kNone;
    const SclData<T> a = scl_data<T>(p);
    T* terms = none ? static_cast<T*>(out) : nullptr;
    const SclFinish<T> finish{none ? nullptr : static_cast<T*>(out), denom, reduction,
                              p.weight != nullptr, static_cast<double>(p.steps),
                              static_cast<double>(p.batch * p.M)};
    if (p.order == 1) launch_fwd_for_d<T, 1>(a, terms, scratch, blocks, finish, stream);
    else launch_fwd_for_d<T, 2>(a, terms, scratch, blocks, finish, stream);
    launch_final_pass<kSpatioTemporalSums>(scratch, blocks, finish, stream);
    return cudaGetLastError();
  });
}

cudaError_t spatiotemporal_consistency_bwd(const SpatioTemporalProblem& p, Reduce reduction,
                                           const void* grad, const double* denom,
                                           void* grad_positions, cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const SclData<T> a = scl_data<T>(p);
    const unsigned blocks = static_cast<unsigned>(elementwise_blocks(p.batch * p.M * p.D));
    const T* g = static_cast<const T*>(grad);
    T* out = static_cast<T*>(grad_positions);
    if (p.order == 1) scl_bwd_kernel<T, 1><<<blocks, kThreads, 0, stream>>>(a, reduction, g, denom, out);
    else scl_bwd_kernel<T, 2><<<blocks, kThreads, 0, stream>>>(a, reduction, g, denom, out);
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace sirenpose
