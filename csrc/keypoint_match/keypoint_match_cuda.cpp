// ATen glue of the keypoint match CUDA kernels: argument checks, device guard, current stream,
// output allocation; the kernels are in keypoint_match_kernels.cu. Weights are not value-checked
// here (that would sync with the host on every call): the Python API checks each weight tensor
// once and caches the answer (sirenpose_loss/_validation.py).
#include <torch/library.h>

#include "common/glue_cuda.h"
#include "keypoint_match/keypoint_match_cuda.h"

namespace sirenpose {
namespace {

// Checks the pair and describes it; weight is made contiguous (or left undefined).
cuda::KeypointMatchProblem kml_problem(const at::Tensor& pred, const at::Tensor& target,
                                       const c10::optional<at::Tensor>& weight_,
                                       at::Tensor& weight) {
  check_float(pred, "pred");
  check_same(pred, "pred", target, "target");
  TORCH_CHECK_VALUE(pred.is_cuda(), "pred must be a CUDA tensor, got ", pred.device());
  TORCH_CHECK_VALUE(pred.dim() >= 2, "pred must have shape [..., K, D], got ", pred.sizes());
  const int64_t D = pred.size(-1), K = pred.size(-2);
  TORCH_CHECK_VALUE(D >= 1, "pred must have D >= 1 coordinates, got shape ", pred.sizes());
  const int64_t rows = product(leading_shape(pred, 1));
  auto [w, w_stride] = prepare_weight(weight_, "weight", K ? rows / K : 0, K, pred);
  weight = w;
  return {cuda_dtype(pred, "pred"), pred.data_ptr(), target.data_ptr(), data_or_null(weight),
          w_stride == 0, rows, K, D};
}

std::tuple<at::Tensor, at::Tensor> keypoint_match_fwd_cuda(const at::Tensor& pred_,
                                                           const at::Tensor& target_,
                                                           const c10::optional<at::Tensor>& weight_,
                                                           int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(pred_.device());
  const at::Tensor pred = pred_.contiguous(), target = target_.contiguous();
  at::Tensor weight;
  const cuda::KeypointMatchProblem p = kml_problem(pred, target, weight_, weight);
  at::Tensor out = reduction == kNone ? at::empty(leading_shape(pred, 1), pred.options())
                                      : at::empty({}, pred.options());
  at::Tensor denom = at::empty({}, pred.options().dtype(at::kDouble));
  if (p.rows == 0) return {out.zero_(), denom.zero_()};  // no terms: 0, and a 0 denominator
  const int64_t blocks = cuda::keypoint_match_fwd_blocks(p);
  const at::Tensor scratch = reduce_scratch(cuda::kKeypointMatchSums, blocks, pred);
  C10_CUDA_CHECK(cuda::keypoint_match_fwd(p, cuda_reduce(reduction), out.data_ptr(),
                                          denom.data_ptr<double>(), scratch_ptr(scratch), blocks,
                                          current_stream()));
  return {out, denom};
}

std::tuple<at::Tensor, at::Tensor> keypoint_match_bwd_cuda(
    const at::Tensor& grad_, const at::Tensor& pred_, const at::Tensor& target_,
    const c10::optional<at::Tensor>& weight_, const at::Tensor& denom_, int64_t reduction_,
    std::array<bool, 2> output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(pred_.device());
  const at::Tensor pred = pred_.contiguous(), target = target_.contiguous();
  at::Tensor weight;
  const cuda::KeypointMatchProblem p = kml_problem(pred, target, weight_, weight);
  at::Tensor grad_pred = grad_or_empty(output_mask[0], pred);
  at::Tensor grad_target = grad_or_empty(output_mask[1], target);
  if (!output_mask[0] && !output_mask[1]) return {grad_pred, grad_target};
  const bool none = reduction == kNone;
  const at::Tensor grad = none ? per_term_grad_cuda(grad_, leading_shape(pred, 1), pred,
                                                    "keypoint_match_bwd")
                               : reduced_grad(grad_, pred, "keypoint_match_bwd");
  const at::Tensor denom = none ? at::Tensor() : device_denom(denom_, 1, pred);
  if (p.rows == 0) return {grad_pred, grad_target};
  C10_CUDA_CHECK(cuda::keypoint_match_bwd(
      p, cuda_reduce(reduction), grad.data_ptr(),
      denom.defined() ? denom.data_ptr<double>() : nullptr,
      output_mask[0] ? grad_pred.data_ptr() : nullptr,
      output_mask[1] ? grad_target.data_ptr() : nullptr, current_stream()));
  return {grad_pred, grad_target};
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CUDA, m) {
  m.impl("keypoint_match_fwd", &keypoint_match_fwd_cuda);
  m.impl("keypoint_match_bwd", &keypoint_match_bwd_cuda);
}

}  // namespace sirenpose
