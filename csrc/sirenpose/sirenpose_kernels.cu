// SirenPose loss on CUDA: L_pos = sum_n w_n ||p_n - t_n||^2 and
// L_geo = sum_e w_e ||sin(w0 (p_i - p_j)) - sin(w0 (t_i - t_j))||^2, w_e = ew_e w_i w_j.
// Forward: one thread per keypoint row and per edge, fixed-grid two-pass sums. Backward: one
// thread per keypoint coordinate, gathering over the keypoint's incident edges in CSR order, so
// every gradient element is written once, without atomics.
#include "sirenpose/sirenpose_cuda.h"

#include "common/dispatch.cuh"
#include "common/grid.cuh"
#include "common/reduced.cuh"
#include "common/rows.cuh"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"

namespace sirenpose {
namespace cuda {
namespace {

template <typename T, typename I>
struct GraphData {
  const T* pred;
  const T* target;
  const I* src;  // edge_index[0]
  const I* dst;  // edge_index[1]
  RowWeight<T> weight;
  const T* edge_weight;
  int64_t batch, K, D, E;
  acc_t<T> omega0, lambda_geo;
  bool with_pos;

  SP_HD bool valid_node(int64_t n) const { return n >= 0 && n < K; }
  // w_e = ew_e * w_i * w_j, in double and in the CPU's order, so the edge-weight total (the
  // mean's denominator) matches the CPU's; one product per edge, so double costs nothing.
  SP_HD double edge_w(int64_t b, int64_t e, int64_t i, int64_t j) const {
    return (edge_weight ? static_cast<double>(to_acc(edge_weight[e])) : 1.0) *
           static_cast<double>(weight.at(b, i)) * static_cast<double>(weight.at(b, j));
  }
};

template <typename T, typename I>
GraphData<T, I> graph_data(const SirenPoseProblem& p) {
  const I* edges = static_cast<const I*>(p.edge_index);
  return {static_cast<const T*>(p.pred), static_cast<const T*>(p.target), edges, edges + p.E,
          {static_cast<const T*>(p.weight), p.weight_shared, p.K},
          static_cast<const T*>(p.edge_weight), p.batch, p.K, p.D, p.E,
          static_cast<acc_t<T>>(p.omega0), static_cast<acc_t<T>>(p.lambda_geo), p.with_pos};
}

// Edge e of batch entry b: its unweighted term ||sin(w0 dp) - sin(w0 dt)||^2 and w_e. An edge
// index outside [0, K) is never dereferenced; it makes both NaN.
template <typename T, typename I>
SP_HD void edge_term(const GraphData<T, I>& a, int64_t b, int64_t e, acc_t<T>* sq_out,
                     double* w_out) {
  using A = acc_t<T>;
  const int64_t i = static_cast<int64_t>(a.src[e]), j = static_cast<int64_t>(a.dst[e]);
  if (!a.valid_node(i) || !a.valid_node(j)) {
    *sq_out = quiet_nan(A(0));
    *w_out = quiet_nan(0.0);
    return;
  }
  const T* pi = a.pred + (b * a.K + i) * a.D;
  const T* pj = a.pred + (b * a.K + j) * a.D;
  const T* ti = a.target + (b * a.K + i) * a.D;
  const T* tj = a.target + (b * a.K + j) * a.D;
  A sq = 0;
  for (int64_t k = 0; k < a.D; ++k) {
    A sp, cp, st, ct;
    sin_cos(a.omega0 * (to_acc(pi[k]) - to_acc(pj[k])), &sp, &cp);
    sin_cos(a.omega0 * (to_acc(ti[k]) - to_acc(tj[k])), &st, &ct);
    const A r = sp - st;
    sq += r * r;
  }
  *sq_out = sq;
  *w_out = a.edge_w(b, e, i, j);
}

// Writes denom = (keypoint weight total, edge weight total) and the reduced components; the
// conventions of the CPU kernel (the keypoint total is only summed with the position term).
template <typename T>
struct GraphFinish {
  T* loss;  // these three are nullptr for reduction none
  T* pos;
  T* geo;
  double* denom;
  Reduce reduction;
  bool with_pos, weighted, edge_weighted;
  double rows, edges;  // batch * K, batch * E
  double lambda_geo;

