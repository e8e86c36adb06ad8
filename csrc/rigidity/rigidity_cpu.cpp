// Local rigidity, rotation similarity and isometry (the Dynamic 3D Gaussians trio) on the CPU,
// fused: one pass over the edges forward, one gather over each node's incident edges backward.
// Per (batch entry, frame pair) the relative rotation p_n = q̂_n,t+1 ⊗ q̂_n,t^-1 and R(p_n) of
// every node are computed once and shared by the rigidity and rotation terms.
// Frame t of slice t also carries the isometry terms of frame t, so slices run t = 0 .. T-1.
// Backward: node n's gradient at frame t is the sum, over n's incident edges in incidence
// order, of the slice t - 1 and slice t contributions (the former kept in a double carry), so
// no float atomics and no sums that depend on the thread count.
#include <torch/library.h>

#include "common/graph_inputs.h"

namespace sirenpose {
namespace {

using namespace rigid;

constexpr int64_t kRel = 13;  // per node and slice: p (4), R(p) (9)

struct TrioShape {
  int64_t batch = 1, T = 0, M = 0, E = 0;
  int terms = 0, penalty = 0;
  bool has(int term) const { return terms & term; }
  bool pair_terms() const { return has(kRigid) || has(kRotation); }
  int64_t pairs() const { return T > 1 ? T - 1 : 0; }
};

struct TrioInputs {
  TrioShape s;
  at::Tensor X, Q, rest, W, like;
  at::IntArrayRef batch_shape;
  GraphIndex g;

  static const at::Tensor& defined_one(const c10::optional<at::Tensor>& a,
                                       const c10::optional<at::Tensor>& b) {
    TORCH_CHECK_VALUE((a.has_value() && a->defined()) || (b.has_value() && b->defined()),
                      "rigidity: positions or quaternions must be given");
    return a.has_value() && a->defined() ? *a : *b;
  }

  TrioInputs(const c10::optional<at::Tensor>& positions, const c10::optional<at::Tensor>& quats,
             const at::Tensor& edge_index, const c10::optional<at::Tensor>& rest_length,
             const c10::optional<at::Tensor>& edge_weight, const at::Tensor& ptr,
             const at::Tensor& slot, int64_t terms, int64_t penalty)
      : like(defined_one(positions, quats)),
        batch_shape(like.sizes().slice(0, std::max<int64_t>(0, like.dim() - 3))),
        g(edge_index, ptr, slot, like.dim() >= 3 ? like.size(-2) : 0, like) {
    TORCH_CHECK_VALUE(terms >= 1 && terms <= 7, "terms must be a bit mask in [1, 7], got ", terms);
    s.terms = static_cast<int>(terms);
    s.penalty = check_penalty(penalty);
    auto take = [&](const c10::optional<at::Tensor>& t, const char* name, int64_t C) {
      TORCH_CHECK_VALUE(t.has_value() && t->defined(), "rigidity: ", name, " are needed by the terms ",
                        terms);
      check_float(*t, name);
      TORCH_CHECK_VALUE(t->dim() >= 3 && t->size(-1) == C, name, " must have shape [..., T, M, ", C,
                        "], got ", t->sizes());
      TORCH_CHECK_VALUE(t->sizes().slice(0, t->dim() - 1) == like.sizes().slice(0, like.dim() - 1),
                        name, " must have the leading shape [..., T, M] of ", like.sizes(), ", got ",
                        t->sizes());
      TORCH_CHECK_TYPE(t->scalar_type() == like.scalar_type(), name, " must have dtype ",
                       like.scalar_type(), ", got ", t->scalar_type());
      TORCH_CHECK_VALUE(t->device() == like.device(), name, " must be on ", like.device(), ", got ",
                        t->device());
      return t->contiguous();
    };
    if (s.has(kRigid) || s.has(kIsometry)) X = take(positions, "positions", 3);
    if (s.pair_terms()) Q = take(quats, "quaternions", 4);
    s.batch = leading(like, 3);
    s.T = like.size(-3);
    s.M = like.size(-2);
    s.E = g.E;
    W = edge_constant(edge_weight, "edge_weight", s.E, like);
    if (s.has(kIsometry)) {
      TORCH_CHECK_VALUE(rest_length.has_value() && rest_length->defined(),
                        "rigidity: rest_length is needed by the isometry term");
      rest = edge_constant(rest_length, "rest_length", s.E, like);
    }
  }
};

// Pointers of one (batch entry, slice t): frames t and t + 1, the nodes' relative rotations.
template <typename scalar_t>
struct Slice {
  const scalar_t* x0 = nullptr;  // positions at t      [M, 3]
  const scalar_t* x1 = nullptr;  // positions at t + 1  (pair slices with the rigidity term)
  const scalar_t* q0 = nullptr;  // quaternions at t    [M, 4]
  const scalar_t* q1 = nullptr;  // quaternions at t + 1
  const double* rel = nullptr;   // [M, kRel]
  bool rigid = false, rot = false, iso = false;
};

// r = R_i^T o1 - o0 of the rigidity term.
inline void rigid_residual(const double* R, const double o1[3], const double o0[3], double r[3]) {
  for (int a = 0; a < 3; ++a) r[a] = R[a] * o1[0] + R[3 + a] * o1[1] + R[6 + a] * o1[2] - o0[a];
}

template <typename scalar_t>
void fill_relative(const Slice<scalar_t>& sl, int64_t M, double* rel) {
  at::parallel_for(0, M, kNodesPerTask, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      RelativeRotation<double> rr;
      rr.compute(sl.q1 + n * 4, sl.q0 + n * 4);
      double* out = rel + n * kRel;
      for (int k = 0; k < 4; ++k) out[k] = rr.p[k];
      rotation(rr.p, out + 4);
    }
  });
}

