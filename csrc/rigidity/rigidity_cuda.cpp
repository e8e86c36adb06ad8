// ATen glue of the rigidity trio's CUDA kernels: argument checks, device guard, current stream,
// outputs and scratch; the kernels are in rigidity_kernels.cu. Edge weights are value-checked
// once per tensor and edge indices once per graph in Python (no host sync here).
#include <torch/library.h>

#include "common/glue_cuda.h"
#include "rigidity/rigidity_cuda.h"

namespace sirenpose {
namespace {

struct TrioCuda {
  at::Tensor like, x, q, edges, incidence, rest, w;
  cuda::RigidityProblem p;

  static at::Tensor optional(const c10::optional<at::Tensor>& t) {
    return t.has_value() && t->defined() ? t->contiguous() : at::Tensor();
  }
  TrioCuda(const c10::optional<at::Tensor>& positions, const c10::optional<at::Tensor>& quaternions,
           const at::Tensor& edge_index, const c10::optional<at::Tensor>& rest_length,
           const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence_,
           at::ArrayRef<double> lambdas, int64_t terms, int64_t penalty) {
    x = optional(positions);
    q = optional(quaternions);
    TORCH_CHECK_VALUE(x.defined() || q.defined(), "rigidity: positions or quaternions must be given");
    like = x.defined() ? x : q;
    check_float(like, "positions");
    TORCH_CHECK_VALUE(like.is_cuda(), "positions must be a CUDA tensor, got ", like.device());
    TORCH_CHECK_VALUE(like.dim() >= 3, "positions must have shape [..., T, M, 3], got ", like.sizes());
    TORCH_CHECK_VALUE(terms >= 1 && terms <= 7, "terms must be a bit mask in [1, 7], got ", terms);
    TORCH_CHECK_VALUE(penalty == 0 || penalty == 1, "penalty code must be 0 (squared) or 1 (norm), got ",
                      penalty);
    TORCH_CHECK_VALUE(lambdas.size() == 3, "lambdas must have 3 values, got ", lambdas.size());
    const bool pair = terms & 3, needs_x = terms & 5;
    TORCH_CHECK_VALUE(!needs_x || (x.defined() && x.size(-1) == 3),
                      "rigidity: positions [..., T, M, 3] are needed by the terms ", terms);
    TORCH_CHECK_VALUE(!pair || (q.defined() && q.size(-1) == 4 &&
                                q.sizes().slice(0, q.dim() - 1) == like.sizes().slice(0, like.dim() - 1)),
                      "rigidity: quaternions [..., T, M, 4] are needed by the terms ", terms);
    for (const at::Tensor* t : {&x, &q})
      if (t->defined()) {
        TORCH_CHECK_TYPE(t->scalar_type() == like.scalar_type(), "positions and quaternions must "
                         "have the same dtype, got ", t->scalar_type());
        check_on(*t, "quaternions", like);
      }
    TORCH_CHECK_TYPE(edge_index.scalar_type() == at::kLong && incidence_.scalar_type() == at::kLong,
                     "edge_index and incidence must be int64 tensors");
    TORCH_CHECK_VALUE(edge_index.dim() == 2 && edge_index.size(0) == 2,
                      "edge_index must have shape [2, E], got ", edge_index.sizes());
    check_on(edge_index, "edge_index", like);
    check_on(incidence_, "incidence", like);
    const int64_t T = like.size(-3), M = like.size(-2), E = edge_index.size(1);
    TORCH_CHECK_VALUE(incidence_.dim() == 1 && incidence_.numel() == 2 * (M + 1) + 4 * E,
                      "incidence must have shape [", 2 * (M + 1) + 4 * E, "], got ",
                      incidence_.sizes(), " (a stale incidence?)");
    edges = edge_index.contiguous();
    incidence = incidence_.contiguous();
    rest = optional(rest_length);
    w = optional(edge_weight);
    TORCH_CHECK_VALUE(!(terms & 4) || rest.defined(), "rigidity: rest_length is needed by the isometry term");
    for (const auto& [t, name] : {std::pair<const at::Tensor*, const char*>{&rest, "rest_length"},
                                  {&w, "edge_weight"}})
      if (t->defined()) {
        TORCH_CHECK_VALUE(t->numel() == E, name, " must have shape [", E, "], got ", t->sizes());
        TORCH_CHECK_TYPE(t->scalar_type() == like.scalar_type(), name, " must have dtype ",
                         like.scalar_type(), ", got ", t->scalar_type());
        check_on(*t, name, like);
      }
    p = {cuda_dtype(like, "positions"), data_or_null(x), data_or_null(q), edges.data_ptr<int64_t>(),
         incidence.data_ptr<int64_t>(), data_or_null(rest), data_or_null(w),
         product(leading_shape(like, 3)), T, M, E, static_cast<int>(terms), static_cast<int>(penalty),
         {lambdas[0], lambdas[1], lambdas[2]}};
  }
  int64_t pairs() const { return p.T > 1 ? p.T - 1 : 0; }
  std::vector<int64_t> terms_shape(int k) const {
    std::vector<int64_t> shape = leading_shape(like, 3);
    const bool on = p.terms >> k & 1;
    shape.push_back(on ? (k == 2 ? p.T : pairs()) : 0);
    shape.push_back(on ? p.E : 0);
    return shape;
  }
  at::ScalarType scratch_dtype() const {
    return like.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  }
  at::Tensor rel() const {
    return at::empty({p.batch * pairs() * p.M * cuda::kRigidityRel}, like.options().dtype(scratch_dtype()));
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rigidity_fwd_cuda(
    const c10::optional<at::Tensor>& positions, const c10::optional<at::Tensor>& quaternions,
    const at::Tensor& edge_index, const c10::optional<at::Tensor>& rest_length,
    const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence,
    at::ArrayRef<double> lambdas, int64_t terms, int64_t penalty, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const at::Tensor& device_of = positions.has_value() && positions->defined() ? *positions : *quaternions;
  const c10::cuda::CUDAGuard guard(device_of.device());
  const TrioCuda in(positions, quaternions, edge_index, rest_length, edge_weight, incidence,
                    lambdas, terms, penalty);
  const auto opts = in.like.options();
  const bool none = reduction == kNone;
  at::Tensor out[3];
  for (int k = 0; k < 3; ++k) out[k] = none ? at::empty(in.terms_shape(k), opts) : at::zeros({}, opts);
  at::Tensor loss = none ? at::empty({0}, opts) : at::zeros({}, opts);
  at::Tensor state = at::zeros({3}, opts.dtype(at::kDouble));
  if (in.p.batch * in.p.T * in.p.E == 0) return {loss, out[0], out[1], out[2], state};
  const at::Tensor rel = in.rel();
  const int64_t blocks = cuda::rigidity_fwd_blocks(in.p);
  const at::Tensor scratch = reduce_scratch(cuda::kRigiditySums, blocks, in.like);
  void* const term_ptrs[3] = {out[0].data_ptr(), out[1].data_ptr(), out[2].data_ptr()};
  C10_CUDA_CHECK(cuda::rigidity_fwd(in.p, cuda_reduce(reduction), loss.data_ptr(), term_ptrs,
                                    state.data_ptr<double>(), rel.data_ptr(), scratch_ptr(scratch),
                                    blocks, current_stream()));
  return {loss, out[0], out[1], out[2], state};
}

std::tuple<at::Tensor, at::Tensor> rigidity_bwd_cuda(
    at::TensorList grads, const c10::optional<at::Tensor>& positions,
    const c10::optional<at::Tensor>& quaternions, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& rest_length, const c10::optional<at::Tensor>& edge_weight,
    const at::Tensor& incidence, at::ArrayRef<double> lambdas, int64_t terms, int64_t penalty,
    int64_t reduction_, const at::Tensor& state, at::IntArrayRef output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  const at::Tensor& device_of = positions.has_value() && positions->defined() ? *positions : *quaternions;
  const c10::cuda::CUDAGuard guard(device_of.device());
  const TrioCuda in(positions, quaternions, edge_index, rest_length, edge_weight, incidence,
                    lambdas, terms, penalty);
  TORCH_CHECK_VALUE(output_mask.size() == 2, "output_mask must have 2 values, got ", output_mask.size());
  const bool want_x = output_mask[0] && in.x.defined(), want_q = output_mask[1] && in.q.defined();
  at::Tensor gx = want_x ? at::zeros_like(in.x) : at::empty({0}, in.like.options());
  at::Tensor gq = want_q ? at::zeros_like(in.q) : at::empty({0}, in.like.options());
  if ((!want_x && !want_q) || in.p.batch * in.p.T * in.p.E == 0) return {gx, gq};
  const bool none = reduction == kNone;
  std::vector<at::Tensor> keep;
  const void* grad_ptrs[3] = {nullptr, nullptr, nullptr};
  for (int k = 0; k < 3; ++k) {
    if (none ? !(terms >> k & 1) : k > 0) continue;
    TORCH_CHECK_VALUE(static_cast<int64_t>(grads.size()) > k, "rigidity_bwd: missing gradient ", k);
    keep.push_back(none ? per_term_grad_cuda(grads[k], in.terms_shape(k), in.like, "rigidity_bwd")
                        : reduced_grad(grads[0], in.like, "rigidity_bwd"));
    grad_ptrs[k] = keep.back().data_ptr();
  }
  const at::Tensor denom = none ? at::Tensor() : device_denom(state, 3, in.like);
  const at::Tensor rel = in.rel();
  at::Tensor factors = at::empty({in.p.batch * in.p.T * in.p.E * 3}, in.like.options().dtype(in.scratch_dtype()));
  C10_CUDA_CHECK(cuda::rigidity_bwd(in.p, cuda_reduce(reduction), grad_ptrs,
                                    denom.defined() ? denom.data_ptr<double>() : nullptr,
                                    rel.data_ptr(), factors.data_ptr(),
                                    want_x ? gx.data_ptr() : nullptr, want_q ? gq.data_ptr() : nullptr,
                                    current_stream()));
  return {gx, gq};
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CUDA, m) {
  m.impl("rigidity_fwd", &rigidity_fwd_cuda);
  m.impl("rigidity_bwd", &rigidity_bwd_cuda);
}

}  // namespace sirenpose
