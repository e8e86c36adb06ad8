// Spatio-temporal consistency loss on the CPU: sum over (tau, i) of w_i ||Delta^order P[tau, i]||^2.
// Work is split into (batch entry, block of Gaussians) chunks; each walks the time axis so the
// rows it needs stay in cache and every element of positions comes from memory once.
#include <torch/library.h>

#include "common/kernel_utils.h"
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
  TORCH_CHECK_VALUE(order == 1 || order == 2, "order must be 1 or 2, got ", order);
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
template <typename scalar_t, int64_t kOrder>
SIRENPOSE_SIMD_CLONES std::array<double, 2> scl_fwd_chunk(
    const scalar_t* __restrict P, const RowWeight<scalar_t>& W, scalar_t* __restrict O,
    const SclShape& s, int64_t b, int64_t i0, int64_t i1) {
  const int64_t D = s.D, row = s.row();
  const scalar_t* base = P + b * s.T * row;
  double total = 0.0, wsum = 0.0;
  for (int64_t i = i0; i < i1; ++i) wsum += W.at(b, i);
  for (int64_t step = 0; step < s.steps; ++step) {
    // The term starting at frame `step` reads frames step .. step + kOrder.
    const scalar_t* first = base + step * row;
    scalar_t* out = O ? O + (b * s.steps + step) * s.M : nullptr;
    double acc = 0.0;
    for (int64_t i = i0; i < i1; ++i) {
      double sq = 0.0;
      for (int64_t k = 0; k < D; ++k) {
        const int64_t e = i * D + k;
        const double d = kOrder == 1
            ? static_cast<double>(first[row + e]) - static_cast<double>(first[e])
            : (static_cast<double>(first[2 * row + e]) - 2.0 * static_cast<double>(first[row + e])) +
                  static_cast<double>(first[e]);
        sq += d * d;
      }
      const double term = W.at(b, i) * sq;
      if (out) out[i] = static_cast<scalar_t>(term);
      acc += term;
    }
    total += acc;
  }
  return {total, wsum};
}

// Gradient of one chunk. c(step, i) = 2 w_i * (incoming gradient of term (step, i)).
// order 1: dL/dP[t] = c(t-1) (P[t] - P[t-1]) - c(t) (P[t+1] - P[t]).
// order 2: term tau has a = P[tau+1] - 2 P[tau] + P[tau-1] and stencil (1, -2, 1).
template <typename scalar_t, int64_t kOrder>
SIRENPOSE_SIMD_CLONES void scl_bwd_chunk(const scalar_t* __restrict P, const RowWeight<scalar_t>& W,
                                         const scalar_t* __restrict G, double coef,
                                         scalar_t* __restrict GP, const SclShape& s, int64_t b,
                                         int64_t i0, int64_t i1) {
  const int64_t D = s.D, row = s.row(), T = s.T;
  const scalar_t* base = P + b * T * row;
  scalar_t* gbase = GP + b * T * row;
  // Incoming gradient of the term whose first frame is `step` (0 outside the valid range).
  auto term_coef = [&](int64_t step, int64_t i) -> double {
    if (step < 0 || step >= s.steps) return 0.0;
    return 2.0 * W.at(b, i) * (G ? static_cast<double>(G[(b * s.steps + step) * s.M + i]) : coef);
  };
  auto delta = [&](int64_t step, int64_t e) -> double {  // Delta^order of the term starting at `step`
    const scalar_t* p = base + step * row;
    if (kOrder == 1) return static_cast<double>(p[row + e]) - static_cast<double>(p[e]);
    return (static_cast<double>(p[2 * row + e]) - 2.0 * static_cast<double>(p[row + e])) +
           static_cast<double>(p[e]);
  };
  for (int64_t t = 0; t < T; ++t) {
    scalar_t* g = gbase + t * row;
    for (int64_t i = i0; i < i1; ++i) {
      if (kOrder == 1) {
        const double c_prev = term_coef(t - 1, i), c_next = term_coef(t, i);
        for (int64_t k = 0; k < D; ++k) {
          const int64_t e = i * D + k;
          double v = 0.0;
          if (t >= 1 && t - 1 < s.steps) v += c_prev * delta(t - 1, e);
          if (t < s.steps) v -= c_next * delta(t, e);
          g[e] = static_cast<scalar_t>(v);
        }
      } else {
        // P[t] appears in the terms starting at t-2 (coefficient +1), t-1 (-2) and t (+1).
        const double c0 = term_coef(t - 2, i), c1 = term_coef(t - 1, i), c2 = term_coef(t, i);
        for (int64_t k = 0; k < D; ++k) {
          const int64_t e = i * D + k;
          double v = 0.0;
          if (t >= 2 && t - 2 < s.steps) v += c0 * delta(t - 2, e);
          if (t >= 1 && t - 1 < s.steps) v -= 2.0 * c1 * delta(t - 1, e);
          if (t < s.steps) v += c2 * delta(t, e);
          g[e] = static_cast<scalar_t>(v);
        }
      }
    }
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
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, positions.scalar_type(), "scl_fwd", [&] {
    check_nonnegative<scalar_t>(weight, "weight");
    const scalar_t* P = positions.data_ptr<scalar_t>();
    const RowWeight<scalar_t> W{weight.defined() ? weight.data_ptr<scalar_t>() : nullptr, w_stride};
    scalar_t* O = reduction == kNone ? out.data_ptr<scalar_t>() : nullptr;
    const int64_t chunks = s.steps > 0 ? s.batch * blocks : 0;
    auto sums = chunked_sum<2>(chunks, [&](int64_t c) {
      const int64_t b = c / blocks, i0 = (c % blocks) * kGaussiansPerChunk;
      const int64_t i1 = std::min(s.M, i0 + kGaussiansPerChunk);
      return order == 1 ? scl_fwd_chunk<scalar_t, 1>(P, W, O, s, b, i0, i1)
                        : scl_fwd_chunk<scalar_t, 2>(P, W, O, s, b, i0, i1);
    });
    loss = sums[0];
    if (weight.defined()) wsum = sums[1];
  });
  // Mean over (T - order) * sum_i w_i per batch entry, summed over the batch.
  const double denom = s.steps > 0 ? static_cast<double>(s.steps) * wsum : 0.0;
  if (reduction != kNone) out.fill_(reduction == kMean ? safe_mean(loss, denom) : loss);
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
    const RowWeight<scalar_t> W{weight.defined() ? weight.data_ptr<scalar_t>() : nullptr, w_stride};
    scalar_t* GP = grad_positions.data_ptr<scalar_t>();
    at::parallel_for(0, s.batch * blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const int64_t b = c / blocks, i0 = (c % blocks) * kGaussiansPerChunk;
        const int64_t i1 = std::min(s.M, i0 + kGaussiansPerChunk);
        if (order == 1) scl_bwd_chunk<scalar_t, 1>(P, W, G, coef, GP, s, b, i0, i1);
        else scl_bwd_chunk<scalar_t, 2>(P, W, G, coef, GP, s, b, i0, i1);
      }
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
