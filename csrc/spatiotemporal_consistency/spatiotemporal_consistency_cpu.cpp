// Spatio-temporal consistency loss on the CPU: sum over (tau, i) of w_i ||Delta^order P[tau, i]||^2.
// Work is split into (batch entry, block of Gaussians) chunks; each walks the time axis so the
// rows it needs stay in cache and every element of positions comes from memory once.
#include <torch/library.h>

#include <type_traits>

#include "common/kernel_utils.h"
#include "common/lanes.h"
#include "common/simd_clones.h"

namespace sirenpose {
namespace {

constexpr int64_t kGaussiansPerChunk = 1024;

struct SclShape {
  int64_t batch, T, M, D, steps;  // steps = number of terms along time (T - order, or 0)
  int64_t row() const { return M * D; }  // elements of one frame
};

SclShape scl_shape(const at::Tensor& positions, int64_t order) {
  check_float(positions, "positions");
  check_order(order);
  TORCH_CHECK_VALUE(positions.dim() >= 3, "positions must have shape [..., T, M, D], got ",
                    positions.sizes());
  const int64_t T = positions.size(-3), M = positions.size(-2), D = positions.size(-1);
  TORCH_CHECK_VALUE(D >= 1, "positions must have D >= 1 coordinates, got shape ", positions.sizes());
  int64_t batch = 1;
  for (int64_t d = 0; d + 3 < positions.dim(); ++d) batch *= positions.size(d);
  return {batch, T, M, D, T > order ? T - order : 0};
}

std::vector<int64_t> terms_shape(const at::Tensor& positions, const SclShape& s) {
  std::vector<int64_t> shape(positions.sizes().begin(), positions.sizes().end() - 3);
  shape.push_back(s.steps);
  shape.push_back(s.M);
  return shape;
}

// One chunk of the forward: returns (sum of weighted terms, sum of weights of its Gaussians).
// kD > 0 fixes the coordinate count at compile time (unrolled, vectorisable); 0 reads s.D.
template <typename scalar_t, int64_t kOrder, int64_t kD, typename Weight>
SIRENPOSE_SIMD_CLONES std::array<double, 2> scl_fwd_chunk(
    const scalar_t* __restrict P, const Weight& W, scalar_t* __restrict O,
    const SclShape& s, int64_t b, int64_t i0, int64_t i1) {
  const int64_t D = kD > 0 ? kD : s.D, row = s.row();
  const scalar_t* base = P + b * s.T * row;
  const int64_t n = i1 - i0;
  std::array<double, kGaussiansPerChunk> terms;  // this step's terms, summed in a fixed order
  for (int64_t i = i0; i < i1; ++i) terms[i - i0] = W.at(b, i);
  const double wsum = sum_lanes(terms.data(), n);
  double total = 0.0;
  for (int64_t step = 0; step < s.steps; ++step) {
    // The term starting at frame `step` reads frames step .. step + kOrder.
    const scalar_t* __restrict f0 = base + step * row;
    const scalar_t* __restrict f1 = f0 + row;
    const scalar_t* __restrict f2 = kOrder == 2 ? f1 + row : f1;
    for (int64_t i = i0; i < i1; ++i) {
      double sq = 0.0;
      for (int64_t k = 0; k < D; ++k) {
        const int64_t e = i * D + k;
        const double d = kOrder == 1
            ? static_cast<double>(f1[e]) - static_cast<double>(f0[e])
            : (static_cast<double>(f2[e]) - 2.0 * static_cast<double>(f1[e])) + static_cast<double>(f0[e]);
        sq += d * d;
      }
      terms[i - i0] = W.at(b, i) * sq;
    }
    if (O) {
      scalar_t* out = O + (b * s.steps + step) * s.M + i0;
      for (int64_t j = 0; j < n; ++j) out[j] = static_cast<scalar_t>(terms[j]);
    }
    total += sum_lanes(terms.data(), n);
  }
  return {total, wsum};
}

// Delta^order at element e of the term that starts at frame `step` of one batch entry.
template <int64_t kOrder, typename scalar_t>
inline double term_delta(const scalar_t* base, int64_t row, int64_t step, int64_t e) {
  const scalar_t* f = base + step * row;
  if (kOrder == 1) return static_cast<double>(f[row + e]) - static_cast<double>(f[e]);
  return (static_cast<double>(f[2 * row + e]) - 2.0 * static_cast<double>(f[row + e])) +
         static_cast<double>(f[e]);
}

// dL/dP[t] at element e for the first and last kOrder frames, where only some stencil taps are
// real terms. c0, c1, c2: the coefficients of the terms starting at t, t - 1 and t - 2.
template <int64_t kOrder, typename scalar_t>
inline double edge_frame_grad(const scalar_t* base, int64_t row, int64_t steps, int64_t t,
                              int64_t e, double c0, double c1, double c2) {
  double v = 0.0;
  if (kOrder == 1) {
    if (t >= 1) v += c1 * term_delta<1>(base, row, t - 1, e);
    if (t < steps) v -= c0 * term_delta<1>(base, row, t, e);
  } else {
    if (t >= 2 && t - 2 < steps) v += c2 * term_delta<2>(base, row, t - 2, e);
    if (t >= 1 && t - 1 < steps) v -= 2.0 * c1 * term_delta<2>(base, row, t - 1, e);
    if (t < steps) v += c0 * term_delta<2>(base, row, t, e);
  }
  return v;
}

// Gradient of one chunk. c(step, i) = 2 w_i * (incoming gradient of term (step, i)), 0 for a
// step outside [0, steps). P[t] enters the terms starting at t - kOrder .. t with the stencil
// (-1, +1) for order 1 and (+1, -2, +1) for order 2.
template <typename scalar_t, int64_t kOrder, int64_t kD, typename Weight>
SIRENPOSE_SIMD_CLONES void scl_bwd_chunk(const scalar_t* __restrict P, const Weight& W,
                                         const scalar_t* __restrict G, double coef,
                                         scalar_t* __restrict GP, const SclShape& s, int64_t b,
                                         int64_t i0, int64_t i1) {
  const int64_t D = kD > 0 ? kD : s.D, row = s.row(), T = s.T, n = i1 - i0;
  const scalar_t* base = P + b * T * row;
  scalar_t* gbase = GP + b * T * row;
  // coefs[j][i - i0] = c(t - j, i) for the current frame t.
  std::vector<double> coefs((kOrder + 1) * n);
  auto fill_coefs = [&](int64_t step, double* c) {
    if (step < 0 || step >= s.steps) {
      std::fill(c, c + n, 0.0);
      return;
    }
    // Separate loops: a select on `G` inside one loop becomes a masked load from a null
    // pointer, which costs a microcode assist per vector even though nothing is read.
    if (G) {
      const scalar_t* g = G + (b * s.steps + step) * s.M;
      for (int64_t i = i0; i < i1; ++i) c[i - i0] = 2.0 * W.at(b, i) * static_cast<double>(g[i]);
    } else {
      for (int64_t i = i0; i < i1; ++i) c[i - i0] = 2.0 * W.at(b, i) * coef;
    }
  };
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j <= kOrder; ++j) fill_coefs(t - j, coefs.data() + j * n);
    scalar_t* __restrict g = gbase + t * row;
    const bool interior = t >= kOrder && t + kOrder < T;  // every stencil tap is a real term
    if (interior) {
      // Branch-free, vectorisable path for all but the first and last kOrder frames.
      const scalar_t* __restrict pm2 = base + (t - kOrder) * row;  // t-1 (order 1) or t-2
      const scalar_t* __restrict pm1 = base + (t - 1) * row;
      const scalar_t* __restrict p0 = base + t * row;
      const scalar_t* __restrict pp1 = base + (t + 1) * row;
      const scalar_t* __restrict pp2 = base + (t + kOrder) * row;  // t+1 (order 1) or t+2
      const double* __restrict c_t = coefs.data();
      const double* __restrict c_t1 = coefs.data() + n;
      const double* __restrict c_t2 = coefs.data() + (kOrder == 2 ? 2 * n : n);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t li = i - i0;
        for (int64_t k = 0; k < D; ++k) {
          const int64_t e = i * D + k;
          const double x0 = static_cast<double>(p0[e]);
          double v;
          if (kOrder == 1) {
            v = c_t1[li] * (x0 - static_cast<double>(pm1[e])) -
                c_t[li] * (static_cast<double>(pp1[e]) - x0);
          } else {
            const double xm2 = static_cast<double>(pm2[e]), xm1 = static_cast<double>(pm1[e]);
            const double xp1 = static_cast<double>(pp1[e]), xp2 = static_cast<double>(pp2[e]);
            v = c_t2[li] * ((x0 - 2.0 * xm1) + xm2) - 2.0 * c_t1[li] * ((xp1 - 2.0 * x0) + xm1) +
                c_t[li] * ((xp2 - 2.0 * xp1) + x0);
          }
          g[e] = static_cast<scalar_t>(v);
        }
      }
      continue;
    }
    // Edge frames: only the taps whose term exists.
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t li = i - i0;
      for (int64_t k = 0; k < D; ++k) {
        const int64_t e = i * D + k;
        const double c2 = kOrder == 2 ? coefs[2 * n + li] : 0.0;
        g[e] = static_cast<scalar_t>(edge_frame_grad<kOrder>(base, row, s.steps, t, e, coefs[li],
                                                             coefs[n + li], c2));
      }
    }
  }
}

