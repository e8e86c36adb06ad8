// Keypoint match loss on the CPU: sum_n w_n ||pred_n - target_n||^2, one fused pass each way.
#include <torch/library.h>

#include "common/kernel_utils.h"

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
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "keypoint_match_fwd", [&] {
    check_nonnegative<scalar_t>(weight, "weight");
    const scalar_t* P = pred.data_ptr<scalar_t>();
    const scalar_t* T = target.data_ptr<scalar_t>();
    scalar_t* O = reduction == kNone ? out.data_ptr<scalar_t>() : nullptr;
    const int64_t D = s.D, K = s.K, rows = s.rows;
    std::array<double, 2> sums;
    with_row_weight<scalar_t>(weight, w_stride, [&](const auto& W) {
      sums = chunked_sum<2>(ceil_div(rows, kRowsPerChunk), kRowsPerChunk * D, [&](int64_t c) {
        std::array<double, 2> acc{0.0, 0.0};  // (weighted squared distances, weights)
        const int64_t end = std::min(rows, (c + 1) * kRowsPerChunk);
        for (int64_t n = c * kRowsPerChunk; n < end; ++n) {
          double sq = 0.0;
          for (int64_t k = 0; k < D; ++k) {
            const double d = static_cast<double>(P[n * D + k]) - static_cast<double>(T[n * D + k]);
            sq += d * d;
          }
          const double w = W.at(n / K, n % K);
          if (O) O[n] = static_cast<scalar_t>(w * sq);
          acc[0] += w * sq;
          acc[1] += w;
        }
        return acc;
      });
    });
    loss = sums[0];
    if (weight.defined()) denom = sums[1];
  });
  if (reduction != kNone) out.fill_(reduction == kMean ? safe_mean(loss, denom) : loss);
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
      at::parallel_for(0, s.rows, chunk_grain(D), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          // d(w ||p - t||^2)/dp = 2 w (p - t), scaled by the incoming gradient of this term.
          const double c = 2.0 * W.at(n / K, n % K) * (G ? static_cast<double>(G[n]) : coef);
          for (int64_t k = 0; k < D; ++k) {
            const double g = c * (static_cast<double>(P[n * D + k]) - static_cast<double>(T[n * D + k]));
            if (GP) GP[n * D + k] = static_cast<scalar_t>(g);
            if (GT) GT[n * D + k] = static_cast<scalar_t>(-g);
          }
        }
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
