// Graph smoothness, the per-item work of the CUDA kernels: host+device code, run by the kernel
// shells of common/launch.cuh and by the host emulation of the tests alike. Terms
// pen(w_e, ||f_j - f_i||^2). Forward: one item per (batch entry, edge), fixed-grid two-pass
// sums. Backward: pass 1, one item per (batch entry, edge), writes the edge's factor where its
// neighbour will read it; pass 2, one item per (batch entry, node, channel), gathers the node's
// incoming then outgoing edges in list order, so each gradient element is written once, without
// atomics.
#pragma once

#include "common/dispatch.cuh"
#include "common/graph_lists.cuh"
#include "common/grid.cuh"
#include "common/reduced.cuh"
#include "common/rigid_math.h"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"
#include "graph_smoothness/graph_smoothness_cuda.h"

namespace sirenpose {
namespace cuda {
namespace smooth {

template <typename T>
struct Data : GraphLists {
  const T* f;
  const T* edge_weight;
  int64_t batch, M, C, E;
  int penalty;

  SP_HD bool valid(int64_t n) const { return n >= 0 && n < M; }
  SP_HD double weight(int64_t e) const {
    return edge_weight ? static_cast<double>(to_acc(edge_weight[e])) : 1.0;
  }
  SP_HD double at(int64_t b, int64_t n, int64_t c) const {
    return static_cast<double>(to_acc(f[(b * M + n) * C + c]));
  }
  // ||f_j - f_i||^2 of batch entry b, in double.
  SP_HD double sq(int64_t b, int64_t j, int64_t i) const {
    double s = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const double d = at(b, j, c) - at(b, i, c);
      s += d * d;
    }
    return s;
  }
};

template <typename T>
Data<T> data(const GraphSmoothnessProblem& p) {
  return {graph_lists(p.edges, p.incidence, p.M, p.E), static_cast<const T*>(p.features),
          static_cast<const T*>(p.edge_weight), p.batch, p.M, p.C, p.E, p.penalty};
}

template <typename T>
struct Finish {
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

// Item (b, e) of the forward: its term (stored for reduction none) and, in batch entry 0, its
// weight.
template <typename T>
struct FwdItems {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  T* terms;  // nullptr unless reduction none

  SP_HD int64_t count() const { return a.batch * a.E; }
  SP_HD void operator()(int64_t it, Sums<kGraphSmoothnessSums>& s) const {
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
};

// The incoming gradient of the backward's items, read once per thread on the device.
template <typename T>
struct GradSource {
  Reduce reduction;
  const T* grad;
  const double* denom;
  SP_HD TermGrad<T> context() const { return term_grad(reduction, grad, denom); }
};

// Pass 1, item (b, e): its factor (d(term)/d(f_j) = factor * (f_j - f_i)) at its outgoing place.
template <typename T>
struct FactorItems : GradSource<T> {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  fac_t<T>* factors;

  SP_HD int64_t count() const { return a.batch * a.E; }
  SP_HD void operator()(int64_t it, const TermGrad<T>& g) const {
    int64_t e;
    const int64_t b = div_rem(it, a.E, &e);
    const int64_t j = a.src[e], i = a.dst[e], k = a.out_pos[e];
    if (k < 0 || k >= a.E) return;  // an inconsistent incidence: pass 2 poisons with NaN
    const double f = a.valid(j) && a.valid(i)
        ? static_cast<double>(g.at(it)) * rigid::penalty_factor(a.penalty, a.weight(e), a.sq(b, j, i))
        : quiet_nan(0.0);
    factors[b * a.E + k] = static_cast<fac_t<T>>(f);
  }
};

// Pass 2, item (b, n, c): the gradient element, incoming edges (n the centre) then outgoing.
template <typename T>
struct GatherItems : GradSource<T> {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  const fac_t<T>* factors;
  T* grad_features;

  SP_HD int64_t count() const { return a.batch * a.M * a.C; }
  SP_HD void operator()(int64_t x, const TermGrad<T>& g) const {
    int64_t rest, c;
    const int64_t b = div_rem(x, a.M * a.C, &rest), n = div_rem(rest, a.C, &c);
    const double fn = a.at(b, n, c);
    double acc = 0.0;
    for (int64_t k = a.in_ptr[n]; k < a.in_ptr[n + 1]; ++k) {
      const int64_t e = a.in_edge[k], j = a.in_other[k];
      if (e < 0 || e >= a.E || !a.valid(j)) {
        acc = quiet_nan(0.0);
        break;
      }
      const double fac = static_cast<double>(g.at(b * a.E + e)) *
                         rigid::penalty_factor(a.penalty, a.weight(e), a.sq(b, j, n));
      acc -= fac * (a.at(b, j, c) - fn);
    }
    for (int64_t k = a.out_ptr[n]; k < a.out_ptr[n + 1]; ++k) {
      const int64_t i = a.out_other[k];
      if (!a.valid(i)) {
        acc = quiet_nan(0.0);
        break;
      }
      acc += static_cast<double>(factors[b * a.E + k]) * (fn - a.at(b, i, c));
    }
    grad_features[x] = from_acc<T>(acc);
  }
};

template <typename Exec>
cudaError_t fwd(const Exec& exec, const GraphSmoothnessProblem& p, Reduce reduction, void* loss,
                void* terms, double* denom, double* scratch, int64_t blocks) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const bool none = reduction == Reduce::kNone;
    const Finish<T> finish{none ? nullptr : static_cast<T*>(loss), denom, reduction,
                           p.edge_weight != nullptr, p.penalty == rigid::kNorm,
                           static_cast<double>(p.batch), static_cast<double>(p.E)};
    exec.template reduce<kGraphSmoothnessSums>(
        FwdItems<T>{data<T>(p), none ? static_cast<T*>(terms) : nullptr}, blocks, scratch, finish);
    return exec.status();
  });
}

template <typename Exec>
cudaError_t bwd(const Exec& exec, const GraphSmoothnessProblem& p, Reduce reduction,
                const void* grad, const double* denom, void* factors, void* grad_features) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const GradSource<T> source{reduction, static_cast<const T*>(grad), denom};
    const Data<T> a = data<T>(p);
    exec.for_each(FactorItems<T>{source, a, static_cast<fac_t<T>*>(factors)});
    exec.for_each(GatherItems<T>{source, a, static_cast<const fac_t<T>*>(factors),
                                 static_cast<T*>(grad_features)});
    return exec.status();
  });
}

}  // namespace smooth
}  // namespace cuda
}  // namespace sirenpose