// Fast paths for the most common call, no weight and a reduced loss: every term has the same
// coefficient, so Gaussians need no grouping and a chunk is a flat run of elements
// [i0 * D, i1 * D) in each frame: plain streaming loops the compiler fully vectorises.
template <typename scalar_t, int64_t kOrder>
SIRENPOSE_SIMD_CLONES double scl_fwd_flat(const scalar_t* __restrict P, const SclShape& s, int64_t b,
                                          int64_t i0, int64_t i1) {
  const int64_t row = s.row(), e0 = i0 * s.D, e1 = i1 * s.D;
  const scalar_t* base = P + b * s.T * row;
  double total = 0.0;
  for (int64_t step = 0; step < s.steps; ++step) {
    const scalar_t* __restrict f0 = base + step * row;
    const scalar_t* __restrict f1 = f0 + row;
    const scalar_t* __restrict f2 = kOrder == 2 ? f1 + row : f1;
    lanes4 acc = {0.0, 0.0, 0.0, 0.0};
    int64_t e = e0;
    for (; e + 4 <= e1; e += 4) {
      const lanes4 d = kOrder == 1 ? load4(f1 + e) - load4(f0 + e)
                                   : (load4(f2 + e) - 2.0 * load4(f1 + e)) + load4(f0 + e);
      acc += d * d;
    }
    for (; e < e1; ++e) {
      const double d = kOrder == 1
          ? static_cast<double>(f1[e]) - static_cast<double>(f0[e])
          : (static_cast<double>(f2[e]) - 2.0 * static_cast<double>(f1[e])) + static_cast<double>(f0[e]);
      acc[0] += d * d;
    }
    total += sum_lanes(acc);
  }
  return total;
}

