// ATen glue of the SirenPose CUDA kernels: argument checks, device guard, current stream,
// output allocation, and the per-keypoint incidence (CSR) of the graph the backward gathers
// over; the kernels are in sirenpose_kernels.cu. No check here reads tensor values (that would
// sync with the host on every call): edge indices are range-checked once per graph and weights
// once per tensor in Python, and the kernels poison a bad edge index with NaN instead of
// reading out of bounds.
#include <torch/library.h>

#include "common/glue_cuda.h"
#include "sirenpose/sirenpose_cuda.h"

namespace sirenpose {
namespace {

struct Graph {
  cuda::SirenPoseProblem problem;
  at::Tensor edges, weight, edge_weight;  // contiguous (or undefined) owners of the pointers
};

Graph graph_problem(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& edge_index,
                    const c10::optional<at::Tensor>& weight_,
                    const c10::optional<at::Tensor>& edge_weight_, double omega0,
                    double lambda_geo, bool with_pos) {
  check_positive_number(omega0, "omega0");
  check_nonnegative_number(lambda_geo, "lambda_geo");
  check_float(pred, "pred");
  check_same(pred, "pred", target, "target");
  TORCH_CHECK_VALUE(pred.is_cuda(), "pred must be a CUDA tensor, got ", pred.device());
  TORCH_CHECK_VALUE(pred.dim() >= 2, "pred must have shape [..., K, D], got ", pred.sizes());
  TORCH_CHECK_TYPE(edge_index.scalar_type() == at::kLong || edge_index.scalar_type() == at::kInt,
                   "edge_index must be an int64 (or int32) tensor, got dtype ",
                   edge_index.scalar_type());
  TORCH_CHECK_VALUE(edge_index.dim() == 2 && edge_index.size(0) == 2,
                    "edge_index must have shape [2, E], got ", edge_index.sizes());
  check_on(edge_index, "edge_index", pred);
  const int64_t K = pred.size(-2), D = pred.size(-1), E = edge_index.size(1);
  TORCH_CHECK_VALUE(D >= 1, "pred must have D >= 1 coordinates, got shape ", pred.sizes());
  const int64_t batch = product(leading_shape(pred, 2));
  Graph g;
  g.edges = edge_index.contiguous();
  auto [w, w_stride] = prepare_weight(weight_, "weight", batch, K, pred);
  auto [ew, ew_stride] = prepare_weight(edge_weight_, "edge_weight", 1, E, pred);
  TORCH_CHECK_VALUE(!ew.defined() || ew.numel() == E, "edge_weight must have ", E,
                    " elements (one per edge), got ", ew.numel());
  g.weight = w;
  g.edge_weight = ew;
  g.problem = {cuda_dtype(pred, "pred"),
               edge_index.scalar_type() == at::kLong ? cuda::IndexType::kInt64
                                                     : cuda::IndexType::kInt32,
               pred.data_ptr(), target.data_ptr(), g.edges.data_ptr(), data_or_null(w),
               w_stride == 0, data_or_null(ew), batch, K, D, E, omega0, lambda_geo, with_pos};
  return g;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sirenpose_fwd_cuda(
    const at::Tensor& pred_, const at::Tensor& target_, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& weight_, const c10::optional<at::Tensor>& edge_weight_,
    double omega0, double lambda_geo, bool with_pos, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(pred_.device());
  const at::Tensor pred = pred_.contiguous(), target = target_.contiguous();
  const Graph g = graph_problem(pred, target, edge_index, weight_, edge_weight_, omega0,
                                lambda_geo, with_pos);
  const cuda::SirenPoseProblem& p = g.problem;
  const auto opts = pred.options();
  at::Tensor loss, pos, geo;
  if (reduction == kNone) {
    std::vector<int64_t> geo_shape = leading_shape(pred, 2);
    geo_shape.push_back(p.E);
    loss = at::empty({0}, opts);
    pos = with_pos ? at::empty(leading_shape(pred, 1), opts) : at::empty({0}, opts);
    geo = at::empty(geo_shape, opts);
  } else {
    loss = at::empty({}, opts);
    pos = at::empty({}, opts);
    geo = at::empty({}, opts);
  }
  at::Tensor denom = at::empty({2}, opts.dtype(at::kDouble));
  // Even with no terms the kernel runs (one block over nothing): it writes the denominators
  // with the CPU's conventions (a term count when unweighted) and zero losses.
  const int64_t blocks = cuda::sirenpose_fwd_blocks(p);
  const at::Tensor scratch = reduce_scratch(cuda::kSirenPoseSums, blocks, pred);
  C10_CUDA_CHECK(cuda::sirenpose_fwd(p, cuda_reduce(reduction), loss.data_ptr(),
                                     pos.numel() ? pos.data_ptr() : nullptr,
                                     geo.numel() ? geo.data_ptr() : nullptr,
                                     denom.data_ptr<double>(), scratch_ptr(scratch), blocks,
                                     current_stream()));
  return {loss, pos, geo, denom};
}

// The incidence of sirenpose_loss._incidence.build_incidence, built on the device without a
// host sync when the caller passes none: a stable sort of the endpoints, then each node's
// first slot by binary search. An out-of-range endpoint falls outside every node's range, and
// ptr[0] != 0 or ptr[K] != 2E then tells the kernel to poison the result.
std::pair<at::Tensor, at::Tensor> incidence(const at::Tensor& edges, int64_t K,
                                            const c10::optional<at::Tensor>& ptr_,
                                            const c10::optional<at::Tensor>& slot_) {
  const bool has_ptr = ptr_.has_value() && ptr_->defined();
  const bool has_slot = slot_.has_value() && slot_->defined();
  TORCH_CHECK_VALUE(has_ptr == has_slot, "incidence_ptr and incidence_slot must be given together");
  const int64_t E = edges.size(1);
  if (has_ptr) {
    for (const auto& [t, name, n] : {std::make_tuple(*ptr_, "incidence_ptr", K + 1),
                                     std::make_tuple(*slot_, "incidence_slot", 2 * E)}) {
      TORCH_CHECK_TYPE(t.scalar_type() == at::kLong, name, " must be int64, got ", t.scalar_type());
      check_on(t, name, edges);
      TORCH_CHECK_VALUE(t.dim() == 1 && t.numel() == n, name, " must have shape [", n, "], got ",
                        t.sizes());
    }
    return {ptr_->contiguous(), slot_->contiguous()};
  }
  const at::Tensor nodes = edges.t().reshape({-1}).to(at::kLong);  // src0, dst0, src1, dst1, ...
  auto [sorted, slot] = at::sort(nodes, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor ptr = at::searchsorted(sorted, at::arange(K + 1, nodes.options()));
  return {ptr.contiguous(), slot.contiguous()};
}

std::tuple<at::Tensor, at::Tensor> sirenpose_bwd_cuda(
    const at::Tensor& grad_pos_, const at::Tensor& grad_geo_, const at::Tensor& pred_,
    const at::Tensor& target_, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& weight_, const c10::optional<at::Tensor>& edge_weight_,
    const at::Tensor& denom_, const c10::optional<at::Tensor>& incidence_ptr,
    const c10::optional<at::Tensor>& incidence_slot, double omega0, double lambda_geo,
    bool with_pos, int64_t reduction_, std::array<bool, 2> output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(pred_.device());
  const at::Tensor pred = pred_.contiguous(), target = target_.contiguous();
  const Graph g = graph_problem(pred, target, edge_index, weight_, edge_weight_, omega0,
                                lambda_geo, with_pos);
  const cuda::SirenPoseProblem& p = g.problem;
  at::Tensor grad_pred = grad_or_empty(output_mask[0], pred);
  at::Tensor grad_target = grad_or_empty(output_mask[1], target);
  if (!output_mask[0] && !output_mask[1]) return {grad_pred, grad_target};
  at::Tensor grad_pos, grad_geo, denom;
  if (reduction == kNone) {
    std::vector<int64_t> geo_shape = leading_shape(pred, 2);
    geo_shape.push_back(p.E);
    if (with_pos)
      grad_pos = per_term_grad_cuda(grad_pos_, leading_shape(pred, 1), pred, "sirenpose_bwd");
    grad_geo = per_term_grad_cuda(grad_geo_, geo_shape, pred, "sirenpose_bwd");
  } else {
    if (with_pos) grad_pos = reduced_grad(grad_pos_, pred, "sirenpose_bwd");
    grad_geo = reduced_grad(grad_geo_, pred, "sirenpose_bwd");
    denom = device_denom(denom_, 2, pred);
  }
  if (pred.numel() == 0) return {grad_pred, grad_target};
  const auto [ptr, slot] = incidence(g.edges, p.K, incidence_ptr, incidence_slot);
  C10_CUDA_CHECK(cuda::sirenpose_bwd(
      p, cuda_reduce(reduction), data_or_null(grad_pos), data_or_null(grad_geo),
      denom.defined() ? denom.data_ptr<double>() : nullptr, ptr.data_ptr<int64_t>(),
      slot.numel() ? slot.data_ptr<int64_t>() : nullptr,
      output_mask[0] ? grad_pred.data_ptr() : nullptr,
      output_mask[1] ? grad_target.data_ptr() : nullptr, current_stream()));
  return {grad_pred, grad_target};
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CUDA, m) {
  m.impl("sirenpose_fwd", &sirenpose_fwd_cuda);
  m.impl("sirenpose_bwd", &sirenpose_bwd_cuda);
}

}  // namespace sirenpose
