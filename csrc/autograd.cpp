// The differentiable ops: torch::autograd::Function subclasses that call the fused forward
// op and, in backward, the fused backward op, registered for the Autograd key. Keeping autograd
// in C++ (not a Python autograd.Function) removes the Python overhead of a Function per call,
// a large share of the cost of a small loss (B=1, K=17). torch.compile traces through them into
// the fwd/bwd ops, whose fake kernels live in sirenpose_loss/_ops.py.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/functions/basic_ops.h>
#include <torch/library.h>

#include "common/double_backward.h"
#include "common/reduction.h"

namespace sirenpose {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptTensor = std::optional<at::Tensor>;
using Mask = std::array<bool, 2>;

OptTensor opt(const at::Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

template <typename Sig>
c10::TypedOperatorHandle<Sig> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

struct KeypointMatch : public torch::autograd::Function<KeypointMatch> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& pred, const at::Tensor& target,
                            const OptTensor& weight, int64_t reduction) {
    static auto fwd = op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                            const OptTensor&, int64_t)>(
        "sirenpose_loss::keypoint_match_fwd");
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, denom] = fwd.call(pred, target, weight, reduction);
    ctx->save_for_backward({pred, target, weight.value_or(at::Tensor()), denom});
    ctx->saved_data["reduction"] = reduction;
    return loss;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto bwd = op<std::tuple<at::Tensor, at::Tensor>(
        const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&,
        const at::Tensor&, int64_t, Mask)>("sirenpose_loss::keypoint_match_bwd");
    const auto s = ctx->get_saved_variables();
    const Mask mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    auto [gp, gt] = bwd.call(grads[0], s[0], s[1], opt(s[2]), s[3],
                             ctx->saved_data["reduction"].toInt(), mask);
    return refuse_double_backward(
        {mask[0] ? gp : at::Tensor(), mask[1] ? gt : at::Tensor(), at::Tensor(), at::Tensor()});
  }
};

struct SpatioTemporalConsistency : public torch::autograd::Function<SpatioTemporalConsistency> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& positions,
                            const OptTensor& weight, int64_t order, int64_t reduction) {
    static auto fwd = op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const OptTensor&,
                                                            int64_t, int64_t)>(
        "sirenpose_loss::spatiotemporal_consistency_fwd");
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, denom] = fwd.call(positions, weight, order, reduction);
    ctx->save_for_backward({positions, weight.value_or(at::Tensor()), denom});
    ctx->saved_data["order"] = order;
    ctx->saved_data["reduction"] = reduction;
    return loss;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto bwd = op<at::Tensor(const at::Tensor&, const at::Tensor&, const OptTensor&,
                                    const at::Tensor&, int64_t, int64_t)>(
        "sirenpose_loss::spatiotemporal_consistency_bwd");
    const auto s = ctx->get_saved_variables();
    at::Tensor g = bwd.call(grads[0], s[0], opt(s[1]), s[2], ctx->saved_data["order"].toInt(),
                            ctx->saved_data["reduction"].toInt());
    return refuse_double_backward({g, at::Tensor(), at::Tensor(), at::Tensor()});
  }
};

// A tensor shaped like the per-edge terms [..., E] of pred [..., K, D] and edge_index [2, E].
at::Tensor geo_like(const at::Tensor& pred, const at::Tensor& edge_index) {
  std::vector<int64_t> shape(pred.sizes().begin(), pred.sizes().end() - 2);
  shape.push_back(edge_index.size(1));
  return at::empty(shape, pred.options());
}

