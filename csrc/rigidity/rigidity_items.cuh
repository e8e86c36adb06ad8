// The rigidity trio, the per-item work of the CUDA kernels: host+device code, run by the kernel
// shells of common/launch.cuh and by the host emulation of the tests alike. Relative rotations
// of every (batch entry, frame pair, node) first; forward: one item per (batch entry, frame,
// edge), fixed-grid two-pass sums; backward: one item per (batch entry, frame, edge) writes the
// edge's factors at its place in the outgoing lists, then one item per (batch entry, node) walks
// the frames, gathering its incoming and outgoing edges in list order, the frame t+1 part
// carried in registers: no atomics.
#pragma once

#include "common/dispatch.cuh"
#include "common/graph_lists.cuh"
#include "common/grid.cuh"
#include "common/reduced.cuh"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"
#include "rigidity/rigidity_cuda.h"
#include "rigidity/rigidity_terms.h"

namespace sirenpose {
namespace cuda {
namespace trio {

using rigid::kRel;
static_assert(kRel == kRigidityRel, "the glue sizes the scratch with kRigidityRel");

template <typename T>
struct DevSlice {
  const T* x0;
  const T* x1;
  const fac_t<T>* rel;
  bool rigid, rot, iso;
  static SP_HD void offset(const T* x, int64_t j, int64_t i, double o[3]) {
    for (int k = 0; k < 3; ++k)
      o[k] = static_cast<double>(to_acc(x[j * 3 + k])) - static_cast<double>(to_acc(x[i * 3 + k]));
  }
  SP_HD double rel_at(int64_t k) const { return static_cast<double>(rel[k]); }
  // Node n's relative rotation p, and R(p) recomputed from the stored p as the CPU kernel
  // does, so that both give the same bits.
  SP_HD double p_at(int64_t n, int c) const { return rel_at(n * kRel + c); }
  SP_HD void rotation_at(int64_t n, double R[9]) const {
    const double q[4] = {p_at(n, 0), p_at(n, 1), p_at(n, 2), p_at(n, 3)};
    rigid::rotation(q, R);
  }
};

template <typename T>
struct Data : GraphLists {
  const T* x;
  const T* q;
  const T* rest;
  const T* w;
  fac_t<T>* rel;
  int64_t batch, T_, M, E;
  int terms, penalty;

  SP_HD int64_t pairs() const { return T_ > 1 ? T_ - 1 : 0; }
  SP_HD bool valid(int64_t n) const { return n >= 0 && n < M; }
  SP_HD double weight(int64_t e) const { return w ? static_cast<double>(to_acc(w[e])) : 1.0; }
  SP_HD double rest_at(int64_t e) const { return rest ? static_cast<double>(to_acc(rest[e])) : 0.0; }
  SP_HD DevSlice<T> slice(int64_t b, int64_t t) const {
    const bool pair = t + 1 < T_;
    DevSlice<T> s{nullptr, nullptr, nullptr, pair && (terms & rigid::kRigid),
                  pair && (terms & rigid::kRotation), (terms & rigid::kIsometry) != 0};
    if (x) {
      s.x0 = x + (b * T_ + t) * M * 3;
      if (s.rigid) s.x1 = s.x0 + M * 3;
    }
    if (s.rigid || s.rot) s.rel = rel + (b * pairs() + t) * M * kRel;
    return s;
  }
  // Raw quaternion of node n at frame t of batch entry b, in double.
  SP_HD void quaternion(int64_t b, int64_t t, int64_t n, double out[4]) const {
    const T* p = q + ((b * T_ + t) * M + n) * 4;
    for (int k = 0; k < 4; ++k) out[k] = static_cast<double>(to_acc(p[k]));
  }
};

template <typename T>
Data<T> data(const RigidityProblem& p, void* rel) {
  return {graph_lists(p.edges, p.incidence, p.M, p.E), static_cast<const T*>(p.positions),
          static_cast<const T*>(p.quaternions), static_cast<const T*>(p.rest_length),
          static_cast<const T*>(p.edge_weight), static_cast<fac_t<T>*>(rel), p.batch, p.T, p.M, p.E, p.terms, p.penalty};
}

// Item (b, t, n): node n's relative rotation p between frames t and t + 1.
template <typename T>
struct RelativeItems {
  static constexpr int kMinBlocks = 1;
  Data<T> a;

