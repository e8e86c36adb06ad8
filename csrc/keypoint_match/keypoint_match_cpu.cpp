// Keypoint match loss on the CPU: sum_n w_n ||pred_n - target_n||^2, one fused pass each way.
#include <torch/library.h>

#include "common/kernel_utils.h"
#include "common/lanes.h"
#include "common/simd_clones.h"

namespace sirenpose {
namespace {

constexpr int64_t kRowsPerChunk = 4096;

struct KmlShape {
  int64_t D, K, rows, batch;
};

KmlShape kml_shape(const at::Tensor& pred, const at::Tensor& target) {
  check_float(pred, "pred");
  check_same(pred, "pred", target, "target");
  TORCH_CHECK_VALUE(pred.dim() >= 2, "pred must have shape [..., K, D], got ", pred.sizes());
  const int64_t D = pred.size(-1), K = pred.size(-2);
  TORCH_CHECK_VALUE(D >= 1, "pred must have D >= 1 coordinates, got shape ", pred.sizes());
  const int64_t rows = pred.numel() / D;
  return {D, K, rows, K ? rows / K : 0};
}

// Forward of rows [n0, n1): returns (sum of w ||p - t||^2, sum of w); writes terms when O.
// Notes the first negative weight it reads in `bad`.
template <typename scalar_t, typename Weight>
SIRENPOSE_SIMD_CLONES std::array<double, 2> kml_fwd_rows(
    const scalar_t* __restrict P, const scalar_t* __restrict T, const Weight& W,
    scalar_t* __restrict O, int64_t D, int64_t K, int64_t n0, int64_t n1, FirstBad& bad) {
  if (!Weight::weighted && !O) {
    // Unweighted and reduced: a flat sum of squared differences over the chunk's elements.
    lanes4 acc = {0.0, 0.0, 0.0, 0.0};
    int64_t e = n0 * D;
    const int64_t e1 = n1 * D;
    for (; e + 4 <= e1; e += 4) {
      const lanes4 d = load4(P + e) - load4(T + e);
      acc += d * d;
    }
    for (; e < e1; ++e) {
      const double d = static_cast<double>(P[e]) - static_cast<double>(T[e]);
      acc[0] += d * d;
    }
    return {sum_lanes(acc), static_cast<double>(n1 - n0)};
  }
  double total = 0.0, wsum = 0.0;
  int64_t first_bad = kNoBadIndex;
  int64_t b = n0 / K, k = n0 % K;  // walk (batch entry, keypoint) without a division per row
  for (int64_t n = n0; n < n1; ++n) {
    double sq = 0.0;
    for (int64_t j = 0; j < D; ++j) {
      const double d = static_cast<double>(P[n * D + j]) - static_cast<double>(T[n * D + j]);
      sq += d * d;
    }
    const double w = W.at(b, k);
    if (w < 0.0) first_bad = std::min(first_bad, W.index(b, k));
    if (O) O[n] = static_cast<scalar_t>(w * sq);
    total += w * sq;
    wsum += w;
    if (++k == K) k = 0, ++b;
  }
  bad.note(first_bad);
  return {total, wsum};
}

// Backward of rows [n0, n1): d(w ||p - t||^2)/dp = 2 w (p - t) times the term's incoming
// gradient (G[n], or `coef` for a reduced loss); the target's gradient is its negative.
template <typename scalar_t, typename Weight>
SIRENPOSE_SIMD_CLONES void kml_bwd_rows(const scalar_t* __restrict P, const scalar_t* __restrict T,
                                        const Weight& W, const scalar_t* __restrict G, double coef,
                                        scalar_t* __restrict GP, scalar_t* __restrict GT,
                                        int64_t D, int64_t K, int64_t n0, int64_t n1) {
  if (!Weight::weighted && !G) {
    const double c = 2.0 * coef;  // the same for every element: a flat elementwise loop
    for (int64_t e = n0 * D, e1 = n1 * D; e < e1; ++e) {
      const double g = c * (static_cast<double>(P[e]) - static_cast<double>(T[e]));
      if (GP) GP[e] = static_cast<scalar_t>(g);
      if (GT) GT[e] = static_cast<scalar_t>(-g);
    }
    return;
  }
  int64_t b = n0 / K, k = n0 % K;
  for (int64_t n = n0; n < n1; ++n) {
    const double c = 2.0 * W.at(b, k) * (G ? static_cast<double>(G[n]) : coef);
    for (int64_t j = 0; j < D; ++j) {
      const double g = c * (static_cast<double>(P[n * D + j]) - static_cast<double>(T[n * D + j]));
      if (GP) GP[n * D + j] = static_cast<scalar_t>(g);
      if (GT) GT[n * D + j] = static_cast<scalar_t>(-g);
    }
    if (++k == K) k = 0, ++b;
  }
}

std::tuple<at::Tensor, at::Tensor> keypoint_match_fwd_cpu(const at::Tensor& pred_,
                                                          const at::Tensor& target_,
                                                          const c10::optional<at::Tensor>& weight_,
                                                          int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const KmlShape s = kml_shape(pred_, target_);
  const at::Tensor pred = pred_.contiguous(), target = target_.contiguous();
  auto [weight, w_stride] = prepare_weight(weight_, "weight", s.batch, s.K, pred);
  at::Tensor out = reduction == kNone ? at::empty(pred.sizes().slice(0, pred.dim() - 1), pred.options())
                                      : at::empty({}, pred.options());
  double loss = 0.0, denom = static_cast<double>(s.rows);
  FirstBad bad_weight;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "keypoint_match_fwd", [&] {
    const scalar_t* P = pred.data_ptr<scalar_t>();
    const scalar_t* T = target.data_ptr<scalar_t>();
    scalar_t* O = reduction == kNone ? out.data_ptr<scalar_t>() : nullptr;
    const int64_t D = s.D, K = s.K, rows = s.rows;
    std::array<double, 2> sums;
    with_row_weight<scalar_t>(weight, w_stride, [&](const auto& W) {
      sums = chunked_sum<2>(ceil_div(rows, kRowsPerChunk), kRowsPerChunk * D, [&](int64_t c) {
        const int64_t n0 = c * kRowsPerChunk, n1 = std::min(rows, n0 + kRowsPerChunk);
        return kml_fwd_rows<scalar_t>(P, T, W, O, D, K, n0, n1, bad_weight);
      });
    });
    // Every weight entry is read by some row unless there are no rows.
    raise_if_negative<scalar_t>(bad_weight, weight, "weight", rows > 0);
    loss = sums[0];
    if (weight.defined()) denom = sums[1];
  });
  if (reduction != kNone) set_scalar(out, reduction == kMean ? safe_mean(loss, denom) : loss);
  return {out, denom_tensor(denom, pred)};
}

std::tuple<at::Tensor, at::Tensor> keypoint_match_bwd_cpu(
    const at::Tensor& grad_, const at::Tensor& pred_, const at::Tensor& target_,
    const c10::optional<at::Tensor>& weight_, const at::Tensor& denom_, int64_t reduction_,
    std::array<bool, 2> output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  const KmlShape s = kml_shape(pred_, target_);
  const at::Tensor pred = pred_.contiguous(), target = target_.contiguous();
  auto [weight, w_stride] = prepare_weight(weight_, "weight", s.batch, s.K, pred);
  at::Tensor grad_pred = grad_or_empty(output_mask[0], pred);
  at::Tensor grad_target = grad_or_empty(output_mask[1], target);
  if (!output_mask[0] && !output_mask[1]) return {grad_pred, grad_target};
  at::Tensor grad_terms;
  double coef = 0.0;
  if (reduction == kNone) {
    grad_terms = per_term_grad(grad_, pred.sizes().slice(0, pred.dim() - 1), pred, "keypoint_match_bwd");
  } else {
    coef = reduced_coef(scalar_grad(grad_, "keypoint_match_bwd"), denom_value(denom_, 0), reduction);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "keypoint_match_bwd", [&] {
    const scalar_t* P = pred.data_ptr<scalar_t>();
    const scalar_t* T = target.data_ptr<scalar_t>();
    const scalar_t* G = grad_terms.defined() ? grad_terms.data_ptr<scalar_t>() : nullptr;
    scalar_t* GP = output_mask[0] ? grad_pred.data_ptr<scalar_t>() : nullptr;
    scalar_t* GT = output_mask[1] ? grad_target.data_ptr<scalar_t>() : nullptr;
    const int64_t D = s.D, K = s.K;
    with_row_weight<scalar_t>(weight, w_stride, [&](const auto& W) {
      at::parallel_for(0, ceil_div(s.rows, kRowsPerChunk), chunk_grain(kRowsPerChunk * D),
                       [&](int64_t c0, int64_t c1) {
        kml_bwd_rows<scalar_t>(P, T, W, G, coef, GP, GT, D, K, c0 * kRowsPerChunk,
                               std::min(s.rows, c1 * kRowsPerChunk));
      });
    });
  });
  return {grad_pred, grad_target};
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CPU, m) {
  m.impl("keypoint_match_fwd", &keypoint_match_fwd_cpu);
  m.impl("keypoint_match_bwd", &keypoint_match_bwd_cpu);
}

}  // namespace sirenpose
