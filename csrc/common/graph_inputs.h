// Inputs shared by the CPU kernels of the graph losses: the edge list with its per-node
// incidence (CSR), edge constants, per-term incoming gradients and the fixed chunking.
#pragma once

#include <ATen/ATen.h>

#include <type_traits>

#include "common/checks.h"
#include "common/kernel_utils.h"
#include "common/rigid_math.h"

namespace sirenpose {

constexpr int64_t kEdgesPerChunk = 2048;  // edges summed serially per deterministic chunk
constexpr int64_t kNodesPerTask = 512;    // nodes per task of a gather (no sums across nodes)

// edge_index [2, E] (row 0 neighbour j, row 1 centre i) and its incidence, one int64 tensor
// built once per graph (sirenpose_loss._graph_ops.graph_incidence), six parts:
//   in_ptr [M+1], in_edge [E], in_other [E]: the edges of which each node is the centre, in
//       edge order, with their neighbour;
//   out_ptr [M+1], out_other [E]: the edges of which each node is the neighbour, in edge
//       order, with their centre;  out_pos [E]: where edge e sits in that outgoing list.
// A backward writes what the neighbour side of edge e needs at out_pos[e] (in edge order),
// then each node gathers its incoming and outgoing edges reading memory sequentially, so no
// float atomics, no sum whose order depends on threads, and no edge array read at random.
// Every index is range-checked where it is read (no input reads out of bounds); an
// incidence that is in range but not built from edge_index gives wrong gradients.
// The per-entry accessors below run once per edge in the gathers: forced inline (their range
// checks' cold paths otherwise make the compiler call them).
#define SP_INDEX inline __attribute__((always_inline))
struct GraphIndex {
  at::Tensor edges, incidence;
  const int64_t* src = nullptr;
  const int64_t* dst = nullptr;
  const int64_t *in_ptr = nullptr, *in_edge = nullptr, *in_other = nullptr;
  const int64_t *out_ptr = nullptr, *out_other = nullptr, *out_pos = nullptr;
  int64_t M = 0, E = 0;

  GraphIndex(const at::Tensor& edge_index, const at::Tensor& incidence_, int64_t num_nodes,
             const at::Tensor& like) {
    auto check_index = [&](const at::Tensor& t, const char* name) {
      TORCH_CHECK_TYPE(t.scalar_type() == at::kLong, name, " must be an int64 tensor, got dtype ",
                       t.scalar_type());
      TORCH_CHECK_VALUE(t.device() == like.device(), name, " must be on ", like.device(), ", got ",
                        t.device());
    };
    check_index(edge_index, "edge_index");
    check_index(incidence_, "incidence");
    TORCH_CHECK_VALUE(edge_index.dim() == 2 && edge_index.size(0) == 2,
                      "edge_index must have shape [2, E], got ", edge_index.sizes());
    M = num_nodes;
    E = edge_index.size(1);
    TORCH_CHECK_VALUE(incidence_.dim() == 1 && incidence_.numel() == 2 * (M + 1) + 4 * E,
                      "incidence must have shape [", 2 * (M + 1) + 4 * E, "] (2 (M + 1) + 4 E for M = ",
                      M, ", E = ", E, "), got ", incidence_.sizes(), " (a stale incidence?)");
    edges = edge_index.contiguous();
    incidence = incidence_.contiguous();
    src = edges.data_ptr<int64_t>();
    dst = src + E;
    in_ptr = incidence.data_ptr<int64_t>();
    in_edge = in_ptr + M + 1;
    in_other = in_edge + E;
    out_ptr = in_other + E;
    out_other = out_ptr + M + 1;
    out_pos = out_other + E;
    check_ptr(in_ptr, "incoming");
    check_ptr(out_ptr, "outgoing");
  }
  void check_ptr(const int64_t* ptr, const char* which) const {
    TORCH_CHECK_VALUE(ptr[0] == 0 && ptr[M] == E, "incidence: the ", which, " pointers must run "
                      "from 0 to E = ", E, ", got ", ptr[0], " to ", ptr[M], " (a stale incidence?)");
    for (int64_t n = 0; n < M; ++n)
      TORCH_CHECK_VALUE(ptr[n] <= ptr[n + 1], "incidence: the ", which,
                        " pointers must be non-decreasing, got ", ptr[n], " then ", ptr[n + 1]);
  }