// c = 2 * d(loss)/d(term), the same for every term. The interior stencil has no reduction, so
// it runs in the input's precision (float for float32: twice the vector lanes), as PyTorch's own
// elementwise backward would; determinism is unaffected.
template <typename scalar_t, int64_t kOrder>
SIRENPOSE_SIMD_CLONES void scl_bwd_flat(const scalar_t* __restrict P, double c,
                                        scalar_t* __restrict GP, const SclShape& s, int64_t b,
                                        int64_t i0, int64_t i1) {
  const int64_t row = s.row(), T = s.T, e0 = i0 * s.D, e1 = i1 * s.D;
  const scalar_t* base = P + b * T * row;
  for (int64_t t = 0; t < T; ++t) {
    scalar_t* __restrict g = GP + b * T * row + t * row;
    if (t >= kOrder && t + kOrder < T) {  // interior: every stencil tap is a real term
      const scalar_t* __restrict pm2 = base + (t - kOrder) * row;
      const scalar_t* __restrict pm1 = base + (t - 1) * row;
      const scalar_t* __restrict p0 = base + t * row;
      const scalar_t* __restrict pp1 = base + (t + 1) * row;
      const scalar_t* __restrict pp2 = base + (t + kOrder) * row;
      using op_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
      const op_t cf = static_cast<op_t>(c), two = 2;
      for (int64_t e = e0; e < e1; ++e) {
        const op_t x0 = static_cast<op_t>(p0[e]);
        const op_t xm1 = static_cast<op_t>(pm1[e]), xp1 = static_cast<op_t>(pp1[e]);
        op_t v;
        if (kOrder == 1) {
          v = cf * (x0 - xm1) - cf * (xp1 - x0);
        } else {
          const op_t xm2 = static_cast<op_t>(pm2[e]), xp2 = static_cast<op_t>(pp2[e]);
          v = cf * ((x0 - two * xm1) + xm2) - two * cf * ((xp1 - two * x0) + xm1) +
              cf * ((xp2 - two * xp1) + x0);
        }
        g[e] = static_cast<scalar_t>(v);
      }
      continue;
    }
    for (int64_t e = e0; e < e1; ++e)  // first/last frames: only the taps whose term exists
      g[e] = static_cast<scalar_t>(edge_frame_grad<kOrder>(base, row, s.steps, t, e, c, c, c));
  }
}