struct SirenPose : public torch::autograd::Function<SirenPose> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& pred,
                               const at::Tensor& target, const at::Tensor& edge_index,
                               const OptTensor& weight, const OptTensor& edge_weight,
                               const OptTensor& incidence_ptr, const OptTensor& incidence_slot,
                               double omega0, double lambda_geo, bool with_pos, int64_t reduction) {
    static auto fwd = op<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
        const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&,
        const OptTensor&, double, double, bool, int64_t)>("sirenpose_loss::sirenpose_fwd");
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, pos, geo, denom] = fwd.call(pred, target, edge_index, weight, edge_weight, omega0,
                                            lambda_geo, with_pos, reduction);
    const at::Tensor none;
    ctx->save_for_backward({pred, target, edge_index, weight.value_or(none),
                            edge_weight.value_or(none), denom, incidence_ptr.value_or(none),
                            incidence_slot.value_or(none)});
    ctx->saved_data["omega0"] = omega0;
    ctx->saved_data["lambda_geo"] = lambda_geo;
    ctx->saved_data["with_pos"] = with_pos;
    ctx->saved_data["reduction"] = reduction;
    // mean/sum: the loss is differentiable, its components are for logging; none: the terms are.
    if (reduction == kNone) ctx->mark_non_differentiable({loss});
    else ctx->mark_non_differentiable({pos, geo});
    // Unused outputs get no zero-filled gradient (two allocations per call); see backward.
    ctx->set_materialize_grads(false);
    return {loss, pos, geo};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto bwd = op<std::tuple<at::Tensor, at::Tensor>(
        const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
        const at::Tensor&, const OptTensor&, const OptTensor&, const at::Tensor&,
        const OptTensor&, const OptTensor&, double, double, bool, int64_t, Mask)>(
        "sirenpose_loss::sirenpose_bwd");
    const auto s = ctx->get_saved_variables();
    const int64_t reduction = ctx->saved_data["reduction"].toInt();
    const bool none = reduction == kNone;
    // mean/sum: one incoming gradient for both components, the geo part scaled by lambda_geo.
    // No incoming gradient at all (autograd passes undefined ones): the inputs' gradients are 0.
    if (none ? !grads[1].defined() && !grads[2].defined() : !grads[0].defined()) {
      return variable_list(11);
    }
    // With per-term outputs, one of them may have no incoming gradient: it contributes zero.
    auto given = [&](size_t i, const at::Tensor& like) {
      return grads[i].defined() ? grads[i] : at::zeros_like(like);
    };
    const at::Tensor g_pos = none ? given(1, s[0].select(-1, 0)) : grads[0];
    const at::Tensor g_geo = none ? given(2, geo_like(s[0], s[2])) : grads[0];
    const double lambda_geo = none ? 1.0 : ctx->saved_data["lambda_geo"].toDouble();
    const Mask mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    auto [gp, gt] = bwd.call(g_pos, g_geo, s[0], s[1], s[2], opt(s[3]), opt(s[4]), s[5], opt(s[6]),
                             opt(s[7]), ctx->saved_data["omega0"].toDouble(), lambda_geo,
                             ctx->saved_data["with_pos"].toBool(), reduction, mask);
    variable_list out(11);
    out[0] = mask[0] ? gp : at::Tensor();
    out[1] = mask[1] ? gt : at::Tensor();
    return refuse_double_backward(std::move(out));
  }
};

at::Tensor keypoint_match(const at::Tensor& pred, const at::Tensor& target,
                          const OptTensor& weight, int64_t reduction) {
  return KeypointMatch::apply(pred, target, weight, reduction);
}

at::Tensor spatiotemporal_consistency(const at::Tensor& positions, const OptTensor& weight,
                                      int64_t order, int64_t reduction) {
  return SpatioTemporalConsistency::apply(positions, weight, order, reduction);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sirenpose(
    const at::Tensor& pred, const at::Tensor& target, const at::Tensor& edge_index,
    const OptTensor& weight, const OptTensor& edge_weight, const OptTensor& incidence_ptr,
    const OptTensor& incidence_slot, double omega0, double lambda_geo, bool with_pos,
    int64_t reduction) {
  auto out = SirenPose::apply(pred, target, edge_index, weight, edge_weight, incidence_ptr,
                              incidence_slot, omega0, lambda_geo, with_pos, reduction);
  return {out[0], out[1], out[2]};
}

// Below autograd (inference mode, or calls already past the Autograd key) the losses are just
// their forward op.
at::Tensor keypoint_match_nograd(const at::Tensor& pred, const at::Tensor& target,
                                 const OptTensor& weight, int64_t reduction) {
  return std::get<0>(op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                           const OptTensor&, int64_t)>(
                         "sirenpose_loss::keypoint_match_fwd").call(pred, target, weight, reduction));
}

at::Tensor spatiotemporal_consistency_nograd(const at::Tensor& positions, const OptTensor& weight,
                                             int64_t order, int64_t reduction) {
  return std::get<0>(op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const OptTensor&,
                                                           int64_t, int64_t)>(
                         "sirenpose_loss::spatiotemporal_consistency_fwd")
                         .call(positions, weight, order, reduction));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sirenpose_nograd(
    const at::Tensor& pred, const at::Tensor& target, const at::Tensor& edge_index,
    const OptTensor& weight, const OptTensor& edge_weight, const OptTensor&, const OptTensor&,
    double omega0, double lambda_geo, bool with_pos, int64_t reduction) {
  auto [loss, pos, geo, denom] =
      op<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
          const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&,
          const OptTensor&, double, double, bool, int64_t)>("sirenpose_loss::sirenpose_fwd")
          .call(pred, target, edge_index, weight, edge_weight, omega0, lambda_geo, with_pos, reduction);
  return {loss, pos, geo};
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CompositeExplicitAutograd, m) {
  m.impl("keypoint_match", &keypoint_match_nograd);
  m.impl("spatiotemporal_consistency", &spatiotemporal_consistency_nograd);
  m.impl("sirenpose", &sirenpose_nograd);
}

TORCH_LIBRARY_IMPL(sirenpose_loss, Autograd, m) {
  // The fused kernels are not differentiable by themselves (the losses above are): autograd
  // passes straight through them.
  for (const char* name : {"keypoint_match_fwd", "keypoint_match_bwd", "spatiotemporal_consistency_fwd",
                           "spatiotemporal_consistency_bwd", "sirenpose_fwd", "sirenpose_bwd"}) {
    m.impl(name, torch::CppFunction::makeFallthrough());
  }
  m.impl("keypoint_match", &keypoint_match);
  m.impl("spatiotemporal_consistency", &spatiotemporal_consistency);
  m.impl("sirenpose", &sirenpose);
}

}  // namespace sirenpose