  SP_HD int64_t count() const { return a.batch * a.pairs() * a.M; }
  SP_HD int context() const { return 0; }
  SP_HD void operator()(int64_t it, int) const {
    int64_t rest, n;
    const int64_t b = div_rem(it, a.pairs() * a.M, &rest), t = div_rem(rest, a.M, &n);
    double qa[4], qb[4];
    a.quaternion(b, t + 1, n, qa);
    a.quaternion(b, t, n, qb);
    rigid::RelativeRotation<double> rr;
    rr.compute(qa, qb);
    // Only p is stored: the passes rebuild R(p) from it (DevSlice::rotation_at), as the CPU does.
    fac_t<T>* out = a.rel + it * kRel;
    for (int k = 0; k < 4; ++k) out[k] = static_cast<fac_t<T>>(rr.p[k]);
  }
};

template <typename T>
struct Finish {
  T* loss;  // nullptr for reduction none
  T* term[3];
  double* denom;
  Reduce reduction;
  int terms, penalty;
  bool weighted;
  double pairs, frames, edges, lambdas[3];  // pairs = batch (T-1), frames = batch T

  SP_HD void operator()(const Sums<kRigiditySums>& s) const {
    const double per_slice = (weighted && penalty == rigid::kSquared) ? s.v[3] : edges;
    const double d[3] = {pairs * per_slice, pairs * per_slice, frames * per_slice};
    double total = 0.0;
    for (int k = 0; k < 3; ++k) {
      denom[k] = d[k];
      const double v = (terms >> k & 1) ? reduced_value(s.v[k], d[k], reduction) : 0.0;
      total += lambdas[k] * v;
      if (loss) *term[k] = from_acc<T>(v);
    }
    if (loss) *loss = from_acc<T>(total);
  }
};

// Item (b, t, e) of the forward: the edge's terms that are on at frame t (stored for reduction
// none), and in the first slice its weight.
template <typename T>
struct FwdItems {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  T* outs[3];  // nullptr unless reduction none (and the term on)

  SP_HD int64_t count() const { return a.batch * a.T_ * a.E; }
  SP_HD void operator()(int64_t it, Sums<kRigiditySums>& s) const {
    int64_t rest, e;
    const int64_t b = div_rem(it, a.T_ * a.E, &rest), t = div_rem(rest, a.E, &e);
    const int64_t j = a.src[e], i = a.dst[e];
    const double w = a.weight(e);
    if (b == 0 && t == 0) s.v[3] += w;
    const DevSlice<T> sl = a.slice(b, t);
    double v[3];
    if (a.valid(j) && a.valid(i)) {
      rigid::EdgeResiduals er;
      er.compute(sl, j, i);
      er.values(sl, a.penalty, w, a.rest_at(e), v);
    } else {
      v[0] = v[1] = v[2] = quiet_nan(0.0);
    }
    const bool on[3] = {sl.rigid, sl.rot, sl.iso};
    const int64_t rows[3] = {(b * a.pairs() + t) * a.E, (b * a.pairs() + t) * a.E, (b * a.T_ + t) * a.E};
    for (int k = 0; k < 3; ++k) {
      if (!on[k]) continue;
      if (outs[k]) outs[k][rows[k] + e] = from_acc<T>(v[k]);
      s.v[k] += v[k];
    }
  }
};

// The incoming gradients of the three terms, read on the device.
template <typename T>
struct Grads {
  Reduce reduction;
  const T* grad[3];
  const double* denom;
  double lambdas[3];
  // d(loss)/d(term k) of the term at flat index `index` (of that term's own layout).
  SP_HD double at(int k, int64_t index) const {
    if (reduction == Reduce::kNone) return static_cast<double>(to_acc(grad[k][index]));
    return lambdas[k] * reduced_coef(static_cast<double>(to_acc(grad[0][0])), denom[k], reduction);
  }
  SP_HD Grads context() const { return *this; }
};

template <typename T>
SP_HD void edge_factors(const Data<T>& a, const Grads<T>& g, const DevSlice<T>& sl,
                        const rigid::EdgeResiduals& er, int64_t b, int64_t t, int64_t e, double f[3]) {
  const int64_t pair_row = (b * a.pairs() + t) * a.E + e, iso_row = (b * a.T_ + t) * a.E + e;
  const double c[3] = {sl.rigid ? g.at(0, pair_row) : 0.0, sl.rot ? g.at(1, pair_row) : 0.0,
                       sl.iso ? g.at(2, iso_row) : 0.0};
  er.factors(sl, a.penalty, a.weight(e), a.rest_at(e), c, f);
}

// Pass 1, item (b, t, e): the edge's factors at its place in the outgoing lists.
template <typename T>
struct FactorItems : Grads<T> {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  fac_t<T>* factors;