// Runs body(kD) with a compile-time kD = D for the common D = 2, 3 and kD = 0 (read at run time) otherwise.
template <typename Body>
void dispatch_dim(int64_t D, const Body& body) {
  switch (D) {
    case 2: body(std::integral_constant<int64_t, 2>()); break;
    case 3: body(std::integral_constant<int64_t, 3>()); break;
    default: body(std::integral_constant<int64_t, 0>()); break;
  }
}

std::tuple<at::Tensor, at::Tensor> scl_fwd_cpu(const at::Tensor& positions_,
                                               const c10::optional<at::Tensor>& weight_,
                                               int64_t order, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const SclShape s = scl_shape(positions_, order);
  const at::Tensor positions = positions_.contiguous();
  auto [weight, w_stride] = prepare_weight(weight_, "weight", s.batch, s.M, positions);
  at::Tensor out = reduction == kNone ? at::empty(terms_shape(positions, s), positions.options())
                                      : at::empty({}, positions.options());
  const int64_t blocks = ceil_div(s.M, kGaussiansPerChunk);
  double loss = 0.0, wsum = static_cast<double>(s.batch * s.M);
  FirstBad bad_weight;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, positions.scalar_type(), "scl_fwd", [&] {
    const scalar_t* P = positions.data_ptr<scalar_t>();
    scalar_t* O = reduction == kNone ? out.data_ptr<scalar_t>() : nullptr;
    const int64_t chunks = s.steps > 0 ? s.batch * blocks : 0;
    std::array<double, 2> sums;
    const int64_t work = s.steps * kGaussiansPerChunk * s.D;
    if (!weight.defined() && !O) {
      sums = chunked_sum<2>(chunks, work, [&](int64_t c) {
        const int64_t b = c / blocks, i0 = (c % blocks) * kGaussiansPerChunk;
        const int64_t i1 = std::min(s.M, i0 + kGaussiansPerChunk);
        const double sum = order == 1 ? scl_fwd_flat<scalar_t, 1>(P, s, b, i0, i1)
                                      : scl_fwd_flat<scalar_t, 2>(P, s, b, i0, i1);
        return std::array<double, 2>{sum, 0.0};
      });
    } else with_row_weight<scalar_t>(weight, w_stride, [&](const auto& W) {
      dispatch_dim(s.D, [&](auto kD) {
        sums = chunked_sum<2>(chunks, work, [&](int64_t c) {
          const int64_t b = c / blocks, i0 = (c % blocks) * kGaussiansPerChunk;
          const int64_t i1 = std::min(s.M, i0 + kGaussiansPerChunk);
          // The chunk's weights, checked while they are in cache.
          if constexpr (std::decay_t<decltype(W)>::weighted)
            bad_weight.note(first_negative(W.data, W.index(b, i0), W.index(b, i1)));
          return order == 1 ? scl_fwd_chunk<scalar_t, 1, kD()>(P, W, O, s, b, i0, i1)
                            : scl_fwd_chunk<scalar_t, 2, kD()>(P, W, O, s, b, i0, i1);
        });
      });
    });
    // Every weight entry is read by some chunk unless there are no terms (no chunk runs).
    raise_if_negative<scalar_t>(bad_weight, weight, "weight", chunks > 0);
    loss = sums[0];
    if (weight.defined()) wsum = sums[1];
  });
  // Mean over (T - order) * sum_i w_i per batch entry, summed over the batch.
  const double denom = s.steps > 0 ? static_cast<double>(s.steps) * wsum : 0.0;
  if (reduction != kNone) set_scalar(out, reduction == kMean ? safe_mean(loss, denom) : loss);
  return {out, denom_tensor(denom, positions)};
}

