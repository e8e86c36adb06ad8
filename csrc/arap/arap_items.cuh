// ARAP, the per-item work of the CUDA kernels: host+device code, run by the kernel shells of
// common/launch.cuh and by the host emulation of the tests alike. One item per (batch entry,
// frame, centre) gathers its covariance over its incoming edges in list order and solves its
// rotation (Horn's method, double) into the state; forward: one item per (batch entry, frame,
// edge), fixed-grid two-pass sums; backward: edge factors written at their outgoing place, then
// one item per (batch entry, frame, node) gathers its incoming and outgoing edges: no atomics.
#pragma once

#include "arap/arap_cuda.h"
#include "common/dispatch.cuh"
#include "common/graph_lists.cuh"
#include "common/grid.cuh"
#include "common/reduced.cuh"
#include "common/rigid_math.h"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"

namespace sirenpose {
namespace cuda {
namespace arap {

template <typename T>
struct Data : GraphLists {
  const T* x;
  const T* rest;
  int64_t rest_stride;
  const T* w;
  int64_t batch, T_, M, E;

  SP_HD bool valid(int64_t n) const { return n >= 0 && n < M; }
  SP_HD double weight(int64_t e) const { return w ? static_cast<double>(to_acc(w[e])) : 1.0; }
  SP_HD void offset(const T* p, int64_t j, int64_t i, double o[3]) const {
    for (int k = 0; k < 3; ++k)
      o[k] = static_cast<double>(to_acc(p[j * 3 + k])) - static_cast<double>(to_acc(p[i * 3 + k]));
  }
  SP_HD const T* frame(int64_t b, int64_t t) const { return x + (b * T_ + t) * M * 3; }
  SP_HD const T* rest_of(int64_t b) const { return rest + b * rest_stride; }
  // r = o - R_i (X_j - X_i) at frame t of batch entry b; R: the centre's rotation.
  SP_HD void residual(int64_t b, int64_t t, int64_t j, int64_t i, const double* R, double r[3]) const {
    double o[3], d[3];
    offset(frame(b, t), j, i, o);
    offset(rest_of(b), j, i, d);
    for (int a = 0; a < 3; ++a) r[a] = o[a] - (R[a * 3] * d[0] + R[a * 3 + 1] * d[1] + R[a * 3 + 2] * d[2]);
  }
};

template <typename T>
Data<T> data(const ArapProblem& p) {
  return {graph_lists(p.edges, p.incidence, p.M, p.E), static_cast<const T*>(p.positions),
          static_cast<const T*>(p.rest), p.rest_stride, static_cast<const T*>(p.edge_weight),
          p.batch, p.T, p.M, p.E};
}

// Item (b, t, n): the centre's rotation from its covariance over its incoming edges.
template <typename T>
struct RotationItems {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  double* rot;

  SP_HD int64_t count() const { return a.batch * a.T_ * a.M; }
  SP_HD int context() const { return 0; }
  SP_HD void operator()(int64_t it, int) const {
    int64_t rest, n;
    const int64_t b = div_rem(it, a.T_ * a.M, &rest), t = div_rem(rest, a.M, &n);
    double S[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t k = a.in_ptr[n]; k < a.in_ptr[n + 1]; ++k) {
      const int64_t e = a.in_edge[k], j = a.in_other[k];
      if (e < 0 || e >= a.E || !a.valid(j)) {
        S[0] = quiet_nan(0.0);
        break;
      }
      double o[3], d[3];
      a.offset(a.frame(b, t), j, n, o);
      a.offset(a.rest_of(b), j, n, d);
      const double w = a.weight(e);
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) S[r * 3 + c] += w * d[r] * o[c];
    }
    rigid::horn_rotation(S, rot + it * 9);
  }
};

template <typename T>
struct Finish {
  T* loss;  // nullptr for reduction none
  double* denom;
  Reduce reduction;
  bool weighted;
  double frames, edges;  // batch * T, E

  SP_HD void operator()(const Sums<kArapSums>& s) const {
    const double d = frames * (weighted ? s.v[1] : edges);
    denom[0] = d;
    if (loss) *loss = from_acc<T>(reduced_value(s.v[0], d, reduction));
  }
};

// Item (b, t, e) of the forward: w_e ||r||^2 (stored for reduction none) and, in the first
// frame of batch entry 0, its weight.
template <typename T>
struct FwdItems {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  const double* rot;
  T* terms;  // nullptr unless reduction none

