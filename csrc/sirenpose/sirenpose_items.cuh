// SirenPose loss, the per-item work of the CUDA kernels: host+device code, run by the kernel
// shells of common/launch.cuh and by the host emulation of the tests alike.
//   L_pos = sum_n w_n ||p_n - t_n||^2,
//   L_geo = sum_e w_e ||sin(w0 (p_i - p_j)) - sin(w0 (t_i - t_j))||^2,  w_e = ew_e w_i w_j.
// Forward: one item per keypoint row and per edge, fixed-grid two-pass sums. Backward: one item
// per keypoint (and tile of up to kTile coordinates), gathering over the keypoint's incident
// edges in CSR order: each edge's checks, weight and incoming gradient are computed once per
// keypoint, every gradient element is written once, no atomics.
#pragma once

#include "common/dispatch.cuh"
#include "common/grid.cuh"
#include "common/reduced.cuh"
#include "common/rows.cuh"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"
#include "sirenpose/sirenpose_cuda.h"

namespace sirenpose {
namespace cuda {
namespace siren {

constexpr int kTile = 4;  // coordinates per backward item when D is not 2 or 3

template <typename T, typename I>
struct Data {
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
Data<T, I> data(const SirenPoseProblem& p) {
  const I* edges = static_cast<const I*>(p.edge_index);
  return {static_cast<const T*>(p.pred), static_cast<const T*>(p.target), edges, edges + p.E,
          {static_cast<const T*>(p.weight), p.weight_shared, p.K},
          static_cast<const T*>(p.edge_weight), p.batch, p.K, p.D, p.E,
          static_cast<acc_t<T>>(p.omega0), static_cast<acc_t<T>>(p.lambda_geo), p.with_pos};
}

// Edge e of batch entry b: its unweighted term ||sin(w0 dp) - sin(w0 dt)||^2 and w_e. An edge
// index outside [0, K) is never dereferenced; it makes both NaN.
template <typename T, typename I>
SP_HD void edge_term(const Data<T, I>& a, int64_t b, int64_t e, acc_t<T>* sq_out,
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
struct Finish {
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

// Item it of the forward: keypoint row it when it < rows (rows = batch * K with the position
// term, else 0), else edge term it - rows = b * E + e. STORE (reduction none) writes the terms.
template <typename T, typename I, bool STORE>
struct FwdItems {
  static constexpr int kMinBlocks = 1;
  Data<T, I> a;
  T* pos_terms;  // [batch * K] (with_pos), STORE only
  T* geo_terms;  // [batch * E], STORE only

  SP_HD int64_t rows() const { return a.with_pos ? a.batch * a.K : 0; }
  SP_HD int64_t count() const { return rows() + a.batch * a.E; }
  SP_HD void operator()(int64_t it, Sums<kSirenPoseSums>& s) const {
    using A = acc_t<T>;
    if (it < rows()) {
      const A w = a.weight.at_flat(it);
      const A term = w * squared_distance(a.pred + it * a.D, a.target + it * a.D, a.D);
      if (STORE) pos_terms[it] = from_acc<T>(term);
      s.v[0] += static_cast<double>(term);
      s.v[1] += static_cast<double>(w);
      return;
    }
    const int64_t flat = it - rows();
    int64_t e;
    const int64_t b = div_rem(flat, a.E, &e);
    A sq;
    double w;
    edge_term(a, b, e, &sq, &w);
    const A term = static_cast<A>(w) * sq;
    if (STORE) geo_terms[flat] = from_acc<T>(term);
    s.v[2] += static_cast<double>(term);
    s.v[3] += w;
  }
};

// Incoming gradients of the two components: per term (none: pos [batch * K], geo
// [batch * E]) or one reduced coefficient each (mean/sum).
template <typename T>
struct Grads {
  TermGrad<T> pos, geo;
};

// The slots of node n (a range of the CSR), or false when the CSR cannot be trusted: it must
// cover [0, 2E) (an edge index outside [0, K) leaves ptr[0] != 0 or ptr[K] != 2E) and n's range
// must lie inside it. Together with the per-slot checks of keypoint_tile (each slot in [0, 2E),
// naming n, strictly increasing) this makes the slots a permutation of the 2E endpoints.
SP_HD bool slot_range(const int64_t* ptr, int64_t K, int64_t E, int64_t n, int64_t* lo,
                      int64_t* hi) {
  *lo = ptr[n];
  *hi = ptr[n + 1];
  return ptr[0] == 0 && ptr[K] == 2 * E && *lo >= 0 && *lo <= *hi && *hi <= 2 * E;
}

// Gradients of coordinates k0 .. k0 + TILE - 1 (those < D) of keypoint n in batch entry b, w.r.t.
// pred and target, written to the non-null outputs. Edges are visited in the CSR's order, so
// the sums' order is fixed by the graph alone; a bad CSR entry or edge index poisons the tile.
template <typename T, typename I, int TILE>
SP_HD void keypoint_tile(const Data<T, I>& a, const Grads<T>& g, const int64_t* ptr,
                         const int64_t* slot, int64_t b, int64_t n, int64_t k0, T* grad_pred,
                         T* grad_target) {
  using A = acc_t<T>;
  const A nan = quiet_nan(A(0));
  const int64_t row = b * a.K + n, base = row * a.D + k0;
  const int64_t nk = a.D - k0 < TILE ? a.D - k0 : TILE;
  // d(w ||p - t||^2)/dp = 2 w (p - t) times the term's incoming gradient; minus that for t.
  const A cpos = a.with_pos ? A(2) * a.weight.at_flat(row) * g.pos.at(row) : A(0);
  A p[TILE], t[TILE], acc_p[TILE], acc_t_[TILE];
  SP_UNROLL(TILE)
  for (int k = 0; k < TILE; ++k) {
    p[k] = k < nk ? to_acc(a.pred[base + k]) : A(0);
    t[k] = k < nk ? to_acc(a.target[base + k]) : A(0);
    acc_p[k] = a.with_pos ? cpos * (p[k] - t[k]) : A(0);
    acc_t_[k] = a.with_pos ? -acc_p[k] : A(0);
  }
  int64_t lo, hi;
  bool ok = slot_range(ptr, a.K, a.E, n, &lo, &hi);
  const A scale = A(2) * a.omega0 * a.lambda_geo;  // the geo part is scaled by lambda_geo
  int64_t prev = -1;
  for (int64_t s = lo; ok && s < hi; ++s) {
    const int64_t sl = slot[s];
    const int64_t e = sl >> 1, role = sl & 1;  // role 0: n is the source, 1: the target
    if (sl <= prev || sl >= 2 * a.E || static_cast<int64_t>(role ? a.dst[e] : a.src[e]) != n) {
      ok = false;
      break;
    }
    prev = sl;
    const int64_t other = static_cast<int64_t>(role ? a.src[e] : a.dst[e]);
    if (!a.valid_node(other)) {
      ok = false;
      break;
    }
    // The edge is (i, j) = (n, other) for role 0 and (other, n) for role 1.
    const int64_t i = role ? other : n, j = role ? n : other;
    const A ce = scale * static_cast<A>(a.edge_w(b, e, i, j)) * g.geo.at(b * a.E + e);
    const int64_t other_at = (b * a.K + other) * a.D + k0;
    SP_UNROLL(TILE)
    for (int k = 0; k < TILE; ++k) {
      if (k >= nk) break;
      const A po = to_acc(a.pred[other_at + k]), to = to_acc(a.target[other_at + k]);
      const A dp = role ? po - p[k] : p[k] - po, dt = role ? to - t[k] : t[k] - to;
      A sp, cp, st, ct;
      sin_cos(a.omega0 * dp, &sp, &cp);
      sin_cos(a.omega0 * dt, &st, &ct);
      const A r = sp - st;
      // dL/dp_i = 2 w0 w_e r cos(w0 dp) = -dL/dp_j; dL/dt_i = -2 w0 w_e r cos(w0 dt) = -dL/dt_j.
      const A gp_e = ce * r * cp, gt_e = ce * r * ct;
      if (role == 0) {
        acc_p[k] += gp_e;
        acc_t_[k] -= gt_e;
      } else {
        acc_p[k] -= gp_e;
        acc_t_[k] += gt_e;
      }
    }
  }
  SP_UNROLL(TILE)
  for (int k = 0; k < TILE; ++k) {
    if (k >= nk) break;
    if (grad_pred) grad_pred[base + k] = from_acc<T>(ok ? acc_p[k] : nan);
    if (grad_target) grad_target[base + k] = from_acc<T>(ok ? acc_t_[k] : nan);
  }
}

// Item it = (b * K + n) * tiles + tile of the backward. A null output is skipped.
template <typename T, typename I, int TILE>
struct BwdItems {
  static constexpr int kMinBlocks = 1;
  Data<T, I> a;
  Reduce reduction;
  const T* grad_pos;
  const T* grad_geo;
  const double* denom;
  const int64_t* ptr;   // [K + 1]
  const int64_t* slot;  // [2E]
  T* grad_pred;
  T* grad_target;

  SP_HD int64_t tiles() const { return ceil_div64(a.D, TILE); }
  SP_HD int64_t count() const { return a.batch * a.K * tiles(); }
  // Read once per thread, on the device (no host sync).
  SP_HD Grads<T> context() const {
    const TermGrad<T> no_pos{nullptr, acc_t<T>(0)};
    return {a.with_pos ? term_grad(reduction, grad_pos, denom) : no_pos,
            term_grad(reduction, grad_geo, denom ? denom + 1 : nullptr)};
  }
  SP_HD void operator()(int64_t it, const Grads<T>& g) const {
    int64_t rest, tile;
    const int64_t key = div_rem(it, tiles(), &tile);
    const int64_t b = div_rem(key, a.K, &rest);
    keypoint_tile<T, I, TILE>(a, g, ptr, slot, b, rest, tile * TILE, grad_pred, grad_target);
  }
};

template <typename Exec>
cudaError_t fwd(const Exec& exec, const SirenPoseProblem& p, Reduce reduction, void* loss,
                void* pos, void* geo, double* denom, double* scratch, int64_t blocks) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    return dispatch_index(p.index, [&](auto index_tag) {
      using I = decltype(index_tag);
      const bool none = reduction == Reduce::kNone;
      const Finish<T> finish{
          none ? nullptr : static_cast<T*>(loss), none ? nullptr : static_cast<T*>(pos),
          none ? nullptr : static_cast<T*>(geo), denom, reduction, p.with_pos,
          p.weight != nullptr, p.edge_weight != nullptr, static_cast<double>(p.batch * p.K),
          static_cast<double>(p.batch * p.E), p.lambda_geo};
      if (none)
        exec.template reduce<kSirenPoseSums>(
            FwdItems<T, I, true>{data<T, I>(p), static_cast<T*>(pos), static_cast<T*>(geo)},
            blocks, scratch, finish);
      else
        exec.template reduce<kSirenPoseSums>(FwdItems<T, I, false>{data<T, I>(p), nullptr, nullptr},
                                             blocks, scratch, finish);
      return exec.status();
    });
  });
}

template <typename Exec>
cudaError_t bwd(const Exec& exec, const SirenPoseProblem& p, Reduce reduction,
                const void* grad_pos, const void* grad_geo, const double* denom,
                const int64_t* ptr, const int64_t* slot, void* grad_pred, void* grad_target) {
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    return dispatch_index(p.index, [&](auto index_tag) {
      using I = decltype(index_tag);
      const auto run = [&](auto items) {
        items = {data<T, I>(p), reduction, static_cast<const T*>(grad_pos),
                 static_cast<const T*>(grad_geo), denom, ptr, slot,
                 static_cast<T*>(grad_pred), static_cast<T*>(grad_target)};
        exec.for_each(items);
        return exec.status();
      };
      if (p.D == 2) return run(BwdItems<T, I, 2>{});
      if (p.D == 3) return run(BwdItems<T, I, 3>{});
      return run(BwdItems<T, I, kTile>{});
    });
  });
}

}  // namespace siren
}  // namespace cuda
}  // namespace sirenpose