at::Tensor scl_bwd_cpu(const at::Tensor& grad_, const at::Tensor& positions_,
                       const c10::optional<at::Tensor>& weight_, const at::Tensor& denom_,
                       int64_t order, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const SclShape s = scl_shape(positions_, order);
  const at::Tensor positions = positions_.contiguous();
  auto [weight, w_stride] = prepare_weight(weight_, "weight", s.batch, s.M, positions);
  at::Tensor grad_terms;
  double coef = 0.0;
  if (reduction == kNone) {
    grad_terms = per_term_grad(grad_, terms_shape(positions, s), positions, "spatiotemporal_consistency_bwd");
  } else {
    coef = reduced_coef(scalar_grad(grad_, "spatiotemporal_consistency_bwd"), denom_value(denom_, 0), reduction);
  }
  at::Tensor grad_positions = at::empty_like(positions);
  if (s.steps == 0) return grad_positions.zero_();
  const int64_t blocks = ceil_div(s.M, kGaussiansPerChunk);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, positions.scalar_type(), "scl_bwd", [&] {
    const scalar_t* P = positions.data_ptr<scalar_t>();
    const scalar_t* G = grad_terms.defined() ? grad_terms.data_ptr<scalar_t>() : nullptr;
    scalar_t* GP = grad_positions.data_ptr<scalar_t>();
    const int64_t grain = chunk_grain(s.T * std::min(s.M, kGaussiansPerChunk) * s.D);
    if (!weight.defined() && !G) {
      at::parallel_for(0, s.batch * blocks, grain, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          const int64_t b = c / blocks, i0 = (c % blocks) * kGaussiansPerChunk;
          const int64_t i1 = std::min(s.M, i0 + kGaussiansPerChunk);
          if (order == 1) scl_bwd_flat<scalar_t, 1>(P, 2.0 * coef, GP, s, b, i0, i1);
          else scl_bwd_flat<scalar_t, 2>(P, 2.0 * coef, GP, s, b, i0, i1);
        }
      });
    } else with_row_weight<scalar_t>(weight, w_stride, [&](const auto& W) {
      dispatch_dim(s.D, [&](auto kD) {
        at::parallel_for(0, s.batch * blocks, grain, [&](int64_t begin, int64_t end) {
          for (int64_t c = begin; c < end; ++c) {
            const int64_t b = c / blocks, i0 = (c % blocks) * kGaussiansPerChunk;
            const int64_t i1 = std::min(s.M, i0 + kGaussiansPerChunk);
            if (order == 1) scl_bwd_chunk<scalar_t, 1, kD()>(P, W, G, coef, GP, s, b, i0, i1);
            else scl_bwd_chunk<scalar_t, 2, kD()>(P, W, G, coef, GP, s, b, i0, i1);
          }
        });
      });
    });
  });
  return grad_positions;
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CPU, m) {
  m.impl("spatiotemporal_consistency_fwd", &scl_fwd_cpu);
  m.impl("spatiotemporal_consistency_bwd", &scl_bwd_cpu);
}

}  // namespace sirenpose