  SP_HD int64_t count() const { return a.batch * a.T_ * a.E; }
  SP_HD void operator()(int64_t it, const Grads<T>& g) const {
    int64_t rest, e;
    const int64_t b = div_rem(it, a.T_ * a.E, &rest), t = div_rem(rest, a.E, &e);
    const int64_t j = a.src[e], i = a.dst[e], k = a.out_pos[e];
    if (k < 0 || k >= a.E) return;  // an inconsistent incidence: the gather poisons with NaN
    double f[3] = {quiet_nan(0.0), quiet_nan(0.0), quiet_nan(0.0)};
    if (a.valid(j) && a.valid(i)) {
      const DevSlice<T> sl = a.slice(b, t);
      rigid::EdgeResiduals er;
      er.compute(sl, j, i);
      edge_factors(a, g, sl, er, b, t, e, f);
    }
    fac_t<T>* out = factors + ((b * a.T_ + t) * a.E + k) * 3;
    for (int c = 0; c < 3; ++c) out[c] = static_cast<fac_t<T>>(f[c]);
  }
};

// Pass 2, item (b, n): node n's gradients over all frames, incoming then outgoing edges per
// frame; frame t + 1's part of a frame pair is carried to the next frame.
template <typename T>
struct GatherItems : Grads<T> {
  static constexpr int kMinBlocks = 1;
  Data<T> a;
  const fac_t<T>* factors;
  T* gx;  // a null output is not written
  T* gq;

