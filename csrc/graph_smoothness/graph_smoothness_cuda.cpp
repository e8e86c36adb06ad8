// ATen glue of the graph smoothness CUDA kernels: argument checks, device guard, current
// stream, outputs; the kernels are in graph_smoothness_kernels.cu. Edge weights are value-checked
// once per tensor and edge indices once per graph in Python (no host sync here).
#include <torch/library.h>

#include "common/glue_cuda.h"
#include "graph_smoothness/graph_smoothness_cuda.h"

namespace sirenpose {
namespace {

struct SmoothCuda {
  at::Tensor features, edges, incidence, edge_weight;
  cuda::GraphSmoothnessProblem p;

  SmoothCuda(const at::Tensor& features_, const at::Tensor& edge_index,
             const c10::optional<at::Tensor>& edge_weight_, const at::Tensor& incidence_,
             int64_t penalty) {
    check_float(features_, "features");
    TORCH_CHECK_VALUE(features_.is_cuda(), "features must be a CUDA tensor, got ", features_.device());
    TORCH_CHECK_VALUE(features_.dim() >= 2, "features must have shape [..., M, C], got ",
                      features_.sizes());
    TORCH_CHECK_VALUE(penalty == 0 || penalty == 1, "penalty code must be 0 (squared) or 1 (norm), got ",
                      penalty);
    TORCH_CHECK_TYPE(edge_index.scalar_type() == at::kLong && incidence_.scalar_type() == at::kLong,
                     "edge_index and incidence must be int64 tensors, got ", edge_index.scalar_type(),
                     " and ", incidence_.scalar_type());
    TORCH_CHECK_VALUE(edge_index.dim() == 2 && edge_index.size(0) == 2,
                      "edge_index must have shape [2, E], got ", edge_index.sizes());
    check_on(edge_index, "edge_index", features_);
    check_on(incidence_, "incidence", features_);
    const int64_t M = features_.size(-2), C = features_.size(-1), E = edge_index.size(1);
    TORCH_CHECK_VALUE(incidence_.dim() == 1 && incidence_.numel() == 2 * (M + 1) + 4 * E,
                      "incidence must have shape [", 2 * (M + 1) + 4 * E, "], got ",
                      incidence_.sizes(), " (a stale incidence?)");
    features = features_.contiguous();
    edges = edge_index.contiguous();
    incidence = incidence_.contiguous();
    if (edge_weight_.has_value() && edge_weight_->defined()) {
      TORCH_CHECK_VALUE(edge_weight_->numel() == E, "edge_weight must have shape [", E, "], got ",
                        edge_weight_->sizes());
      TORCH_CHECK_TYPE(edge_weight_->scalar_type() == features.scalar_type(),
                       "edge_weight must have dtype ", features.scalar_type(), ", got ",
                       edge_weight_->scalar_type());
      check_on(*edge_weight_, "edge_weight", features);
      edge_weight = edge_weight_->contiguous();
    }
    p = {cuda_dtype(features, "features"), features.data_ptr(), edges.data_ptr<int64_t>(),
         incidence.data_ptr<int64_t>(), data_or_null(edge_weight),
         product(leading_shape(features, 2)), M, C, E, static_cast<int>(penalty)};
  }
  std::vector<int64_t> terms_shape() const {
    std::vector<int64_t> shape = leading_shape(features, 2);
    shape.push_back(p.E);
    return shape;
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> graph_smoothness_fwd_cuda(
    const at::Tensor& features, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence, int64_t penalty,
    int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(features.device());
  const SmoothCuda in(features, edge_index, edge_weight, incidence, penalty);
  const auto opts = in.features.options();
  const bool none = reduction == kNone;
  at::Tensor terms = none ? at::empty(in.terms_shape(), opts) : at::empty({}, opts);
  at::Tensor loss = none ? at::empty({0}, opts) : terms;
  at::Tensor state = at::zeros({1}, opts.dtype(at::kDouble));
  if (in.p.batch * in.p.E == 0) {
    if (!none) terms.zero_();
    return {loss, none ? terms : loss.clone(), state};
  }
  const int64_t blocks = cuda::graph_smoothness_fwd_blocks(in.p);
  const at::Tensor scratch = reduce_scratch(cuda::kGraphSmoothnessSums, blocks, in.features);
  C10_CUDA_CHECK(cuda::graph_smoothness_fwd(in.p, cuda_reduce(reduction), loss.data_ptr(),
                                            terms.data_ptr(), state.data_ptr<double>(),
                                            scratch_ptr(scratch), blocks, current_stream()));
  return {loss, none ? terms : loss.clone(), state};
}

at::Tensor graph_smoothness_bwd_cuda(at::TensorList grads, const at::Tensor& features,
                                     const at::Tensor& edge_index,
                                     const c10::optional<at::Tensor>& edge_weight,
                                     const at::Tensor& incidence, int64_t penalty,
                                     int64_t reduction_, const at::Tensor& state,
                                     at::IntArrayRef output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(features.device());
  const SmoothCuda in(features, edge_index, edge_weight, incidence, penalty);
  if (output_mask.empty() || !output_mask[0]) return at::empty({0}, in.features.options());
  TORCH_CHECK_VALUE(grads.size() == 1, "graph_smoothness_bwd takes one gradient, got ", grads.size());
  const bool none = reduction == kNone;
  const at::Tensor grad = none ? per_term_grad_cuda(grads[0], in.terms_shape(), in.features,
                                                    "graph_smoothness_bwd")
                               : reduced_grad(grads[0], in.features, "graph_smoothness_bwd");
  const at::Tensor denom = none ? at::Tensor() : device_denom(state, 1, in.features);
  at::Tensor out = at::zeros_like(in.features);
  if (in.p.batch * in.p.E == 0) return out;
  const auto fac_dtype = in.features.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor factors = at::empty({in.p.batch * in.p.E}, in.features.options().dtype(fac_dtype));
  C10_CUDA_CHECK(cuda::graph_smoothness_bwd(in.p, cuda_reduce(reduction), grad.data_ptr(),
                                            denom.defined() ? denom.data_ptr<double>() : nullptr,
                                            factors.data_ptr(), out.data_ptr(), current_stream()));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CUDA, m) {
  m.impl("graph_smoothness_fwd", &graph_smoothness_fwd_cuda);
  m.impl("graph_smoothness_bwd", &graph_smoothness_bwd_cuda);
}

}  // namespace sirenpose
