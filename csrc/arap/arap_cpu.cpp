// As-rigid-as-possible energy on the CPU. Per (batch entry, frame, centre) the covariance
// S = sum_e w_e (X_j - X_i) o_e^T is gathered over the centre's edges in incidence order and
// its best proper rotation R (Horn's quaternion form of Kabsch, in double) is kept in the
// state for the backward, which holds it fixed (the energy is stationary in R).
// Rest shape X: rest_positions [..., M, 3] or [M, 3], or the first frame of each batch entry.
#include <torch/library.h>

#include "common/graph_inputs.h"

namespace sirenpose {
namespace {

struct ArapInputs {
  int64_t batch, T, M, E;
  at::Tensor X, rest, W;
  int64_t rest_stride;  // between batch entries; 0 when shared, T*M*3 for the first frame
  GraphIndex g;

  ArapInputs(const at::Tensor& positions, const at::Tensor& edge_index,
             const c10::optional<at::Tensor>& rest_positions,
             const c10::optional<at::Tensor>& edge_weight, const at::Tensor& incidence)
      : g(edge_index, incidence, checked_points3(positions, "positions").size(-2), positions) {
    batch = leading(positions, 3);
    T = positions.size(-3);
    M = positions.size(-2);
    E = g.E;
    X = positions.contiguous();
    W = edge_constant(edge_weight, "edge_weight", E, positions);
    if (rest_positions.has_value() && rest_positions->defined()) {
      const at::Tensor& r = *rest_positions;
      check_float(r, "rest_positions");
      TORCH_CHECK_TYPE(r.scalar_type() == positions.scalar_type(), "rest_positions must have dtype ",
                       positions.scalar_type(), ", got ", r.scalar_type());
      TORCH_CHECK_VALUE(r.device() == positions.device(), "rest_positions must be on ",
                        positions.device(), ", got ", r.device());
      const bool shared = r.dim() == 2 && r.size(0) == M && r.size(1) == 3;
      TORCH_CHECK_VALUE(shared || (r.numel() == batch * M * 3 && r.dim() >= 2 && r.size(-1) == 3 &&
                                   r.size(-2) == M),
                        "rest_positions must have shape [..., M, 3] or [M, 3] with M = ", M,
                        ", got ", r.sizes());
      rest = r.contiguous();
      rest_stride = shared ? 0 : M * 3;
    } else {
      rest_stride = T * M * 3;
    }
  }
  template <typename scalar_t>
  const scalar_t* rest_of(int64_t b) const {
    const scalar_t* base = rest.defined() ? rest.data_ptr<scalar_t>() : X.data_ptr<scalar_t>();
    return base + b * rest_stride;
  }
};

// r = o - R_i (X_j - X_i) of edge e at one frame.
template <typename scalar_t>
inline void arap_residual(const scalar_t* x, const scalar_t* X, const double* R, int64_t j,
                          int64_t i, double r[3]) {
  double o[3], d[3];
  offset(x, j, i, o);
  offset(X, j, i, d);
  for (int a = 0; a < 3; ++a) r[a] = o[a] - (R[a * 3] * d[0] + R[a * 3 + 1] * d[1] + R[a * 3 + 2] * d[2]);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> arap_fwd_cpu(
    const at::Tensor& positions, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& rest_positions, const c10::optional<at::Tensor>& edge_weight,
    const at::Tensor& incidence, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  const ArapInputs in(positions, edge_index, rest_positions, edge_weight, incidence);
  const auto opts = positions.options();
  const int64_t E = in.E, M = in.M;
  std::vector<int64_t> batch_shape(positions.sizes().begin(), positions.sizes().end() - 3);
  at::Tensor out = reduction == kNone ? terms_like(batch_shape, in.T, E, positions) : at::Tensor();
  // state: [0] the mean's denominator, then the rotations [batch, T, M, 9].
  at::Tensor state = at::empty({1 + in.batch * in.T * M * 9}, opts.dtype(at::kDouble));
  double* rot = state.data_ptr<double>() + 1;
  double sum = 0.0, weight_sum = in.W.defined() ? 0.0 : static_cast<double>(E);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, positions.scalar_type(), "arap_fwd", [&] {
    const scalar_t* W = data_or_null<scalar_t>(in.W);
    scalar_t* O = out.defined() ? out.data_ptr<scalar_t>() : nullptr;
    const GraphIndex& g = in.g;
    for (int64_t b = 0; b < in.batch; ++b) {
      const scalar_t* X = in.rest_of<scalar_t>(b);
      for (int64_t t = 0; t < in.T; ++t) {
        const scalar_t* x = in.X.data_ptr<scalar_t>() + (b * in.T + t) * M * 3;
        double* R = rot + (b * in.T + t) * M * 9;
        for_each_node(M, [&](int64_t n) {
          double S[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
          for (int64_t k = g.in_ptr[n]; k < g.in_ptr[n + 1]; ++k) {
            int64_t e, j;
            g.incoming(k, e, j);
            double o[3], d[3];
            offset(x, j, n, o);
            offset(X, j, n, d);
            const double w = edge_weight_at(W, e);
            for (int a = 0; a < 3; ++a)
              for (int c = 0; c < 3; ++c) S[a * 3 + c] += w * d[a] * o[c];
          }
          rigid::horn_rotation(S, R + n * 9);
        });
        const int64_t row = (b * in.T + t) * E;
        const bool first = b == 0 && t == 0 && W;
        const auto part = chunked_sum<2>(ceil_div(E, kEdgesPerChunk), kEdgesPerChunk * 16, [&](int64_t c) {
          std::array<double, 2> acc{};
          for (int64_t e = c * kEdgesPerChunk, e1 = std::min(E, e + kEdgesPerChunk); e < e1; ++e) {
            int64_t j, i;
            g.ends(e, j, i);
            const double w = edge_weight_at(W, e);
            double r[3];
            arap_residual(x, X, R + i * 9, j, i, r);
            const double v = w * (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
            if (O) O[row + e] = static_cast<scalar_t>(v);
            acc[0] += v;
            if (first) acc[1] += w;
          }
          return acc;
        });
        sum += part[0];
        if (first) weight_sum = part[1];
      }
    }
  });
  const double denom = static_cast<double>(in.batch * in.T) * weight_sum;
  state.data_ptr<double>()[0] = denom;
  if (reduction == kNone) return {at::empty({0}, opts), out, state};
  const double loss = reduce(sum, denom, reduction);
  return {at::scalar_tensor(loss, opts), at::scalar_tensor(loss, opts), state};
}

at::Tensor arap_bwd_cpu(at::TensorList grads, const at::Tensor& positions,
                        const at::Tensor& edge_index, const c10::optional<at::Tensor>& rest_positions,
                        const c10::optional<at::Tensor>& edge_weight,
                        const at::Tensor& incidence, int64_t reduction_, const at::Tensor& state, at::IntArrayRef output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  const ArapInputs in(positions, edge_index, rest_positions, edge_weight, incidence);
  const int64_t E = in.E, M = in.M;
  TORCH_CHECK_VALUE(state.scalar_type() == at::kDouble && state.is_contiguous() &&
                        state.numel() == 1 + in.batch * in.T * M * 9,
                    "arap_bwd: state must be the float64 [", 1 + in.batch * in.T * M * 9,
                    "] tensor of arap_fwd, got ", state.sizes());
  at::Tensor grad = at::zeros_like(positions, at::MemoryFormat::Contiguous);
  if (output_mask.empty() || !output_mask[0]) return at::empty({0}, positions.options());
  if (in.E == 0) return grad;
  const double* rot = state.data_ptr<double>() + 1;
  std::vector<at::Tensor> keep;
  at::Tensor factors = at::empty({E}, positions.options().dtype(
                                          positions.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, positions.scalar_type(), "arap_bwd", [&] {
    const scalar_t* W = data_or_null<scalar_t>(in.W);
    std::vector<int64_t> shape(positions.sizes().begin(), positions.sizes().end() - 3);
    shape.push_back(in.T);
    shape.push_back(E);
    const TermGrad<scalar_t> tg = term_grad<scalar_t>(grads, 0, reduction, 1.0,
                                                      state.data_ptr<double>()[0], shape, keep, positions);
    scalar_t* G = grad.data_ptr<scalar_t>();
    factor_t<scalar_t>* FE = factors.data_ptr<factor_t<scalar_t>>();
    const GraphIndex& g = in.g;
    for (int64_t b = 0; b < in.batch; ++b) {
      const scalar_t* X = in.rest_of<scalar_t>(b);
      for (int64_t t = 0; t < in.T; ++t) {
        const int64_t frame = (b * in.T + t);
        const scalar_t* x = in.X.data_ptr<scalar_t>() + frame * M * 3;
        const double* R = rot + frame * M * 9;
        auto factor = [&](int64_t e) {  // d(term)/d(r) = factor * r
          return 2.0 * (W ? static_cast<double>(W[e]) : 1.0) * tg.at(frame * E + e);
        };
        // Pass 1, in edge order: the neighbour side's factors, where pass 2 reads them.
        for_each_edge(E, [&](int64_t e) {
          FE[g.position(e)] = static_cast<factor_t<scalar_t>>(factor(e));
        });
        // Pass 2, per node: incoming edges (n the centre), then outgoing (n the neighbour).
        for_each_node(M, [&](int64_t n) {
          double acc[3] = {0, 0, 0}, r[3];
          for (int64_t k = g.in_ptr[n]; k < g.in_ptr[n + 1]; ++k) {
            int64_t e, j;
            g.incoming(k, e, j);
            arap_residual(x, X, R + n * 9, j, n, r);
            const double f = factor(e);
            for (int a = 0; a < 3; ++a) acc[a] -= f * r[a];
          }
          for (int64_t k = g.out_ptr[n]; k < g.out_ptr[n + 1]; ++k) {
            const int64_t i = g.outgoing(k);
            arap_residual(x, X, R + i * 9, n, i, r);
            const double f = static_cast<double>(FE[k]);
            for (int a = 0; a < 3; ++a) acc[a] += f * r[a];
          }
          for (int a = 0; a < 3; ++a) G[(frame * M + n) * 3 + a] = static_cast<scalar_t>(acc[a]);
        });
      }
    }
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CPU, m) {
  m.impl("arap_fwd", &arap_fwd_cpu);
  m.impl("arap_bwd", &arap_bwd_cpu);
}

}  // namespace sirenpose