  SP_HD void operator()(const Sums<kSirenPoseSums>& s) const {
    const double pos_denom = weighted ? s.v[1] : rows;
    const double geo_denom = (weighted || edge_weighted) ? s.v[3] : edges;
    denom[0] = pos_denom;
    denom[1] = geo_denom;
    if (!loss) return;
    const double p = with_pos ? reduced_value(s.v[0], pos_denom, reduction) : 0.0;
    const double g = reduced_value(s.v[2], geo_denom, reduction);
    *loss = from_acc<T>(p + lambda_geo * g);
    *pos = from_acc<T>(p);
    *geo = from_acc<T>(g);
  }
};

// Work item `it` of the forward: keypoint row `it` when it < rows (rows = batch * K with the
// position term, else 0), else edge term it - rows = b * E + e.
template <typename T, typename I>
SP_HD void graph_fwd_item(const GraphData<T, I>& a, int64_t it, int64_t rows, T* pos_terms,
                          T* geo_terms, Sums<kSirenPoseSums>& s) {
  using A = acc_t<T>;
  if (it < rows) {
    const A w = a.weight.at_flat(it);
    const A term = w * squared_distance(a.pred + it * a.D, a.target + it * a.D, a.D);
    if (pos_terms) pos_terms[it] = from_acc<T>(term);
    s.v[0] += static_cast<double>(term);
    s.v[1] += static_cast<double>(w);
    return;
  }
  const int64_t flat = it - rows;
  int64_t e;
  const int64_t b = div_rem(flat, a.E, &e);
  A sq;
  double w;
  edge_term(a, b, e, &sq, &w);
  const A term = static_cast<A>(w) * sq;
  if (geo_terms) geo_terms[flat] = from_acc<T>(term);
  s.v[2] += static_cast<double>(term);
  s.v[3] += w;
}

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
graph_fwd_kernel(GraphData<T, I> a, T* pos_terms, T* geo_terms, double* partials,
                 GraphFinish<T> finish) {
  Sums<kSirenPoseSums> s;
  const int64_t rows = a.with_pos ? a.batch * a.K : 0, items = rows + a.batch * a.E;
  for (int64_t it = global_thread(); it < items; it += grid_threads())
    graph_fwd_item(a, it, rows, pos_terms, geo_terms, s);
  finish_block(s, partials, finish);
}

// Incoming gradients of the two components: per term (none: pos [batch * K], geo
// [batch * E]) or one reduced coefficient each (mean/sum).
template <typename T>
struct GraphGrads {
  TermGrad<T> pos, geo;
};

template <typename T>
SP_HD GraphGrads<T> graph_grads(Reduce reduction, bool with_pos, const T* grad_pos,
                                const T* grad_geo, const double* denom) {
  const TermGrad<T> no_pos{nullptr, acc_t<T>(0)};
  return {with_pos ? term_grad(reduction, grad_pos, denom) : no_pos,
          term_grad(reduction, grad_geo, denom ? denom + 1 : nullptr)};
}

// Gradient of coordinate d of keypoint n in batch entry b, w.r.t. pred (*gp) and target (*gt).
// Edges are visited in the CSR's order, so the sum's order is fixed by the graph alone.
template <typename T, typename I>
SP_HD void keypoint_grad(const GraphData<T, I>& a, const GraphGrads<T>& g, const int64_t* ptr,
                         const int64_t* slot, int64_t b, int64_t n, int64_t d, acc_t<T>* gp,
                         acc_t<T>* gt) {
  using A = acc_t<T>;
  const A nan = quiet_nan(A(0));
  const int64_t row = b * a.K + n, slots = 2 * a.E;
  const A p = to_acc(a.pred[row * a.D + d]), t = to_acc(a.target[row * a.D + d]);
  A acc_p = 0, acc_t_ = 0;
  if (a.with_pos) {
    // d(w ||p - t||^2)/dp = 2 w (p - t) times the term's incoming gradient.
    acc_p = A(2) * a.weight.at_flat(row) * g.pos.at(row) * (p - t);
    acc_t_ = -acc_p;
  }
  // A CSR that does not cover every endpoint of every edge exactly once (an edge index outside
  // [0, K) leaves ptr[0] != 0 or ptr[K] != 2E) poisons the result instead of reading garbage.
  const int64_t lo = ptr[n], hi = ptr[n + 1];
  if (ptr[0] != 0 || ptr[a.K] != slots || lo < 0 || lo > hi || hi > slots) {
    *gp = *gt = nan;
    return;
  }
  const A scale = A(2) * a.omega0 * a.lambda_geo;  // the geo part is scaled by lambda_geo
  for (int64_t s = lo; s < hi; ++s) {
    const int64_t sl = slot[s];
    const int64_t e = sl >> 1, role = sl & 1;  // role 0: n is the source, 1: the target
    if (sl < 0 || sl >= slots || static_cast<int64_t>(role ? a.dst[e] : a.src[e]) != n) {
      acc_p = acc_t_ = nan;
      continue;
    }
    const int64_t other = static_cast<int64_t>(role ? a.src[e] : a.dst[e]);
    if (!a.valid_node(other)) {
      acc_p = acc_t_ = nan;
      continue;
    }
    const int64_t other_at = (b * a.K + other) * a.D + d;
    const A po = to_acc(a.pred[other_at]), to = to_acc(a.target[other_at]);
    // The edge is (i, j) = (n, other) for role 0 and (other, n) for role 1.
    const A dp = role ? po - p : p - po, dt = role ? to - t : t - to;
    A sp, cp, st, ct;
    sin_cos(a.omega0 * dp, &sp, &cp);
    sin_cos(a.omega0 * dt, &st, &ct);
    const int64_t i = role ? other : n, j = role ? n : other;
    const A ce = scale * static_cast<A>(a.edge_w(b, e, i, j)) * g.geo.at(b * a.E + e);
    const A r = sp - st;
    // dL/dp_i = 2 w0 w_e r cos(w0 dp) = -dL/dp_j; dL/dt_i = -2 w0 w_e r cos(w0 dt) = -dL/dt_j.
    const A gp_e = ce * r * cp, gt_e = ce * r * ct;
    if (role == 0) {
      acc_p += gp_e;
      acc_t_ -= gt_e;
    } else {
      acc_p -= gp_e;
      acc_t_ += gt_e;
    }
  }
  *gp = acc_p;
  *gt = acc_t_;
}

// Work item x = (b * K + n) * D + d of the backward. A null output is skipped.
template <typename T, typename I>
SP_HD void graph_bwd_item(const GraphData<T, I>& a, const GraphGrads<T>& g, const int64_t* ptr,
                          const int64_t* slot, int64_t x, T* grad_pred, T* grad_target) {
  int64_t rest, d;
  const int64_t b = div_rem(x, a.K * a.D, &rest), n = div_rem(rest, a.D, &d);
  acc_t<T> gp, gt;
  keypoint_grad(a, g, ptr, slot, b, n, d, &gp, &gt);
  if (grad_pred) grad_pred[x] = from_acc<T>(gp);
  if (grad_target) grad_target[x] = from_acc<T>(gt);
}

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
graph_bwd_kernel(GraphData<T, I> a, Reduce reduction, const T* grad_pos, const T* grad_geo,
                 const double* denom, const int64_t* ptr, const int64_t* slot, T* grad_pred,
                 T* grad_target) {
  const GraphGrads<T> g = graph_grads(reduction, a.with_pos, grad_pos, grad_geo, denom);
  const int64_t total = a.batch * a.K * a.D;
  for (int64_t x = global_thread(); x < total; x += grid_threads())
    graph_bwd_item(a, g, ptr, slot, x, grad_pred, grad_target);
}

}  // namespace

cudaError_t sirenpose_fwd(const SirenPoseProblem& p, Reduce reduction, void* loss, void* pos,
                          void* geo, double* denom, double* scratch, int64_t blocks,
                          cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    return dispatch_index(p.index, [&](auto index_tag) {
      using I = decltype(index_tag);
      const bool none = reduction == Reduce::kNone;
      const GraphFinish<T> finish{
          none ? nullptr : static_cast<T*>(loss), none ? nullptr : static_cast<T*>(pos),
          none ? nullptr : static_cast<T*>(geo), denom, reduction, p.with_pos,
          p.weight != nullptr, p.edge_weight != nullptr, static_cast<double>(p.batch * p.K),
          static_cast<double>(p.batch * p.E), p.lambda_geo};
      graph_fwd_kernel<T, I><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
          graph_data<T, I>(p), none && p.with_pos ? static_cast<T*>(pos) : nullptr,
          none ? static_cast<T*>(geo) : nullptr, scratch, finish);
      launch_final_pass<kSirenPoseSums>(scratch, blocks, finish, stream);
      return cudaGetLastError();
    });
  });
}

cudaError_t sirenpose_bwd(const SirenPoseProblem& p, Reduce reduction, const void* grad_pos,
                          const void* grad_geo, const double* denom, const int64_t* incidence_ptr,
                          const int64_t* incidence_slot, void* grad_pred, void* grad_target,
                          cudaStream_t stream) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    return dispatch_index(p.index, [&](auto index_tag) {
      using I = decltype(index_tag);
      const unsigned blocks = static_cast<unsigned>(elementwise_blocks(p.batch * p.K * p.D));
      graph_bwd_kernel<T, I><<<blocks, kThreads, 0, stream>>>(
          graph_data<T, I>(p), reduction, static_cast<const T*>(grad_pos),
          static_cast<const T*>(grad_geo), denom, incidence_ptr, incidence_slot,
          static_cast<T*>(grad_pred), static_cast<T*>(grad_target));
      return cudaGetLastError();
    });
  });
}

}  // namespace cuda
}  // namespace sirenpose