  // Edge e's endpoints (j, i), range-checked.
  SP_INDEX void ends(int64_t e, int64_t& j, int64_t& i) const {
    j = src[e];
    i = dst[e];
    TORCH_CHECK_INDEX(j >= 0 && j < M && i >= 0 && i < M, "edge_index values must be in [0, ", M,
                      ") (M = ", M, " Gaussians), got (", j, ", ", i, ") at edge ", e,
                      "; a graph built for other Gaussians is stale: rebuild or re-index it");
  }
  // Prefetches of the node rows that edge e / incoming entry k / outgoing entry k will read
  // (`rows.prefetch(n)`, only for n in range).
  template <typename Rows>
  inline void prefetch_node(int64_t n, const Rows& rows) const {
    if (static_cast<uint64_t>(n) < static_cast<uint64_t>(M)) rows.prefetch(n);
  }
  template <typename Rows>
  inline void prefetch_ends(int64_t e, const Rows& rows) const {
    prefetch_node(src[e], rows);
    prefetch_node(dst[e], rows);
  }
  template <typename Rows>
  inline void prefetch_incoming(int64_t k, const Rows& rows) const { prefetch_node(in_other[k], rows); }
  template <typename Rows>
  inline void prefetch_outgoing(int64_t k, const Rows& rows) const { prefetch_node(out_other[k], rows); }

  // Incoming entry k: the edge and its neighbour.
  SP_INDEX void incoming(int64_t k, int64_t& e, int64_t& j) const {
    e = in_edge[k];
    j = in_other[k];
    TORCH_CHECK_INDEX(e >= 0 && e < E && j >= 0 && j < M, "incidence: incoming entry ", k,
                      " out of range (edge ", e, ", node ", j, ")");
  }
  // Outgoing entry k: the centre.
  SP_INDEX int64_t outgoing(int64_t k) const {
    const int64_t i = out_other[k];
    TORCH_CHECK_INDEX(i >= 0 && i < M, "incidence: outgoing entry ", k, " out of range (node ", i, ")");
    return i;
  }
  SP_INDEX int64_t position(int64_t e) const {
    const int64_t k = out_pos[e];
    TORCH_CHECK_INDEX(k >= 0 && k < E, "incidence: position of edge ", e, " out of range (", k, ")");
    return k;
  }
};

// Runs body(e) for every edge in fixed chunks (thread count never changes what is computed).
template <typename Body>
void for_each_edge(int64_t E, const Body& body) {
  at::parallel_for(0, ceil_div(E, kEdgesPerChunk), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t e = c0 * kEdgesPerChunk, e1 = std::min(E, c1 * kEdgesPerChunk); e < e1; ++e) body(e);
  });
}

template <typename Body>
void for_each_node(int64_t M, const Body& body) {
  at::parallel_for(0, M, kNodesPerTask, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) body(n);
  });
}

// The per-edge scratch of a backward: float (double for float64 inputs).
template <typename scalar_t>
using factor_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// o = x_j - x_i of 3-D points x [M, 3], in double.
template <typename scalar_t>
inline void offset(const scalar_t* x, int64_t j, int64_t i, double o[3]) {
  for (int k = 0; k < 3; ++k) o[k] = static_cast<double>(x[j * 3 + k]) - static_cast<double>(x[i * 3 + k]);
}

inline const at::Tensor& checked_points3(const at::Tensor& t, const char* name) {
  check_float(t, name);
  TORCH_CHECK_VALUE(t.dim() >= 3 && t.size(-1) == 3, name, " must have shape [..., T, M, 3], got ",
                    t.sizes());
  return t;
}

