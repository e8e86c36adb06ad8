// Graph smoothness on the CPU: terms pen(w_e, ||f_j - f_i||^2) over features [..., M, C].
// Forward: fixed edge chunks summed in double; backward: each node gathers its incident edges
// in incidence order.
#include <torch/library.h>

#include "common/graph_inputs.h"

namespace sirenpose {
namespace {

struct SmoothInputs {
  int64_t batch, M, C, E;
  int penalty;
  at::Tensor F, W;
  GraphIndex g;
  static const at::Tensor& checked(const at::Tensor& f) {
    check_float(f, "features");
    TORCH_CHECK_VALUE(f.dim() >= 2 && f.size(-1) >= 1, "features must have shape [..., M, C], got ",
                      f.sizes());
    return f;
  }
  SmoothInputs(const at::Tensor& features, const at::Tensor& edge_index,
               const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence,
               int64_t penalty_)
      : g(edge_index, incidence, checked(features).size(-2), features) {
    batch = leading(features, 2);
    M = features.size(-2);
    C = features.size(-1);
    E = g.E;
    penalty = check_penalty(penalty_);
    F = features.contiguous();
    W = edge_constant(edge_weight, "edge_weight", E, features);
  }
};

template <typename scalar_t>
inline double squared_difference(const scalar_t* f, int64_t j, int64_t i, int64_t C) {
  double sq = 0.0;
  for (int64_t c = 0; c < C; ++c) {
    const double d = static_cast<double>(f[j * C + c]) - static_cast<double>(f[i * C + c]);
    sq += d * d;
  }
  return sq;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> graph_smoothness_fwd_cpu(
    const at::Tensor& features, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence, int64_t penalty,
    int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const SmoothInputs in(features, edge_index, edge_weight, incidence, penalty);
  const auto opts = features.options();
  const int64_t E = in.E;
  std::vector<int64_t> batch_shape(features.sizes().begin(), features.sizes().end() - 2);
  at::Tensor out = reduction == kNone ? terms_like(batch_shape, -1, E, features) : at::Tensor();
  double sum = 0.0, weight_sum = static_cast<double>(E);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "graph_smoothness_fwd", [&] {
    const scalar_t* W = data_or_null<scalar_t>(in.W);
    scalar_t* O = out.defined() ? out.data_ptr<scalar_t>() : nullptr;
    for (int64_t b = 0; b < in.batch; ++b) {
      const scalar_t* f = in.F.data_ptr<scalar_t>() + b * in.M * in.C;
      const bool first = b == 0 && W;
      const auto part = chunked_sum<2>(ceil_div(E, kEdgesPerChunk), kEdgesPerChunk * in.C * 4, [&](int64_t c) {
        std::array<double, 2> acc{};
        for (int64_t e = c * kEdgesPerChunk, e1 = std::min(E, e + kEdgesPerChunk); e < e1; ++e) {
          int64_t j, i;
          in.g.ends(e, j, i);
          const double w = edge_weight_at(W, e);
          const double v = rigid::penalty_value(in.penalty, w, squared_difference(f, j, i, in.C));
          if (O) O[b * E + e] = static_cast<scalar_t>(v);
          acc[0] += v;
          if (first) acc[1] += w;
        }
        return acc;
      });
      sum += part[0];
      if (first) weight_sum = part[1];
    }
  });
  const double denom = static_cast<double>(in.batch) *
                       (in.penalty == rigid::kNorm ? static_cast<double>(E) : weight_sum);
  at::Tensor state = at::full({1}, denom, opts.dtype(at::kDouble));
  if (reduction == kNone) return {at::empty({0}, opts), out, state};
  const double loss = reduce(sum, denom, reduction);
  return {at::scalar_tensor(loss, opts), at::scalar_tensor(loss, opts), state};
}

at::Tensor graph_smoothness_bwd_cpu(at::TensorList grads, const at::Tensor& features,
                                    const at::Tensor& edge_index,
                                    const c10::optional<at::Tensor>& edge_weight,
                                    const at::Tensor& incidence, int64_t penalty,
                                    int64_t reduction_, const at::Tensor& state,
                                    at::IntArrayRef output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  const SmoothInputs in(features, edge_index, edge_weight, incidence, penalty);
  at::Tensor grad = at::zeros_like(features, at::MemoryFormat::Contiguous);
  if (output_mask.empty() || !output_mask[0]) return at::empty({0}, features.options());
  if (in.E == 0) return grad;
  std::vector<at::Tensor> keep;
  at::Tensor factors = at::empty({in.E}, features.options().dtype(
                                            features.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "graph_smoothness_bwd", [&] {
    const scalar_t* W = data_or_null<scalar_t>(in.W);
    std::vector<int64_t> shape(features.sizes().begin(), features.sizes().end() - 2);
    shape.push_back(in.E);
    const TermGrad<scalar_t> tg = term_grad<scalar_t>(grads, 0, reduction, 1.0,
                                                      denom_value(state, 0), shape, keep, features);
    const int64_t C = in.C, E = in.E;
    factor_t<scalar_t>* FE = factors.data_ptr<factor_t<scalar_t>>();
    for (int64_t b = 0; b < in.batch; ++b) {
      const scalar_t* f = in.F.data_ptr<scalar_t>() + b * in.M * C;
      scalar_t* G = grad.data_ptr<scalar_t>() + b * in.M * C;
      // d(term)/d(f_j) = factor * (f_j - f_i) for edge (j -> i).
      auto factor = [&](int64_t e, int64_t j, int64_t i) {
        const double w = W ? static_cast<double>(W[e]) : 1.0;
        return tg.at(b * E + e) * rigid::penalty_factor(in.penalty, w, squared_difference(f, j, i, C));
      };
      auto add = [&](double* acc, double fac, int64_t j, int64_t i) {
        for (int64_t c = 0; c < C; ++c)
          acc[c] += fac * (static_cast<double>(f[j * C + c]) - static_cast<double>(f[i * C + c]));
      };
      // Pass 1, in edge order: the neighbour side's factors, where pass 2 reads them.
      for_each_edge(E, [&](int64_t e) {
        int64_t j, i;
        in.g.ends(e, j, i);
        FE[in.g.position(e)] = static_cast<factor_t<scalar_t>>(factor(e, j, i));
      });
      // Pass 2, per node: incoming edges (n the centre), then outgoing (n the neighbour).
      at::parallel_for(0, in.M, kNodesPerTask, [&](int64_t n0, int64_t n1) {
        std::vector<double> acc(C);
        for (int64_t n = n0; n < n1; ++n) {
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int64_t k = in.g.in_ptr[n]; k < in.g.in_ptr[n + 1]; ++k) {
            int64_t e, j;
            in.g.incoming(k, e, j);
            add(acc.data(), -factor(e, j, n), j, n);
          }
          for (int64_t k = in.g.out_ptr[n]; k < in.g.out_ptr[n + 1]; ++k) {
            const int64_t i = in.g.outgoing(k);
            add(acc.data(), static_cast<double>(FE[k]), n, i);
          }
          for (int64_t c = 0; c < C; ++c) G[n * C + c] = static_cast<scalar_t>(acc[c]);
        }
      });
    }
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CPU, m) {
  m.impl("graph_smoothness_fwd", &graph_smoothness_fwd_cpu);
  m.impl("graph_smoothness_bwd", &graph_smoothness_bwd_cpu);
}

}  // namespace sirenpose
