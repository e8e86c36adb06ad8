// ATen glue of the spatio-temporal consistency CUDA kernels: argument checks, device guard,
// current stream, output allocation; the kernels are in spatiotemporal_consistency_kernels.cu.
// Weights are value-checked once per tensor in Python (sirenpose_loss/_validation.py), not here.
#include <torch/library.h>

#include "common/glue_cuda.h"
#include "spatiotemporal_consistency/spatiotemporal_consistency_cuda.h"

namespace sirenpose {
namespace {

// Checks positions and describes the problem; weight is made contiguous (or left undefined).
cuda::SpatioTemporalProblem scl_problem(const at::Tensor& positions, int64_t order,
                                        const c10::optional<at::Tensor>& weight_,
                                        at::Tensor& weight) {
  check_float(positions, "positions");
  TORCH_CHECK_VALUE(positions.is_cuda(), "positions must be a CUDA tensor, got ",
                    positions.device());
  check_order(order);
  TORCH_CHECK_VALUE(positions.dim() >= 3, "positions must have shape [..., T, M, D], got ",
                    positions.sizes());
  const int64_t T = positions.size(-3), M = positions.size(-2), D = positions.size(-1);
  TORCH_CHECK_VALUE(D >= 1, "positions must have D >= 1 coordinates, got shape ",
                    positions.sizes());
  const int64_t batch = product(leading_shape(positions, 3));
  auto [w, w_stride] = prepare_weight(weight_, "weight", batch, M, positions);
  weight = w;
  return {cuda_dtype(positions, "positions"), positions.data_ptr(), data_or_null(weight),
          w_stride == 0, batch, T, M, D, static_cast<int>(order), T > order ? T - order : 0};
}

std::vector<int64_t> terms_shape(const at::Tensor& positions, const cuda::SpatioTemporalProblem& p) {
  std::vector<int64_t> shape = leading_shape(positions, 3);
  shape.push_back(p.steps);
  shape.push_back(p.M);
  return shape;
}

std::tuple<at::Tensor, at::Tensor> scl_fwd_cuda(const at::Tensor& positions_,
                                                const c10::optional<at::Tensor>& weight_,
                                                int64_t order, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(positions_.device());
  const at::Tensor positions = positions_.contiguous();
  at::Tensor weight;
  const cuda::SpatioTemporalProblem p = scl_problem(positions, order, weight_, weight);
  at::Tensor out = reduction == kNone ? at::empty(terms_shape(positions, p), positions.options())
                                      : at::empty({}, positions.options());
  at::Tensor denom = at::empty({}, positions.options().dtype(at::kDouble));
  // No terms (T <= order, or no Gaussians): 0, with a 0 denominator, as on the CPU.
  if (p.steps == 0 || p.batch * p.M == 0) return {out.zero_(), denom.zero_()};
  const int64_t blocks = cuda::spatiotemporal_fwd_blocks(p);
  const at::Tensor scratch = reduce_scratch(cuda::kSpatioTemporalSums, blocks, positions);
  C10_CUDA_CHECK(cuda::spatiotemporal_consistency_fwd(p, cuda_reduce(reduction), out.data_ptr(),
                                                      denom.data_ptr<double>(),
                                                      scratch_ptr(scratch), blocks,
                                                      current_stream()));
  return {out, denom};
}

at::Tensor scl_bwd_cuda(const at::Tensor& grad_, const at::Tensor& positions_,
                        const c10::optional<at::Tensor>& weight_, const at::Tensor& denom_,
                        int64_t order, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(positions_.device());
  const at::Tensor positions = positions_.contiguous();
  at::Tensor weight;
  const cuda::SpatioTemporalProblem p = scl_problem(positions, order, weight_, weight);
  const bool none = reduction == kNone;
  const at::Tensor grad = none ? per_term_grad_cuda(grad_, terms_shape(positions, p), positions,
                                                    "spatiotemporal_consistency_bwd")
                               : reduced_grad(grad_, positions, "spatiotemporal_consistency_bwd");
  const at::Tensor denom = none ? at::Tensor() : device_denom(denom_, 1, positions);
  at::Tensor grad_positions = at::empty_like(positions);
  if (p.steps == 0 || grad_positions.numel() == 0) return grad_positions.zero_();
  C10_CUDA_CHECK(cuda::spatiotemporal_consistency_bwd(
      p, cuda_reduce(reduction), grad.data_ptr(),
      denom.defined() ? denom.data_ptr<double>() : nullptr, grad_positions.data_ptr(),
      current_stream()));
  return grad_positions;
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CUDA, m) {
  m.impl("spatiotemporal_consistency_fwd", &scl_fwd_cuda);
  m.impl("spatiotemporal_consistency_bwd", &scl_bwd_cuda);
}

}  // namespace sirenpose
