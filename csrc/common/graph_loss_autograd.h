// One autograd Function for every loss of the graph family, written once over the dispatcher's
// boxed calling convention instead of once per loss. A loss `name` is three ops that share one
// argument list ARGS (see csrc/rigidity_ops.cpp, which generates their schemas from one table):
//
//   name(ARGS) -> (Tensor loss, Tensor term_1, ..., Tensor term_n)        differentiable
//   name_fwd(ARGS) -> (Tensor loss, Tensor term_1, ..., Tensor term_n, Tensor state)
//   name_bwd(Tensor[] grads, ARGS, Tensor state, int[] output_mask) -> (Tensor g_1, ..., g_K)
//
// The first K arguments (K = the number of name_bwd's results) are the differentiable inputs
// (Tensor or Tensor?); the last is `int reduction`. With a reduced loss (0-dim `loss`) the terms
// are its detached components, for logging, and grads = [d loss]; with reduction "none" `loss`
// is empty and the per-term outputs are differentiable, grads = [d term_1, ..., d term_n].
// `state` is whatever the backward needs from the forward (denominators, ARAP rotations).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "common/double_backward.h"

namespace sirenpose {

inline c10::OperatorHandle graph_loss_kernel(const std::string& loss, const char* suffix) {
  return c10::Dispatcher::singleton().findSchemaOrThrow((loss + suffix).c_str(), "");
}

inline at::Tensor tensor_or_undefined(const c10::IValue& v) {
  return v.isTensor() ? v.toTensor() : at::Tensor();
}

struct GraphLossFunction : public torch::autograd::Function<GraphLossFunction> {
  // `differentiable` repeats the given (non-None) tensors of args[0..K), so that autograd
  // records them as the inputs; `slots` says which argument each of them is.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                at::TensorList differentiable,
                                                const std::vector<int64_t>& slots,
                                                const std::string& loss,
                                                std::vector<c10::IValue> args) {
    at::AutoDispatchBelowADInplaceOrView guard;
    torch::jit::Stack stack(args.begin(), args.end());
    graph_loss_kernel(loss, "_fwd").callBoxed(stack);
    // Tensors go through save_for_backward (version-checked); other arguments by value.
    std::vector<at::Tensor> saved;
    for (size_t k = 0; k < args.size(); ++k) {
      if (args[k].isTensor() || args[k].isNone()) saved.push_back(tensor_or_undefined(args[k]));
      else ctx->saved_data["arg" + std::to_string(k)] = args[k];
      ctx->saved_data["is_tensor" + std::to_string(k)] = args[k].isTensor() || args[k].isNone();
    }
    saved.push_back(stack.back().toTensor());  // state
    ctx->save_for_backward(saved);
    ctx->saved_data["loss"] = loss;
    ctx->saved_data["slots"] = slots;
    ctx->saved_data["num_args"] = static_cast<int64_t>(args.size());
    torch::autograd::variable_list outputs;
    for (size_t k = 0; k + 1 < stack.size(); ++k) outputs.push_back(stack[k].toTensor());
    const bool reduced = outputs[0].dim() == 0;
    ctx->saved_data["reduced"] = reduced;
    if (reduced) {
      ctx->mark_non_differentiable(torch::autograd::variable_list(outputs.begin() + 1, outputs.end()));
    } else {
      ctx->mark_non_differentiable({outputs[0]});
    }
    return outputs;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const std::string loss = ctx->saved_data["loss"].toStringRef();
    const auto bwd = graph_loss_kernel(loss, "_bwd");
    const size_t num_diff = bwd.schema().returns().size();
    const int64_t num_args = ctx->saved_data["num_args"].toInt();
    const auto saved = ctx->get_saved_variables();
    const auto slots = ctx->saved_data["slots"].toIntVector();
    std::vector<int64_t> mask(num_diff, 0);
    bool any = false;
    for (size_t k = 0; k < slots.size(); ++k) any |= (mask[slots[k]] = ctx->needs_input_grad(k));
    torch::autograd::variable_list result(slots.size() + 3);  // + slots, loss, args
    if (!any) return result;
    std::vector<at::Tensor> incoming;
    if (ctx->saved_data["reduced"].toBool()) incoming.push_back(grads[0]);
    else incoming.assign(grads.begin() + 1, grads.end());
    torch::jit::Stack stack;
    stack.emplace_back(incoming);
    size_t next_saved = 0;
    for (int64_t k = 0; k < num_args; ++k) {
      if (!ctx->saved_data["is_tensor" + std::to_string(k)].toBool()) {
        stack.push_back(ctx->saved_data["arg" + std::to_string(k)]);
        continue;
      }
      const at::Tensor& t = saved[next_saved++];
      stack.push_back(t.defined() ? c10::IValue(t) : c10::IValue());
    }
    stack.emplace_back(saved[next_saved]);  // state
    stack.emplace_back(mask);
    bwd.callBoxed(stack);
    for (size_t k = 0; k < slots.size(); ++k)
      if (mask[slots[k]]) result[k] = stack[slots[k]].toTensor();
    return refuse_double_backward(std::move(result));
  }
};

// The Autograd-key kernel of every differentiable graph loss.
inline void graph_loss_autograd(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& schema = op.schema();
  const size_t n = schema.arguments().size();
  std::vector<c10::IValue> args(stack->end() - n, stack->end());
  torch::jit::drop(*stack, n);
  const std::string loss = schema.name();
  const size_t num_diff = graph_loss_kernel(loss, "_bwd").schema().returns().size();
  std::vector<at::Tensor> differentiable;
  std::vector<int64_t> slots;
  for (size_t k = 0; k < num_diff; ++k) {
    if (!args[k].isTensor()) continue;
    differentiable.push_back(args[k].toTensor());
    slots.push_back(static_cast<int64_t>(k));
  }
  for (auto& out : GraphLossFunction::apply(at::TensorList(differentiable), slots, loss, std::move(args)))
    stack->emplace_back(std::move(out));
}

// Below autograd (inference mode, or calls already past the Autograd key): the forward kernel
// without its state.
inline void graph_loss_forward_only(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  graph_loss_kernel(op.schema().name(), "_fwd").callBoxed(stack);
  stack->pop_back();
}

}  // namespace sirenpose