  SP_HD int64_t count() const { return a.batch * a.M; }
  SP_HD void operator()(int64_t it, const Grads<T>& g) const {
    const double nan = quiet_nan(0.0);
    int64_t n;
    const int64_t b = div_rem(it, a.M, &n);
    double carry_x[3] = {0, 0, 0}, carry_q[4] = {0, 0, 0, 0};
    for (int64_t t = 0; t < a.T_; ++t) {
      const DevSlice<T> sl = a.slice(b, t);
      rigid::NodeGrad ng;
      for (int c = 0; c < 3; ++c) ng.gx0[c] = carry_x[c];
      bool bad = false;
      for (int64_t k = a.in_ptr[n]; k < a.in_ptr[n + 1] && !bad; ++k) {
        const int64_t e = a.in_edge[k], j = a.in_other[k];
        if (e < 0 || e >= a.E || !a.valid(j)) {
          bad = true;
          break;
        }
        rigid::EdgeResiduals er;
        er.compute(sl, j, n);
        double f[3];
        edge_factors(a, g, sl, er, b, t, e, f);
        ng.add(sl, er, f, -1.0);
      }
      for (int64_t k = a.out_ptr[n]; k < a.out_ptr[n + 1] && !bad; ++k) {
        const int64_t i = a.out_other[k];
        if (!a.valid(i)) {
          bad = true;
          break;
        }
        rigid::EdgeResiduals er;
        er.compute(sl, n, i);
        const fac_t<T>* fk = factors + ((b * a.T_ + t) * a.E + k) * 3;
        const double f[3] = {static_cast<double>(fk[0]), static_cast<double>(fk[1]),
                             static_cast<double>(fk[2])};
        ng.add(sl, er, f, 1.0);
      }
      double gq0[4] = {0, 0, 0, 0}, gq1[4] = {0, 0, 0, 0};
      if (sl.rigid || sl.rot) {
        double qa[4], qb[4];
        a.quaternion(b, t + 1, n, qa);
        a.quaternion(b, t, n, qb);
        rigid::RelativeRotation<double> rr;
        rr.compute(qa, qb);
        if (sl.rigid) rigid::rotation_backward(rr.p, ng.gR, ng.gp);
        rr.backward(ng.gp, gq1, gq0);
      }
      const int64_t row = (b * a.T_ + t) * a.M + n;
      if (gx)
        for (int c = 0; c < 3; ++c) gx[row * 3 + c] = from_acc<T>(bad ? nan : ng.gx0[c]);
      if (gq)
        for (int c = 0; c < 4; ++c) gq[row * 4 + c] = from_acc<T>(bad ? nan : carry_q[c] + gq0[c]);
      for (int c = 0; c < 3; ++c) carry_x[c] = ng.gx1[c];
      for (int c = 0; c < 4; ++c) carry_q[c] = gq1[c];
    }
  }
};

// The relative rotations into rel, when a term needs them.
template <typename Exec, typename T>
void relative(const Exec& exec, const RigidityProblem& p, const Data<T>& a) {
  if ((p.terms & (rigid::kRigid | rigid::kRotation)) && a.pairs() * p.M * p.batch > 0)
    exec.for_each(RelativeItems<T>{a});
}

template <typename Exec>
cudaError_t fwd(const Exec& exec, const RigidityProblem& p, Reduce reduction, void* loss,
                void* const terms[3], double* denom, void* rel, double* scratch, int64_t blocks) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const Data<T> a = data<T>(p, rel);
    relative(exec, p, a);
    const bool none = reduction == Reduce::kNone;
    T* const out[3] = {static_cast<T*>(terms[0]), static_cast<T*>(terms[1]),
                       static_cast<T*>(terms[2])};
    const Finish<T> finish{none ? nullptr : static_cast<T*>(loss), {out[0], out[1], out[2]},
                           denom, reduction, p.terms, p.penalty, p.edge_weight != nullptr,
                           static_cast<double>(p.batch * a.pairs()),
                           static_cast<double>(p.batch * p.T), static_cast<double>(p.E),
                           {p.lambdas[0], p.lambdas[1], p.lambdas[2]}};
    const FwdItems<T> items{a, {none ? out[0] : nullptr, none ? out[1] : nullptr,
                                none ? out[2] : nullptr}};
    exec.template reduce<kRigiditySums>(items, blocks, scratch, finish);
    return exec.status();
  });
}

template <typename Exec>
cudaError_t bwd(const Exec& exec, const RigidityProblem& p, Reduce reduction,
                const void* const grads[3], const double* denom, void* rel, void* factors,
                void* grad_positions, void* grad_quaternions) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const Data<T> a = data<T>(p, rel);
    relative(exec, p, a);
    const Grads<T> g{reduction,
                     {static_cast<const T*>(grads[0]), static_cast<const T*>(grads[1]),
                      static_cast<const T*>(grads[2])},
                     denom, {p.lambdas[0], p.lambdas[1], p.lambdas[2]}};
    exec.for_each(FactorItems<T>{g, a, static_cast<fac_t<T>*>(factors)});
    exec.for_each(GatherItems<T>{g, a, static_cast<const fac_t<T>*>(factors),
                                 static_cast<T*>(grad_positions),
                                 static_cast<T*>(grad_quaternions)});
    return exec.status();
  });
}

}  // namespace trio
}  // namespace cuda
}  // namespace sirenpose
