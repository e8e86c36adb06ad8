// The rigidity trio on CUDA. Relative rotations of every (batch entry, frame pair, node) first;
// forward: one thread per (batch entry, frame, edge), fixed-grid two-pass sums; backward: one
// thread per (batch entry, frame, edge) writes the edge's factors at its place in the outgoing
// lists, then one thread per (batch entry, node) walks the frames, gathering its incoming and
// outgoing edges in list order, the frame t+1 part carried in registers: no atomics.
#include "rigidity/rigidity_cuda.h"

#include <type_traits>

#include "common/dispatch.cuh"
#include "common/grid.cuh"
#include "common/reduced.cuh"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"
#include "rigidity/rigidity_terms.h"

namespace sirenpose {
namespace cuda {
namespace {

using rigid::kRel;
static_assert(kRel == kRigidityRel, "the glue sizes the scratch with kRigidityRel");

template <typename T>
using fac_t = typename std::conditional<std::is_same<T, double>::value, double, float>::type;

// One slice (batch entry b, frames t and t + 1) as rigidity_terms.h wants it.
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
  SP_HD double p_at(int64_t n, int c) const { return rel_at(n * kRel + c); }
  SP_HD void rotation_at(int64_t n, double R[9]) const {
    for (int k = 0; k < 9; ++k) R[k] = rel_at(n * kRel + 4 + k);
  }
};

template <typename T>
struct TrioData {
  const T* x;
  const T* q;
  const int64_t* src;
  const int64_t* dst;
  const int64_t *in_ptr, *in_edge, *in_other, *out_ptr, *out_other, *out_pos;
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
TrioData<T> trio_data(const RigidityProblem& p, void* rel) {
  const int64_t* inc = p.incidence;
  const int64_t* in_edge = inc + p.M + 1;
  const int64_t* in_other = in_edge + p.E;
  const int64_t* out_ptr = in_other + p.E;
  const int64_t* out_other = out_ptr + p.M + 1;
  return {static_cast<const T*>(p.positions), static_cast<const T*>(p.quaternions), p.edges,
          p.edges + p.E, inc, in_edge, in_other, out_ptr, out_other, out_other + p.E,
          static_cast<const T*>(p.rest_length), static_cast<const T*>(p.edge_weight),
          static_cast<fac_t<T>*>(rel), p.batch, p.T, p.M, p.E, p.terms, p.penalty};
}

template <typename T>
__global__ void __launch_bounds__(kThreads) relative_kernel(TrioData<T> a) {
  const int64_t total = a.batch * a.pairs() * a.M;
  for (int64_t it = global_thread(); it < total; it += grid_threads()) {
    int64_t rest, n;
    const int64_t b = div_rem(it, a.pairs() * a.M, &rest), t = div_rem(rest, a.M, &n);
    double qa[4], qb[4], R[9];
    a.quaternion(b, t + 1, n, qa);
    a.quaternion(b, t, n, qb);
    rigid::RelativeRotation<double> rr;
    rr.compute(qa, qb);
    rigid::rotation(rr.p, R);
    fac_t<T>* out = a.rel + it * kRel;
    for (int k = 0; k < 4; ++k) out[k] = static_cast<fac_t<T>>(rr.p[k]);
    for (int k = 0; k < 9; ++k) out[4 + k] = static_cast<fac_t<T>>(R[k]);
  }
}

template <typename T>
struct TrioFinish {
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

template <typename T>
__global__ void __launch_bounds__(kThreads)
trio_fwd_kernel(TrioData<T> a, T* out0, T* out1, T* out2, double* partials, TrioFinish<T> finish) {
  Sums<kRigiditySums> s;
  const int64_t items = a.batch * a.T_ * a.E;
  T* outs[3] = {out0, out1, out2};
  for (int64_t it = global_thread(); it < items; it += grid_threads()) {
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
  finish_block(s, partials, finish);
}

// The incoming gradients of the three terms, read on the device.
template <typename T>
struct TrioGrads {
  Reduce reduction;
  const T* grad[3];
  const double* denom;
  double lambdas[3];
  // d(loss)/d(term k) of the term at flat index `index` (of that term's own layout).
  SP_HD double at(int k, int64_t index) const {
    if (reduction == Reduce::kNone) return static_cast<double>(to_acc(grad[k][index]));
    return lambdas[k] * reduced_coef(static_cast<double>(to_acc(grad[0][0])), denom[k], reduction);
  }
};

template <typename T>
SP_HD void edge_factors(const TrioData<T>& a, const TrioGrads<T>& g, const DevSlice<T>& sl,
                        const rigid::EdgeResiduals& er, int64_t b, int64_t t, int64_t e, double f[3]) {
  const int64_t pair_row = (b * a.pairs() + t) * a.E + e, iso_row = (b * a.T_ + t) * a.E + e;
  const double c[3] = {sl.rigid ? g.at(0, pair_row) : 0.0, sl.rot ? g.at(1, pair_row) : 0.0,
                       sl.iso ? g.at(2, iso_row) : 0.0};
  er.factors(sl, a.penalty, a.weight(e), a.rest_at(e), c, f);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
trio_factor_kernel(TrioData<T> a, TrioGrads<T> g, fac_t<T>* factors) {
  const int64_t items = a.batch * a.T_ * a.E;
  for (int64_t it = global_thread(); it < items; it += grid_threads()) {
    int64_t rest, e;
    const int64_t b = div_rem(it, a.T_ * a.E, &rest), t = div_rem(rest, a.E, &e);
    const int64_t j = a.src[e], i = a.dst[e], k = a.out_pos[e];
    if (k < 0 || k >= a.E) continue;  // an inconsistent incidence: the gather poisons with NaN
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
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
trio_gather_kernel(TrioData<T> a, TrioGrads<T> g, const fac_t<T>* factors, T* gx, T* gq) {
  const int64_t total = a.batch * a.M;
  const double nan = quiet_nan(0.0);
  for (int64_t it = global_thread(); it < total; it += grid_threads()) {
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
}

}  // namespace

cudaError_t rigidity_fwd(const RigidityProblem& p, Reduce reduction, void* loss, void* const terms[3],
                         double* denom, void* rel, double* scratch, int64_t blocks,
                         cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const TrioData<T> a = trio_data<T>(p, rel);
    if ((p.terms & (rigid::kRigid | rigid::kRotation)) && a.pairs() * p.M * p.batch > 0)
      relative_kernel<T><<<static_cast<unsigned>(elementwise_blocks(p.batch * a.pairs() * p.M)),
                           kThreads, 0, stream>>>(a);
    const bool none = reduction == Reduce::kNone;
    TrioFinish<T> finish{none ? nullptr : static_cast<T*>(loss),
                         {static_cast<T*>(terms[0]), static_cast<T*>(terms[1]), static_cast<T*>(terms[2])},
                         denom, reduction, p.terms, p.penalty, p.edge_weight != nullptr,
                         static_cast<double>(p.batch * a.pairs()), static_cast<double>(p.batch * p.T),
                         static_cast<double>(p.E), {p.lambdas[0], p.lambdas[1], p.lambdas[2]}};
    trio_fwd_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        a, none ? static_cast<T*>(terms[0]) : nullptr, none ? static_cast<T*>(terms[1]) : nullptr,
        none ? static_cast<T*>(terms[2]) : nullptr, scratch, finish);
    launch_final_pass<kRigiditySums>(scratch, blocks, finish, stream);
    return cudaGetLastError();
  });
}

cudaError_t rigidity_bwd(const RigidityProblem& p, Reduce reduction, const void* const grads[3],
                         const double* denom, void* rel, void* factors, void* grad_positions,
                         void* grad_quaternions, cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const TrioData<T> a = trio_data<T>(p, rel);
    if ((p.terms & (rigid::kRigid | rigid::kRotation)) && a.pairs() * p.M * p.batch > 0)
      relative_kernel<T><<<static_cast<unsigned>(elementwise_blocks(p.batch * a.pairs() * p.M)),
                           kThreads, 0, stream>>>(a);
    const TrioGrads<T> g{reduction,
                         {static_cast<const T*>(grads[0]), static_cast<const T*>(grads[1]),
                          static_cast<const T*>(grads[2])},
                         denom, {p.lambdas[0], p.lambdas[1], p.lambdas[2]}};
    trio_factor_kernel<T><<<static_cast<unsigned>(elementwise_blocks(p.batch * p.T * p.E)),
                            kThreads, 0, stream>>>(a, g, static_cast<fac_t<T>*>(factors));
    trio_gather_kernel<T><<<static_cast<unsigned>(elementwise_blocks(p.batch * p.M)), kThreads, 0,
                            stream>>>(a, g, static_cast<const fac_t<T>*>(factors),
                                      static_cast<T*>(grad_positions), static_cast<T*>(grad_quaternions));
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace sirenpose