  SP_HD int64_t count() const { return a.batch * a.T_ * a.E; }
  SP_HD void operator()(int64_t it, Sums<kArapSums>& s) const {
    int64_t rest, e;
    const int64_t bt = div_rem(it, a.E, &e);
    const int64_t b = div_rem(bt, a.T_, &rest), t = rest;
    const int64_t j = a.src[e], i = a.dst[e];
    const double w = a.weight(e);
    double v = quiet_nan(0.0);
    if (a.valid(j) && a.valid(i)) {
      double r[3];
      a.residual(b, t, j, i, rot + (bt * a.M + i) * 9, r);
      v = w * (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
    }
    if (terms) terms[it] = from_acc<T>(v);
    s.v[0] += v;
    if (bt == 0) s.v[1] += w;
  }
};

// The incoming gradient of term n, in double (the reduced coefficient is not rounded).
template <typename T>
struct Grad {
  Reduce reduction;
  const T* grad;
  const double* denom;
  SP_HD double at(int64_t index) const {
    if (reduction == Reduce::kNone) return static_cast<double>(to_acc(grad[index]));
    return reduced_coef(static_cast<double>(to_acc(grad[0])), denom[0], reduction);
  }
  SP_HD Grad context() const { return *this; }
};

// Pass 1, item (b, t, e): d(term)/d(r) = 2 w_e c_e, at the edge's outgoing place.
template <typename T>
struct FactorItems : Grad<T> {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  fac_t<T>* factors;

  SP_HD int64_t count() const { return a.batch * a.T_ * a.E; }
  SP_HD void operator()(int64_t it, const Grad<T>& g) const {
    int64_t e;
    const int64_t bt = div_rem(it, a.E, &e);
    const int64_t k = a.out_pos[e];
    if (k < 0 || k >= a.E) return;  // an inconsistent incidence: pass 2 poisons with NaN
    factors[bt * a.E + k] = static_cast<fac_t<T>>(2.0 * a.weight(e) * g.at(it));
  }
};

// Pass 2, item (b, t, n): the node's gradient, incoming edges (n the centre) then outgoing.
template <typename T>
struct GatherItems : Grad<T> {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  const double* rot;
  const fac_t<T>* factors;
  T* grad_positions;

  SP_HD int64_t count() const { return a.batch * a.T_ * a.M; }
  SP_HD void operator()(int64_t it, const Grad<T>& g) const {
    int64_t rest, n;
    const int64_t bt = div_rem(it, a.M, &n);
    const int64_t b = div_rem(bt, a.T_, &rest), t = rest;
    double acc[3] = {0, 0, 0}, r[3];
    bool bad = false;
    for (int64_t k = a.in_ptr[n]; k < a.in_ptr[n + 1]; ++k) {
      const int64_t e = a.in_edge[k], j = a.in_other[k];
      if (e < 0 || e >= a.E || !a.valid(j)) {
        bad = true;
        break;
      }
      a.residual(b, t, j, n, rot + (bt * a.M + n) * 9, r);
      const double f = 2.0 * a.weight(e) * g.at(bt * a.E + e);
      for (int c = 0; c < 3; ++c) acc[c] -= f * r[c];
    }
    for (int64_t k = a.out_ptr[n]; k < a.out_ptr[n + 1] && !bad; ++k) {
      const int64_t i = a.out_other[k];
      if (!a.valid(i)) {
        bad = true;
        break;
      }
      a.residual(b, t, n, i, rot + (bt * a.M + i) * 9, r);
      const double f = static_cast<double>(factors[bt * a.E + k]);
      for (int c = 0; c < 3; ++c) acc[c] += f * r[c];
    }
    for (int c = 0; c < 3; ++c)
      grad_positions[it * 3 + c] = from_acc<T>(bad ? quiet_nan(0.0) : acc[c]);
  }
};

// state: the denominator, then the rotations (written here).
template <typename Exec>
cudaError_t fwd(const Exec& exec, const ArapProblem& p, Reduce reduction, void* loss, void* terms,
                double* state, double* scratch, int64_t blocks) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const Data<T> a = data<T>(p);
    double* rot = state + 1;
    exec.for_each(RotationItems<T>{a, rot});
    const bool none = reduction == Reduce::kNone;
    const Finish<T> finish{none ? nullptr : static_cast<T*>(loss), state, reduction,
                           p.edge_weight != nullptr, static_cast<double>(p.batch * p.T),
                           static_cast<double>(p.E)};
    exec.template reduce<kArapSums>(
        FwdItems<T>{a, rot, none ? static_cast<T*>(terms) : nullptr}, blocks, scratch, finish);
    return exec.status();
  });
}

template <typename Exec>
cudaError_t bwd(const Exec& exec, const ArapProblem& p, Reduce reduction, const void* grad,
                const double* state, void* factors, void* grad_positions) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const Data<T> a = data<T>(p);
    const Grad<T> g{reduction, static_cast<const T*>(grad), state};
    exec.for_each(FactorItems<T>{g, a, static_cast<fac_t<T>*>(factors)});
    exec.for_each(GatherItems<T>{g, a, state + 1, static_cast<const fac_t<T>*>(factors),
                                 static_cast<T*>(grad_positions)});
    return exec.status();
  });
}

}  // namespace arap
}  // namespace cuda
}  // namespace sirenpose
