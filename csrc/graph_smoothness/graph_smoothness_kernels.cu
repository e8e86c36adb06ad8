// Graph smoothness on CUDA: terms pen(w_e, ||f_j - f_i||^2). Forward: one thread per (batch
// entry, edge), fixed-grid two-pass sums. Backward: pass 1, one thread per (batch entry, edge),
// writes the edge's factor where its neighbour will read it; pass 2, one thread per (batch
// entry, node, channel), gathers the node's incoming then outgoing edges in list order, so each
// gradient element is written once, without atomics.
#include "graph_smoothness/graph_smoothness_cuda.h"

#include "common/dispatch.cuh"
#include "common/grid.cuh"
#include "common/launch.cuh"
#include "common/reduced.cuh"
#include "common/rigid_math.h"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"

#include <type_traits>

namespace sirenpose {
namespace cuda {
namespace {

template <typename T>
using fac_t = typename std::conditional<std::is_same<T, double>::value, double, float>::type;

// The incoming gradient as the kernels receive it; term_grad() reads it on the device.
template <typename T>
struct TermGradSource {
  Reduce reduction;
  const T* grad;
  const double* denom;
  SP_HD TermGrad<T> get() const { return term_grad(reduction, grad, denom); }
};

template <typename T>
struct SmoothData {
  const T* f;
  const int64_t* src;
  const int64_t* dst;
  const int64_t *in_ptr, *in_edge, *in_other, *out_ptr, *out_other, *out_pos;
  const T* edge_weight;
  int64_t batch, M, C, E;
  int penalty;

  SP_HD bool valid(int64_t n) const { return n >= 0 && n < M; }
  SP_HD double weight(int64_t e) const {
    return edge_weight ? static_cast<double>(to_acc(edge_weight[e])) : 1.0;
  }
  // ||f_j - f_i||^2 of batch entry b, in double.
  SP_HD double sq(int64_t b, int64_t j, int64_t i) const {
    const T* fj = f + (b * M + j) * C;
    const T* fi = f + (b * M + i) * C;
    double s = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const double d = static_cast<double>(to_acc(fj[c])) - static_cast<double>(to_acc(fi[c]));
      s += d * d;
    }
    return s;
  }
};

template <typename T>
SmoothData<T> smooth_data(const GraphSmoothnessProblem& p) {
  const int64_t* inc = p.incidence;
  const int64_t* in_edge = inc + p.M + 1;
  const int64_t* in_other = in_edge + p.E;
  const int64_t* out_ptr = in_other + p.E;
  const int64_t* out_other = out_ptr + p.M + 1;
  return {static_cast<const T*>(p.features), p.edges, p.edges + p.E, inc, in_edge, in_other,
          out_ptr, out_other, out_other + p.E, static_cast<const T*>(p.edge_weight), p.batch, p.M,
          p.C, p.E, p.penalty};
}

template <typename T>
struct SmoothFinish {
  T* loss;  // nullptr for reduction none
  double* denom;
  Reduce reduction;
  bool weighted, norm;
  double batch, edges;

