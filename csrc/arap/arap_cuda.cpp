// ATen glue of the ARAP CUDA kernels: argument checks, device guard, current stream, outputs;
// the kernels are in arap_kernels.cu. Edge weights are value-checked once per tensor and edge
// indices once per graph in Python (no host sync here).
#include <torch/library.h>

#include "arap/arap_cuda.h"
#include "common/glue_cuda.h"

namespace sirenpose {
namespace {

struct ArapCuda {
  at::Tensor x, rest, edges, incidence, w;
  cuda::ArapProblem p;

  ArapCuda(const at::Tensor& positions, const at::Tensor& edge_index,
           const c10::optional<at::Tensor>& rest_positions,
           const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence_) {
    check_float(positions, "positions");
    TORCH_CHECK_VALUE(positions.is_cuda(), "positions must be a CUDA tensor, got ", positions.device());
    TORCH_CHECK_VALUE(positions.dim() >= 3 && positions.size(-1) == 3,
                      "positions must have shape [..., T, M, 3], got ", positions.sizes());
    TORCH_CHECK_TYPE(edge_index.scalar_type() == at::kLong && incidence_.scalar_type() == at::kLong,
                     "edge_index and incidence must be int64 tensors");
    TORCH_CHECK_VALUE(edge_index.dim() == 2 && edge_index.size(0) == 2,
                      "edge_index must have shape [2, E], got ", edge_index.sizes());
    check_on(edge_index, "edge_index", positions);
    check_on(incidence_, "incidence", positions);
    x = positions.contiguous();
    const int64_t batch = product(leading_shape(x, 3)), T = x.size(-3), M = x.size(-2),
                  E = edge_index.size(1);
    TORCH_CHECK_VALUE(incidence_.dim() == 1 && incidence_.numel() == 2 * (M + 1) + 4 * E,
                      "incidence must have shape [", 2 * (M + 1) + 4 * E, "], got ",
                      incidence_.sizes(), " (a stale incidence?)");
    edges = edge_index.contiguous();
    incidence = incidence_.contiguous();
    int64_t rest_stride = T * M * 3;  // the first frame of each batch entry
    const void* rest_ptr = x.data_ptr();
    if (rest_positions.has_value() && rest_positions->defined()) {
      rest = rest_positions->contiguous();
      TORCH_CHECK_TYPE(rest.scalar_type() == x.scalar_type(), "rest_positions must have dtype ",
                       x.scalar_type(), ", got ", rest.scalar_type());
      check_on(rest, "rest_positions", x);
      const bool shared = rest.dim() == 2 && rest.size(0) == M && rest.size(1) == 3;
      TORCH_CHECK_VALUE(shared || (rest.numel() == batch * M * 3 && rest.size(-1) == 3),
                        "rest_positions must have shape [..., M, 3] or [M, 3], got ", rest.sizes());
      rest_stride = shared ? 0 : M * 3;
      rest_ptr = rest.data_ptr();
    }
    if (edge_weight.has_value() && edge_weight->defined()) {
      w = edge_weight->contiguous();
      TORCH_CHECK_VALUE(w.numel() == E, "edge_weight must have shape [", E, "], got ", w.sizes());
      TORCH_CHECK_TYPE(w.scalar_type() == x.scalar_type(), "edge_weight must have dtype ",
                       x.scalar_type(), ", got ", w.scalar_type());
      check_on(w, "edge_weight", x);
    }
    p = {cuda_dtype(x, "positions"), x.data_ptr(), rest_ptr, rest_stride, edges.data_ptr<int64_t>(),
         incidence.data_ptr<int64_t>(), data_or_null(w), batch, T, M, E};
  }
  std::vector<int64_t> terms_shape() const {
    std::vector<int64_t> shape = leading_shape(x, 3);
    shape.push_back(p.T);
    shape.push_back(p.E);
    return shape;
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> arap_fwd_cuda(
    const at::Tensor& positions, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& rest_positions, const c10::optional<at::Tensor>& edge_weight,
    const at::Tensor& incidence, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(positions.device());
  const ArapCuda in(positions, edge_index, rest_positions, edge_weight, incidence);
  const auto opts = in.x.options();
  const bool none = reduction == kNone;
  at::Tensor terms = none ? at::empty(in.terms_shape(), opts) : at::zeros({}, opts);
  at::Tensor loss = none ? at::empty({0}, opts) : terms;
  at::Tensor state = at::zeros({1 + in.p.batch * in.p.T * in.p.M * 9}, opts.dtype(at::kDouble));
  if (in.p.batch * in.p.T * in.p.M == 0) return {loss, none ? terms : loss.clone(), state};
  const int64_t blocks = cuda::arap_fwd_blocks(in.p);
  const at::Tensor scratch = reduce_scratch(cuda::kArapSums, blocks, in.x);
  C10_CUDA_CHECK(cuda::arap_fwd(in.p, cuda_reduce(reduction), loss.data_ptr(), terms.data_ptr(),
                                state.data_ptr<double>(), scratch_ptr(scratch), blocks,
                                current_stream()));
  return {loss, none ? terms : loss.clone(), state};
}

at::Tensor arap_bwd_cuda(at::TensorList grads, const at::Tensor& positions,
                         const at::Tensor& edge_index, const c10::optional<at::Tensor>& rest_positions,
                         const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence,
                         int64_t reduction_, const at::Tensor& state, at::IntArrayRef output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  const c10::cuda::CUDAGuard guard(positions.device());
  const ArapCuda in(positions, edge_index, rest_positions, edge_weight, incidence);
  if (output_mask.empty() || !output_mask[0]) return at::empty({0}, in.x.options());
  TORCH_CHECK_VALUE(grads.size() == 1, "arap_bwd takes one gradient, got ", grads.size());
  TORCH_CHECK_VALUE(state.scalar_type() == at::kDouble && state.numel() == 1 + in.p.batch * in.p.T * in.p.M * 9,
                    "arap_bwd: state must be the float64 state of arap_fwd, got ", state.sizes());
  check_on(state, "state", in.x);
  const bool none = reduction == kNone;
  const at::Tensor grad = none ? per_term_grad_cuda(grads[0], in.terms_shape(), in.x, "arap_bwd")
                               : reduced_grad(grads[0], in.x, "arap_bwd");
  const at::Tensor st = state.contiguous();
  at::Tensor out = at::zeros_like(in.x);
  if (in.p.batch * in.p.T * in.p.E == 0) return out;
  const auto fac_dtype = in.x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor factors = at::empty({in.p.batch * in.p.T * in.p.E}, in.x.options().dtype(fac_dtype));
  C10_CUDA_CHECK(cuda::arap_bwd(in.p, cuda_reduce(reduction), grad.data_ptr(), st.data_ptr<double>(),
                                factors.data_ptr(), out.data_ptr(), current_stream()));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CUDA, m) {
  m.impl("arap_fwd", &arap_fwd_cuda);
  m.impl("arap_bwd", &arap_bwd_cuda);
}

}  // namespace sirenpose