// An optional per-edge constant [E] (edge weights, rest lengths) in the input's dtype.
inline at::Tensor edge_constant(const c10::optional<at::Tensor>& t, const char* name, int64_t E,
                                const at::Tensor& like) {
  if (!t.has_value() || !t->defined()) return at::Tensor();
  check_float(*t, name);
  TORCH_CHECK_TYPE(t->scalar_type() == like.scalar_type(), name, " must have dtype ",
                   like.scalar_type(), ", got ", t->scalar_type());
  TORCH_CHECK_VALUE(t->device() == like.device(), name, " must be on ", like.device(), ", got ",
                    t->device());
  TORCH_CHECK_VALUE(t->dim() == 1 && t->numel() == E, name, " must have shape [", E,
                    "] (one per edge), got ", t->sizes());
  return t->contiguous();
}

template <typename scalar_t>
inline const scalar_t* data_or_null(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<scalar_t>() : nullptr;
}

// Checked edge weight w_e (1 without weights); a negative weight is an error.
template <typename scalar_t>
inline double edge_weight_at(const scalar_t* W, int64_t e) {
  if (!W) return 1.0;
  const double w = static_cast<double>(W[e]);
  TORCH_CHECK_VALUE(!(w < 0.0), "edge_weight must be non-negative, got ", w, " at edge ", e);
  return w;
}

// The incoming gradient of one term family: per-term values (reduction "none") or one
// coefficient d loss / d term for all terms (mean/sum, lambda and denominator folded in).
template <typename scalar_t>
struct TermGrad {
  const scalar_t* per_term = nullptr;
  double coef = 0.0;
  inline double at(int64_t index) const {
    return per_term ? static_cast<double>(per_term[index]) : coef;
  }
};

// Per-term output tensors [..., steps, E] (or [..., E] when steps < 0) of reduction "none".
inline at::Tensor terms_like(at::IntArrayRef batch_shape, int64_t steps, int64_t E,
                             const at::Tensor& like) {
  std::vector<int64_t> shape(batch_shape.begin(), batch_shape.end());
  if (steps >= 0) shape.push_back(steps);
  shape.push_back(E);
  return at::empty(shape, like.options());
}

// The incoming gradients of the terms `which` ([d loss] or the per-term ones).
template <typename scalar_t>
TermGrad<scalar_t> term_grad(at::TensorList grads, size_t which, Reduction r, double lambda,
                             double denom, at::IntArrayRef shape, std::vector<at::Tensor>& keep,
                             const at::Tensor& like) {
  TermGrad<scalar_t> g;
  if (r == kNone) {
    TORCH_CHECK_VALUE(grads.size() > which, "expected ", which + 1, " per-term gradients, got ",
                      grads.size());
    keep.push_back(per_term_grad(grads[which], shape, like, "graph loss backward"));
    g.per_term = keep.back().data_ptr<scalar_t>();
  } else {
    TORCH_CHECK_VALUE(grads.size() == 1, "a reduced loss takes one gradient, got ", grads.size());
    g.coef = lambda * reduced_coef(scalar_grad(grads[0], "graph loss backward"), denom, r);
  }
  return g;
}

inline double reduce(double sum, double denom, Reduction r) {
  return r == kMean ? safe_mean(sum, denom) : sum;
}

inline int64_t leading(const at::Tensor& t, int64_t trailing) {
  int64_t n = 1;
  for (int64_t d = 0; d + trailing < t.dim(); ++d) n *= t.size(d);
  return n;
}

inline int check_penalty(int64_t p) {
  TORCH_CHECK_VALUE(p == rigid::kSquared || p == rigid::kNorm,
                    "penalty code must be 0 (squared) or 1 (norm), got ", p);
  return static_cast<int>(p);
}

}  // namespace sirenpose
