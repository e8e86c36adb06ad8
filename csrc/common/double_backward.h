// The backward kernels are not differentiable. When a second derivative is asked for
// (create_graph=True), the gradients get an error node as their history, so differentiating
// them again raises instead of silently returning a wrong (zero) second derivative.
#pragma once

#include <torch/autograd.h>
#include <torch/csrc/autograd/functions/basic_ops.h>

namespace sirenpose {

inline torch::autograd::variable_list refuse_double_backward(torch::autograd::variable_list grads) {
  if (!at::GradMode::is_enabled()) return grads;
  torch::autograd::variable_list leaves;
  std::vector<size_t> where;
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) continue;
    at::Tensor leaf = grads[i].detach();
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
    where.push_back(i);
  }
  if (leaves.empty()) return grads;
  torch::autograd::DelayedError error(
      "sirenpose_loss: the losses are differentiable once (analytic backward kernels); a second "
      "derivative through them (create_graph=True, e.g. a gradient penalty) is not supported",
      static_cast<int64_t>(leaves.size()));
  torch::autograd::variable_list wrapped = error.apply(std::move(leaves));
  for (size_t k = 0; k < where.size(); ++k) grads[where[k]] = wrapped[k];
  return grads;
}

}  // namespace sirenpose