template <typename scalar_t>
Slice<scalar_t> make_slice(const TrioInputs& in, int64_t b, int64_t t, double* rel) {
  const TrioShape& s = in.s;
  Slice<scalar_t> sl;
  const bool pair = t + 1 < s.T;
  sl.rigid = pair && s.has(kRigid);
  sl.rot = pair && s.has(kRotation);
  sl.iso = s.has(kIsometry);
  if (in.X.defined()) {
    sl.x0 = in.X.data_ptr<scalar_t>() + (b * s.T + t) * s.M * 3;
    if (pair) sl.x1 = sl.x0 + s.M * 3;
  }
  if (sl.rigid || sl.rot) {
    sl.q0 = in.Q.data_ptr<scalar_t>() + (b * s.T + t) * s.M * 4;
    sl.q1 = sl.q0 + s.M * 4;
    fill_relative(sl, s.M, rel);
    sl.rel = rel;
  }
  return sl;
}

// Denominators of the three terms' means: total weight (squared) or count (norm).
std::array<double, 3> denominators(const TrioShape& s, double weight_sum) {
  const double per_slice = (s.penalty == kNorm || weight_sum < 0) ? static_cast<double>(s.E) : weight_sum;
  const double pairs = static_cast<double>(s.batch * s.pairs());
  return {pairs * per_slice, pairs * per_slice, static_cast<double>(s.batch * s.T) * per_slice};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rigidity_fwd_cpu(
    const c10::optional<at::Tensor>& positions, const c10::optional<at::Tensor>& quaternions,
    const at::Tensor& edge_index, const c10::optional<at::Tensor>& rest_length,
    const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence_ptr,
    const at::Tensor& incidence_slot, at::ArrayRef<double> lambdas, int64_t terms,
    int64_t penalty, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  TORCH_CHECK_VALUE(lambdas.size() == 3, "lambdas must have 3 values, got ", lambdas.size());
  const TrioInputs in(positions, quaternions, edge_index, rest_length, edge_weight, incidence_ptr,
                      incidence_slot, terms, penalty);
  const TrioShape& s = in.s;
  const auto opts = in.like.options();
  at::Tensor out[3];
  const int64_t steps[3] = {s.pairs(), s.pairs(), s.T};
  for (int k = 0; k < 3; ++k) {
    const bool on = s.has(1 << k);
    out[k] = reduction == kNone ? terms_like(in.batch_shape, on ? steps[k] : 0, on ? s.E : 0, in.like)
                                : at::Tensor();
  }
  at::Tensor rel = at::empty({s.pair_terms() ? s.M : 0, kRel}, opts.dtype(at::kDouble));
  std::array<double, 3> sums{};
  double weight_sum = in.W.defined() ? 0.0 : -1.0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.like.scalar_type(), "rigidity_fwd", [&] {
    const scalar_t* W = data_or_null<scalar_t>(in.W);
    const scalar_t* D = data_or_null<scalar_t>(in.rest);
    scalar_t* O[3];
    for (int k = 0; k < 3; ++k) O[k] = out[k].defined() && out[k].numel() ? out[k].data_ptr<scalar_t>() : nullptr;
    const int64_t E = s.E, num_chunks = ceil_div(E, kEdgesPerChunk);
    for (int64_t b = 0; b < s.batch; ++b) {
      for (int64_t t = 0; t < s.T; ++t) {
        const Slice<scalar_t> sl = make_slice<scalar_t>(in, b, t, rel.data_ptr<double>());
        const bool first = b == 0 && t == 0;
        const int64_t pair_row = (b * s.pairs() + t) * E, iso_row = (b * s.T + t) * E;
        const auto part = chunked_sum<4>(num_chunks, kEdgesPerChunk * 16, [&](int64_t c) {
          std::array<double, 4> acc{};
          for (int64_t e = c * kEdgesPerChunk, e1 = std::min(E, e + kEdgesPerChunk); e < e1; ++e) {
            int64_t j, i;
            in.g.ends(e, j, i);
            const double w = edge_weight_at(W, e);
            if (first) acc[3] += w;
            double o0[3];
            if (sl.x0) offset(sl.x0, j, i, o0);
            if (sl.rigid) {
              double o1[3], r[3];
              offset(sl.x1, j, i, o1);
              rigid_residual(sl.rel + i * kRel + 4, o1, o0, r);
              const double v = penalty_value(s.penalty, w, r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
              if (O[0]) O[0][pair_row + e] = static_cast<scalar_t>(v);
              acc[0] += v;
            }
            if (sl.rot) {
              const double* pj = sl.rel + j * kRel;
              const double* pi = sl.rel + i * kRel;
              double sq = 0.0;
              for (int k = 0; k < 4; ++k) sq += (pj[k] - pi[k]) * (pj[k] - pi[k]);
              const double v = penalty_value(s.penalty, w, sq);
              if (O[1]) O[1][pair_row + e] = static_cast<scalar_t>(v);
              acc[1] += v;
            }
            if (sl.iso) {
              const double r = std::sqrt(o0[0] * o0[0] + o0[1] * o0[1] + o0[2] * o0[2] + kNormEps) -
                               static_cast<double>(D[e]);
              const double v = penalty_value(s.penalty, w, r * r);
              if (O[2]) O[2][iso_row + e] = static_cast<scalar_t>(v);
              acc[2] += v;
            }
          }
          return acc;
        });
        for (int k = 0; k < 3; ++k) sums[k] += part[k];
        if (first && in.W.defined()) weight_sum = part[3];
      }
    }
  });
  const auto denom = denominators(s, weight_sum);
  at::Tensor state = at::empty({3}, opts.dtype(at::kDouble));
  for (int k = 0; k < 3; ++k) state.data_ptr<double>()[k] = denom[k];
  if (reduction == kNone) return {at::empty({0}, opts), out[0], out[1], out[2], state};
  double loss = 0.0, term[3];
  for (int k = 0; k < 3; ++k) {
    term[k] = s.has(1 << k) ? reduce(sums[k], denom[k], reduction) : 0.0;
    loss += lambdas[k] * term[k];
  }
  return {at::scalar_tensor(loss, opts), at::scalar_tensor(term[0], opts),
          at::scalar_tensor(term[1], opts), at::scalar_tensor(term[2], opts), state};
}

std::tuple<at::Tensor, at::Tensor> rigidity_bwd_cpu(
    at::TensorList grads, const c10::optional<at::Tensor>& positions,
    const c10::optional<at::Tensor>& quaternions, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& rest_length, const c10::optional<at::Tensor>& edge_weight,
    const at::Tensor& incidence_ptr, const at::Tensor& incidence_slot,
    at::ArrayRef<double> lambdas, int64_t terms, int64_t penalty, int64_t reduction_,
    const at::Tensor& state, at::IntArrayRef output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  TORCH_CHECK_VALUE(lambdas.size() == 3, "lambdas must have 3 values, got ", lambdas.size());
  TORCH_CHECK_VALUE(output_mask.size() == 2, "output_mask must have 2 values, got ", output_mask.size());
  const TrioInputs in(positions, quaternions, edge_index, rest_length, edge_weight, incidence_ptr,
                      incidence_slot, terms, penalty);
  const TrioShape& s = in.s;
  const bool want_x = output_mask[0] && positions.has_value() && positions->defined();
  const bool want_q = output_mask[1] && quaternions.has_value() && quaternions->defined();
  at::Tensor gx = want_x ? at::zeros_like(*positions, at::MemoryFormat::Contiguous) : at::empty({0}, in.like.options());
  at::Tensor gq = want_q ? at::zeros_like(*quaternions, at::MemoryFormat::Contiguous) : at::empty({0}, in.like.options());
  if ((!want_x && !want_q) || s.E == 0) return {gx, gq};
  const auto dopts = in.like.options().dtype(at::kDouble);
  at::Tensor rel = at::empty({s.pair_terms() ? s.M : 0, kRel}, dopts);
  at::Tensor carry_x = at::empty({s.M, 3}, dopts), carry_q = at::empty({s.M, 4}, dopts);
  std::vector<at::Tensor> keep;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.like.scalar_type(), "rigidity_bwd", [&] {
    const scalar_t* W = data_or_null<scalar_t>(in.W);
    const scalar_t* D = data_or_null<scalar_t>(in.rest);
    const int64_t steps[3] = {s.pairs(), s.pairs(), s.T};
    TermGrad<scalar_t> tg[3];
    for (int k = 0; k < 3; ++k) {
      if (!s.has(1 << k)) continue;
      std::vector<int64_t> shape(in.batch_shape.begin(), in.batch_shape.end());
      shape.push_back(steps[k]);
      shape.push_back(s.E);
      tg[k] = term_grad<scalar_t>(grads, reduction == kNone ? k : 0, reduction, lambdas[k],
                                  denom_value(state, k), shape, keep, in.like);
    }
    scalar_t* GX = want_x ? gx.data_ptr<scalar_t>() : nullptr;
    scalar_t* GQ = want_q ? gq.data_ptr<scalar_t>() : nullptr;
    double* CX = carry_x.data_ptr<double>();
    double* CQ = carry_q.data_ptr<double>();
    const GraphIndex& g = in.g;
    for (int64_t b = 0; b < s.batch; ++b) {
      std::fill(CX, CX + s.M * 3, 0.0);
      std::fill(CQ, CQ + s.M * 4, 0.0);
      for (int64_t t = 0; t < s.T; ++t) {
        const Slice<scalar_t> sl = make_slice<scalar_t>(in, b, t, rel.data_ptr<double>());
        const int64_t pair_row = (b * s.pairs() + t) * s.E, iso_row = (b * s.T + t) * s.E;
        at::parallel_for(0, s.M, kNodesPerTask, [&](int64_t n0, int64_t n1) {
          for (int64_t n = n0; n < n1; ++n) {
            double gx0[3] = {CX[n * 3], CX[n * 3 + 1], CX[n * 3 + 2]}, gx1[3] = {0, 0, 0};
            double gR[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0}, gp[4] = {0, 0, 0, 0};
            for (int64_t k = g.ptr[n]; k < g.ptr[n + 1]; ++k) {
              const int64_t sv = g.checked_slot(k), e = sv >> 1;
              const bool centre = sv & 1;
              int64_t j, i;
              g.ends(e, j, i);
              const double w = W ? static_cast<double>(W[e]) : 1.0;
              double o0[3];
              if (sl.x0) offset(sl.x0, j, i, o0);
              if (sl.rigid) {
                double o1[3], r[3];
                offset(sl.x1, j, i, o1);
                const double* R = sl.rel + i * kRel + 4;
                rigid_residual(R, o1, o0, r);
                const double f = tg[0].at(pair_row + e) *
                                 penalty_factor(s.penalty, w, r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
                const double sign = centre ? -1.0 : 1.0;
                for (int a = 0; a < 3; ++a) {
                  const double gr = f * r[a];
                  gx0[a] -= sign * gr;
                  gx1[a] += sign * (R[a * 3] * r[0] + R[a * 3 + 1] * r[1] + R[a * 3 + 2] * r[2]) * f;
                  if (centre)
                    for (int c = 0; c < 3; ++c) gR[c * 3 + a] += o1[c] * gr;
                }
              }
              if (sl.rot) {
                const double* pj = sl.rel + j * kRel;
                const double* pi = sl.rel + i * kRel;
                double r[4], sq = 0.0;
                for (int c = 0; c < 4; ++c) {
                  r[c] = pj[c] - pi[c];
                  sq += r[c] * r[c];
                }
                const double f = tg[1].at(pair_row + e) * penalty_factor(s.penalty, w, sq);
                const double sign = centre ? -1.0 : 1.0;
                for (int c = 0; c < 4; ++c) gp[c] += sign * f * r[c];
              }
              if (sl.iso) {
                const double len = std::sqrt(o0[0] * o0[0] + o0[1] * o0[1] + o0[2] * o0[2] + kNormEps);
                const double r = len - static_cast<double>(D[e]);
                const double f = tg[2].at(iso_row + e) * penalty_factor(s.penalty, w, r * r) * r / len;
                const double sign = centre ? -1.0 : 1.0;
                for (int a = 0; a < 3; ++a) gx0[a] += sign * f * o0[a];
              }
            }
            // The frame-t gradient is complete; the frame-(t+1) part waits in the carry.
            if (GX)
              for (int a = 0; a < 3; ++a) GX[((b * s.T + t) * s.M + n) * 3 + a] = static_cast<scalar_t>(gx0[a]);
            for (int a = 0; a < 3; ++a) CX[n * 3 + a] = gx1[a];
            double gq0[4] = {0, 0, 0, 0}, gq1[4] = {0, 0, 0, 0};
            if (sl.rigid || sl.rot) {
              if (sl.rigid) rotation_backward(sl.rel + n * kRel, gR, gp);
              RelativeRotation<double> rr;
              rr.compute(sl.q1 + n * 4, sl.q0 + n * 4);
              rr.backward(gp, gq1, gq0);
            }
            if (GQ)
              for (int c = 0; c < 4; ++c)
                GQ[((b * s.T + t) * s.M + n) * 4 + c] = static_cast<scalar_t>(CQ[n * 4 + c] + gq0[c]);
            for (int c = 0; c < 4; ++c) CQ[n * 4 + c] = gq1[c];
          }
        });
      }
    }
  });
  return {gx, gq};
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CPU, m) {
  m.impl("rigidity_fwd", &rigidity_fwd_cpu);
  m.impl("rigidity_bwd", &rigidity_bwd_cpu);
}

}  // namespace sirenpose
