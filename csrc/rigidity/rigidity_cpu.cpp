// Local rigidity, rotation similarity and isometry (the Dynamic 3D Gaussians trio) on the CPU,
// fused: one pass over the edges forward, one gather over each node's incident edges backward.
// Per (batch entry, frame pair) the relative rotation p_n = q̂_n,t+1 ⊗ q̂_n,t^-1 of every node
// is computed once, into a node table (see Slice), and shared by the rigidity and rotation terms.
// Frame t of slice t also carries the isometry terms of frame t, so slices run t = 0 .. T-1.
// Backward, per slice: a pass over each node's incoming edges (the centre's side, and each
// edge's gradient factors written where its neighbour reads them), then a pass over each
// node's outgoing edges (the neighbour's side). Each pass adds to the node's own gradient rows
// in a fixed order (slices, passes, list order; see GraphIndex): no float atomics and no sum
// whose order depends on the thread count. Each edge's residuals are computed twice.
#include <torch/library.h>

#include <type_traits>

#include "common/graph_inputs.h"
#include "rigidity/rigidity_terms.h"

namespace sirenpose {
namespace {

using namespace rigid;

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
             const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence,
             int64_t terms, int64_t penalty)
      : like(defined_one(positions, quats)),
        batch_shape(like.sizes().slice(0, std::max<int64_t>(0, like.dim() - 3))),
        g(edge_index, incidence, like.dim() >= 3 ? like.size(-2) : 0, like) {
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


// One (batch entry, slice t): per node, one row of a table built for the slice holding all that
// an edge reads of the node, x_t (3), x_t+1 (3) and the relative rotation p (4), as rel_t (float,
// double for float64 inputs), so a random neighbour or centre costs one cache line (float32)
// instead of one per array; R(p) is recomputed from p where an edge needs it. Slices without
// pair terms hold x_t only, 3 per row.
template <typename scalar_t>
struct Slice {
  using rel_t = factor_t<scalar_t>;
  static constexpr int64_t kRow = 16;  // row stride of pair slices (64 B in float32)
  const rel_t* x0 = nullptr;     // positions at t       (row columns 0-2)
  const rel_t* x1 = nullptr;     // positions at t + 1   (3-5, rigidity slices)
  const rel_t* p = nullptr;      // relative rotation    (6-9, pair slices)
  const scalar_t* q0 = nullptr;  // raw quaternions at t [M, 4]
  const scalar_t* q1 = nullptr;  // raw quaternions at t + 1
  int64_t stride = 3;
  bool rigid = false, rot = false, iso = false;

  void offset(const rel_t* x, int64_t j, int64_t i, double o[3]) const {
    for (int k = 0; k < 3; ++k)
      o[k] = static_cast<double>(x[j * stride + k]) - static_cast<double>(x[i * stride + k]);
  }
  double p_at(int64_t n, int c) const { return static_cast<double>(p[n * stride + c]); }
  void rotation_at(int64_t n, double R[9]) const {
    const double q[4] = {p_at(n, 0), p_at(n, 1), p_at(n, 2), p_at(n, 3)};
    rotation(q, R);
  }
  // Brings node n's row towards the cache ahead of use: the gathers are latency-bound.
  void prefetch(int64_t n) const {
    if (const rel_t* rows = x0 ? x0 : p) __builtin_prefetch(rows + n * stride);
  }
};

template <typename scalar_t>
Slice<scalar_t> make_slice(const TrioInputs& in, int64_t b, int64_t t, factor_t<scalar_t>* table) {
  using rel_t = factor_t<scalar_t>;
  const TrioShape& s = in.s;
  Slice<scalar_t> sl;
  const bool pair = t + 1 < s.T;
  sl.rigid = pair && s.has(kRigid);
  sl.rot = pair && s.has(kRotation);
  sl.iso = s.has(kIsometry);
  const bool rotations = sl.rigid || sl.rot;
  const int64_t st = sl.stride = rotations ? Slice<scalar_t>::kRow : 3;
  const scalar_t* X = in.X.defined() ? in.X.data_ptr<scalar_t>() + (b * s.T + t) * s.M * 3 : nullptr;
  if (X) sl.x0 = table;
  if (X && sl.rigid) sl.x1 = table + 3;
  if (rotations) {
    sl.q0 = in.Q.data_ptr<scalar_t>() + (b * s.T + t) * s.M * 4;
    sl.q1 = sl.q0 + s.M * 4;
    sl.p = table + 6;
  }
  for_each_node(s.M, [&](int64_t n) {
    rel_t* row = table + n * st;
    for (int k = 0; k < 3; ++k) {
      if (sl.x0) row[k] = static_cast<rel_t>(X[n * 3 + k]);
      if (sl.x1) row[3 + k] = static_cast<rel_t>(X[(s.M + n) * 3 + k]);
    }
    if (!rotations) return;
    RelativeRotation<double> rr;
    rr.compute(sl.q1 + n * 4, sl.q0 + n * 4);
    for (int k = 0; k < 4; ++k) row[6 + k] = static_cast<rel_t>(rr.p[k]);
  });
  return sl;
}

constexpr int64_t kAhead = 12;  // prefetch distance of the gathers, in edges

// Denominators of the three terms' means: total weight (squared) or count (norm).
std::array<double, 3> denominators(const TrioShape& s, double weight_sum) {
  const double per_slice = (s.penalty == kNorm || weight_sum < 0) ? static_cast<double>(s.E) : weight_sum;
  const double pairs = static_cast<double>(s.batch * s.pairs());
  return {pairs * per_slice, pairs * per_slice, static_cast<double>(s.batch * s.T) * per_slice};
}

// The node table of a slice (see Slice), reused by every slice.
at::Tensor node_table(const TrioInputs& in) {
  const auto dtype = in.like.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return at::empty({in.s.M * Slice<float>::kRow}, in.like.options().dtype(dtype));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rigidity_fwd_cpu(
    const c10::optional<at::Tensor>& positions, const c10::optional<at::Tensor>& quaternions,
    const at::Tensor& edge_index, const c10::optional<at::Tensor>& rest_length,
    const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence,
    at::ArrayRef<double> lambdas, int64_t terms, int64_t penalty, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  TORCH_CHECK_VALUE(lambdas.size() == 3, "lambdas must have 3 values, got ", lambdas.size());
  const TrioInputs in(positions, quaternions, edge_index, rest_length, edge_weight, incidence, terms,
                      penalty);
  const TrioShape& s = in.s;
  const auto opts = in.like.options();
  at::Tensor out[3];
  const int64_t steps[3] = {s.pairs(), s.pairs(), s.T};
  for (int k = 0; k < 3; ++k) {
    const bool on = s.has(1 << k);
    out[k] = reduction == kNone ? terms_like(in.batch_shape, on ? steps[k] : 0, on ? s.E : 0, in.like)
                                : at::Tensor();
  }
  at::Tensor table = node_table(in);
  std::array<double, 3> sums{};
  double weight_sum = in.W.defined() ? 0.0 : -1.0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.like.scalar_type(), "rigidity_fwd", [&] {
    const scalar_t* W = data_or_null<scalar_t>(in.W);
    const scalar_t* D = data_or_null<scalar_t>(in.rest);
    scalar_t* O[3];
    for (int k = 0; k < 3; ++k) O[k] = out[k].defined() && out[k].numel() ? out[k].data_ptr<scalar_t>() : nullptr;
    const int64_t E = s.E;
    const GraphIndex& g = in.g;
    for (int64_t b = 0; b < s.batch; ++b) {
      for (int64_t t = 0; t < s.T; ++t) {
        const Slice<scalar_t> sl = make_slice<scalar_t>(in, b, t, table.data_ptr<factor_t<scalar_t>>());
        const bool first = b == 0 && t == 0;
        const int64_t rows[3] = {(b * s.pairs() + t) * E, (b * s.pairs() + t) * E, (b * s.T + t) * E};
        const auto part = chunked_sum<4>(ceil_div(E, kEdgesPerChunk), kEdgesPerChunk * 16, [&](int64_t c) {
          std::array<double, 4> acc{};
          for (int64_t e = c * kEdgesPerChunk, e1 = std::min(E, e + kEdgesPerChunk); e < e1; ++e) {
            if (e + kAhead < E) g.prefetch_ends(e + kAhead, sl);
            int64_t j, i;
            g.ends(e, j, i);
            const double w = edge_weight_at(W, e);
            if (first) acc[3] += w;
            EdgeResiduals er;
            er.compute(sl, j, i);
            double v[3];
            er.values(sl, s.penalty, w, D ? static_cast<double>(D[e]) : 0.0, v);
            for (int k = 0; k < 3; ++k) {
              if (O[k] && (k == 2 ? sl.iso : k == 1 ? sl.rot : sl.rigid))
                O[k][rows[k] + e] = static_cast<scalar_t>(v[k]);
              acc[k] += v[k];
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
    const at::Tensor& incidence, at::ArrayRef<double> lambdas, int64_t terms, int64_t penalty,
    int64_t reduction_, const at::Tensor& state, at::IntArrayRef output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  TORCH_CHECK_VALUE(lambdas.size() == 3, "lambdas must have 3 values, got ", lambdas.size());
  TORCH_CHECK_VALUE(output_mask.size() == 2, "output_mask must have 2 values, got ", output_mask.size());
  const TrioInputs in(positions, quaternions, edge_index, rest_length, edge_weight, incidence, terms,
                      penalty);
  const TrioShape& s = in.s;
  const bool want_x = output_mask[0] && positions.has_value() && positions->defined();
  const bool want_q = output_mask[1] && quaternions.has_value() && quaternions->defined();
  at::Tensor gx = want_x ? at::zeros_like(*positions, at::MemoryFormat::Contiguous) : at::empty({0}, in.like.options());
  at::Tensor gq = want_q ? at::zeros_like(*quaternions, at::MemoryFormat::Contiguous) : at::empty({0}, in.like.options());
  if ((!want_x && !want_q) || s.E == 0) return {gx, gq};
  at::Tensor table = node_table(in);
  // Per edge: the three terms' gradient factors in outgoing-list order, 12 B/edge in float32.
  at::Tensor factors = at::empty({s.E, 3}, table.options());
  std::vector<at::Tensor> keep;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.like.scalar_type(), "rigidity_bwd", [&] {
    using fac_t = factor_t<scalar_t>;
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
    fac_t* FE = factors.data_ptr<fac_t>();
    const GraphIndex& g = in.g;
    for (int64_t b = 0; b < s.batch; ++b) {
      for (int64_t t = 0; t < s.T; ++t) {
        const Slice<scalar_t> sl = make_slice<scalar_t>(in, b, t, table.data_ptr<fac_t>());
        const int64_t pair_row = (b * s.pairs() + t) * s.E, iso_row = (b * s.T + t) * s.E;
        auto edge_factors = [&](const EdgeResiduals& er, int64_t e, double f[3]) {
          const double c[3] = {sl.rigid ? tg[0].at(pair_row + e) : 0.0,
                               sl.rot ? tg[1].at(pair_row + e) : 0.0,
                               sl.iso ? tg[2].at(iso_row + e) : 0.0};
          er.factors(sl, s.penalty, W ? static_cast<double>(W[e]) : 1.0,
                     D ? static_cast<double>(D[e]) : 0.0, c, f);
        };
        // Adds node n's accumulated contributions to its rows of frames t and t + 1 (the
        // quaternion gradient is linear in gp, so each pass can add its own part).
        auto add_rows = [&](int64_t n, NodeGrad& ng) {
          const int64_t row = (b * s.T + t) * s.M + n;
          if (GX)
            for (int a = 0; a < 3; ++a) {
              GX[row * 3 + a] = static_cast<scalar_t>(static_cast<double>(GX[row * 3 + a]) + ng.gx0[a]);
              if (t + 1 < s.T)
                GX[(row + s.M) * 3 + a] =
                    static_cast<scalar_t>(static_cast<double>(GX[(row + s.M) * 3 + a]) + ng.gx1[a]);
            }
          if (!GQ || !(sl.rigid || sl.rot)) return;
          double gq0[4] = {0, 0, 0, 0}, gq1[4] = {0, 0, 0, 0};
          RelativeRotation<double> rr;
          rr.compute(sl.q1 + n * 4, sl.q0 + n * 4);
          if (sl.rigid) rotation_backward(rr.p, ng.gR, ng.gp);
          rr.backward(ng.gp, gq1, gq0);
          for (int c = 0; c < 4; ++c) {
            GQ[row * 4 + c] = static_cast<scalar_t>(static_cast<double>(GQ[row * 4 + c]) + gq0[c]);
            GQ[(row + s.M) * 4 + c] =
                static_cast<scalar_t>(static_cast<double>(GQ[(row + s.M) * 4 + c]) + gq1[c]);
          }
        };
        // Pass 1, per node over its incoming edges (it is the centre; for a graph grouped by
        // centre, as rigidity_graph's, this reads the edges in order): each edge's factors,
        // written where its neighbour will read them, and the centre's side of the gradient.
        for_each_node(s.M, [&](int64_t n) {
          NodeGrad ng;
          for (int a = 0; a < 3; ++a) ng.gx0[a] = 0.0;
          for (int64_t k = g.in_ptr[n], k1 = g.in_ptr[n + 1]; k < k1; ++k) {
            if (k + kAhead < s.E) {  // the lists run on across nodes
              g.prefetch_incoming(k + kAhead, sl);
              // The factor slot written below is at a random place too: fetch it for writing.
              const int64_t ahead = g.in_edge[k + kAhead];
              if (static_cast<uint64_t>(ahead) < static_cast<uint64_t>(s.E)) {
                const int64_t slot = g.out_pos[ahead];
                if (static_cast<uint64_t>(slot) < static_cast<uint64_t>(s.E)) __builtin_prefetch(FE + slot * 3, 1);
              }
            }
            int64_t e, j;
            g.incoming(k, e, j);
            EdgeResiduals er;
            er.compute(sl, j, n);
            double f[3];
            edge_factors(er, e, f);
            fac_t* out = FE + g.position(e) * 3;
            for (int c = 0; c < 3; ++c) out[c] = static_cast<fac_t>(f[c]);
            ng.add(sl, er, f, -1.0);
          }
          add_rows(n, ng);
        });
        // Pass 2, per node over its outgoing edges (it is the neighbour), factors from pass 1.
        for_each_node(s.M, [&](int64_t n) {
          NodeGrad ng;
          for (int a = 0; a < 3; ++a) ng.gx0[a] = 0.0;
          for (int64_t k = g.out_ptr[n], k1 = g.out_ptr[n + 1]; k < k1; ++k) {
            if (k + kAhead < s.E) g.prefetch_outgoing(k + kAhead, sl);
            EdgeResiduals er;
            er.compute(sl, n, g.outgoing(k));
            const double f[3] = {static_cast<double>(FE[k * 3]), static_cast<double>(FE[k * 3 + 1]),
                                 static_cast<double>(FE[k * 3 + 2])};
            ng.add(sl, er, f, 1.0);
          }
          add_rows(n, ng);
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
