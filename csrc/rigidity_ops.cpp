// The graph losses of Gaussians (rigidity family), registered from one table: each row is a
// loss's name, its argument list, its per-term outputs and its differentiable inputs. The three
// schemas of a loss (name, name_fwd, name_bwd) and its autograd are generated from the row (see
// common/graph_loss_autograd.h for the convention); CPU kernels live in csrc/<loss>/<loss>_cpu.cpp
// and the fake kernels come from the same table in sirenpose_loss/_graph_ops.py.
#include <torch/library.h>

#include <string>
#include <vector>

#include "common/graph_loss_autograd.h"

namespace sirenpose {
namespace {

struct GraphLossRow {
  const char* name;
  const char* args;                 // ends with `int reduction`
  std::vector<const char*> terms;   // per-term outputs
  std::vector<const char*> grads;   // gradients of the first arguments, in order
};

// penalty: 0 "squared", 1 "norm". terms (rigidity): bit 0 rigid, 1 rotation, 2 isometry.
// incidence: the per-node lists of the edges (sirenpose_loss._graph_ops.graph_incidence).
const std::vector<GraphLossRow>& graph_losses() {
  static const std::vector<GraphLossRow> rows = {
      {"rigidity",
       "Tensor? positions, Tensor? quaternions, Tensor edge_index, Tensor? rest_length,"
       " Tensor? edge_weight, Tensor incidence,"
       " float[] lambdas, int terms, int penalty, int reduction",
       {"rigid", "rotation", "isometry"}, {"grad_positions", "grad_quaternions"}},
      {"arap",
       "Tensor positions, Tensor edge_index, Tensor? rest_positions, Tensor? edge_weight,"
       " Tensor incidence, int reduction",
       {"arap"}, {"grad_positions"}},
      {"graph_smoothness",
       "Tensor features, Tensor edge_index, Tensor? edge_weight, Tensor incidence, int penalty,"
       " int reduction",
       {"smoothness"}, {"grad_features"}},
  };
  return rows;
}

std::string tensors(const std::vector<const char*>& names) {
  std::string s;
  for (const char* n : names) s += std::string(", Tensor ") + n;
  return s;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(sirenpose_loss, m) {
  for (const auto& row : graph_losses()) {
    const std::string name = row.name, args = row.args, outs = "Tensor loss" + tensors(row.terms);
    const std::string schemas[] = {
        name + "(" + args + ") -> (" + outs + ")",
        name + "_fwd(" + args + ") -> (" + outs + ", Tensor state)",
        name + "_bwd(Tensor[] grads, " + args + ", Tensor state, int[] output_mask) -> (" +
            tensors(row.grads).substr(2) + ")"};
    for (const auto& schema : schemas) m.def(schema.c_str());
  }
}

TORCH_LIBRARY_IMPL(sirenpose_loss, Autograd, m) {
  for (const auto& row : graph_losses()) {
    const std::string name = row.name;
    m.impl(name.c_str(), torch::CppFunction::makeFromBoxedFunction<&graph_loss_autograd>());
    m.impl((name + "_fwd").c_str(), torch::CppFunction::makeFallthrough());
    m.impl((name + "_bwd").c_str(), torch::CppFunction::makeFallthrough());
  }
}

TORCH_LIBRARY_IMPL(sirenpose_loss, CompositeExplicitAutograd, m) {
  for (const auto& row : graph_losses())
    m.impl(row.name, torch::CppFunction::makeFromBoxedFunction<&graph_loss_forward_only>());
}

}  // namespace sirenpose