  SP_HD void operator()(const Sums<kGraphSmoothnessSums>& s) const {
    const double d = batch * ((weighted && !norm) ? s.v[1] : edges);
    denom[0] = d;
    if (loss) *loss = from_acc<T>(reduced_value(s.v[0], d, reduction));
  }
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
smooth_fwd_kernel(SmoothData<T> a, T* terms, double* partials, SmoothFinish<T> finish) {
  Sums<kGraphSmoothnessSums> s;
  const int64_t items = a.batch * a.E;
  for (int64_t it = global_thread(); it < items; it += grid_threads()) {
    int64_t e;
    const int64_t b = div_rem(it, a.E, &e);
    const int64_t j = a.src[e], i = a.dst[e];
    const double w = a.weight(e);
    const double v = a.valid(j) && a.valid(i) ? rigid::penalty_value(a.penalty, w, a.sq(b, j, i))
                                              : quiet_nan(0.0);
    if (terms) terms[it] = from_acc<T>(v);
    s.v[0] += v;
    if (b == 0) s.v[1] += w;
  }
  finish_block(s, partials, finish);
}

// Pass 1: factor of edge e (d(term)/d(f_j) = factor * (f_j - f_i)) at its outgoing place.
template <typename T>
__global__ void __launch_bounds__(kThreads)
smooth_factor_kernel(SmoothData<T> a, TermGradSource<T> source, fac_t<T>* factors) {
  const TermGrad<T> g = source.get();
  const int64_t items = a.batch * a.E;
  for (int64_t it = global_thread(); it < items; it += grid_threads()) {
    int64_t e;
    const int64_t b = div_rem(it, a.E, &e);
    const int64_t j = a.src[e], i = a.dst[e], k = a.out_pos[e];
    if (k < 0 || k >= a.E) continue;  // an inconsistent incidence: pass 2 poisons with NaN
    const double f = a.valid(j) && a.valid(i)
        ? static_cast<double>(g.at(it)) * rigid::penalty_factor(a.penalty, a.weight(e), a.sq(b, j, i))
        : quiet_nan(0.0);
    factors[b * a.E + k] = static_cast<fac_t<T>>(f);
  }
}

// Pass 2: gradient element (b, n, c).
template <typename T>
__global__ void __launch_bounds__(kThreads)
smooth_gather_kernel(SmoothData<T> a, TermGradSource<T> source, const fac_t<T>* factors,
                     T* grad) {
  const TermGrad<T> g = source.get();
  const int64_t total = a.batch * a.M * a.C;
  for (int64_t x = global_thread(); x < total; x += grid_threads()) {
    int64_t rest, c;
    const int64_t b = div_rem(x, a.M * a.C, &rest), n = div_rem(rest, a.C, &c);
    const double fn = static_cast<double>(to_acc(a.f[(b * a.M + n) * a.C + c]));
    double acc = 0.0;
    for (int64_t k = a.in_ptr[n]; k < a.in_ptr[n + 1]; ++k) {
      const int64_t e = a.in_edge[k], j = a.in_other[k];
      if (e < 0 || e >= a.E || !a.valid(j)) {
        acc = quiet_nan(0.0);
        break;
      }
      const double fac = static_cast<double>(g.at(b * a.E + e)) *
                         rigid::penalty_factor(a.penalty, a.weight(e), a.sq(b, j, n));
      acc -= fac * (static_cast<double>(to_acc(a.f[(b * a.M + j) * a.C + c])) - fn);
    }
    for (int64_t k = a.out_ptr[n]; k < a.out_ptr[n + 1]; ++k) {
      const int64_t i = a.out_other[k];
      if (!a.valid(i)) {
        acc = quiet_nan(0.0);
        break;
      }
      acc += static_cast<double>(factors[b * a.E + k]) *
             (fn - static_cast<double>(to_acc(a.f[(b * a.M + i) * a.C + c])));
    }
    grad[x] = from_acc<T>(acc);
  }
}

}  // namespace

cudaError_t graph_smoothness_fwd(const GraphSmoothnessProblem& p, Reduce reduction, void* loss,
                                 void* terms, double* denom, double* scratch, int64_t blocks,
                                 cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const bool none = reduction == Reduce::kNone;
    const SmoothFinish<T> finish{none ? nullptr : static_cast<T*>(loss), denom, reduction,
                                 p.edge_weight != nullptr, p.penalty == rigid::kNorm,
                                 static_cast<double>(p.batch), static_cast<double>(p.E)};
    smooth_fwd_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        smooth_data<T>(p), none ? static_cast<T*>(terms) : nullptr, scratch, finish);
    launch_final_pass<kGraphSmoothnessSums>(scratch, blocks, finish, stream);
    return cudaGetLastError();
  });
}

cudaError_t graph_smoothness_bwd(const GraphSmoothnessProblem& p, Reduce reduction,
                                 const void* grad, const double* denom, void* factors,
                                 void* grad_features, cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const TermGradSource<T> source{reduction, static_cast<const T*>(grad), denom};
    const SmoothData<T> a = smooth_data<T>(p);
    smooth_factor_kernel<T><<<static_cast<unsigned>(elementwise_blocks(p.batch * p.E)), kThreads,
                              0, stream>>>(a, source, static_cast<fac_t<T>*>(factors));
    smooth_gather_kernel<T><<<static_cast<unsigned>(elementwise_blocks(p.batch * p.M * p.C)),
                              kThreads, 0, stream>>>(a, source, static_cast<const fac_t<T>*>(factors),
                                                     static_cast<T*>(grad_features));
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace sirenpose
