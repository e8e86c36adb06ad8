// SirenPose loss on the CPU: L_pos = sum_n w_n ||p_n - t_n||^2 and
// L_geo = sum_e w_e ||sin(w0 (p_i - p_j)) - sin(w0 (t_i - t_j))||^2, one fused pass each way.
// Per batch entry, sin/cos of w0 * coordinate are computed once per keypoint (vectorised) and
// each edge uses sin(a - b) = sin a cos b - cos a sin b, cos(a - b) = cos a cos b + sin a sin b,
// so the cost is K*D sincos instead of E*D sin (+ E*D cos in the backward).
// The backward scatters into each batch entry's own gradient rows in edge order: deterministic
// without atomics (batch entries never share rows).
#include <torch/library.h>

#include "common/kernel_utils.h"
#include "common/sincos.h"

namespace sirenpose {
namespace {

constexpr int64_t kWorkPerChunk = 4096;  // keypoints + edges summed per deterministic chunk

struct GraphShape {
  int64_t batch, K, D, E;
};

GraphShape graph_shape(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& edge_index) {
  check_float(pred, "pred");
  check_same(pred, "pred", target, "target");
  TORCH_CHECK_VALUE(pred.dim() >= 2, "pred must have shape [..., K, D], got ", pred.sizes());
  TORCH_CHECK_TYPE(edge_index.scalar_type() == at::kLong || edge_index.scalar_type() == at::kInt,
                   "edge_index must be an int64 (or int32) tensor, got dtype ", edge_index.scalar_type());
  TORCH_CHECK_VALUE(edge_index.dim() == 2 && edge_index.size(0) == 2,
                    "edge_index must have shape [2, E], got ", edge_index.sizes());
  TORCH_CHECK_VALUE(edge_index.device() == pred.device(), "edge_index must be on ", pred.device(),
                    ", got ", edge_index.device());
  const int64_t K = pred.size(-2), D = pred.size(-1);
  TORCH_CHECK_VALUE(D >= 1, "pred must have D >= 1 coordinates, got shape ", pred.sizes());
  int64_t batch = 1;
  for (int64_t d = 0; d + 2 < pred.dim(); ++d) batch *= pred.size(d);
  return {batch, K, D, edge_index.size(1)};
}

// The first flat index of edge_index (int64 [2, E], contiguous) outside [0, K), or kNoBadIndex.
// Every chunk of both kernels runs it on the edges before it gathers through them, so no
// kernel reads outside [0, K) and no separate pass is needed.
int64_t first_bad_edge(const int64_t* edges, int64_t E, int64_t K) {
  for (int64_t n = 0; n < 2 * E; ++n) {
    if (edges[n] < 0 || edges[n] >= K) return n;
  }
  return kNoBadIndex;
}

// Raises for the first out-of-range edge index the pass found. `covered`: some chunk ran; when
// none did (no batch entries), the edges are scanned here.
void raise_if_bad_edge(const FirstBad& bad, const at::Tensor& edges, int64_t K, bool covered) {
  const int64_t* e = edges.const_data_ptr<int64_t>();
  const int64_t E = edges.size(1);
  const int64_t n = covered ? bad.index() : first_bad_edge(e, E, K);
  TORCH_CHECK_INDEX(n == kNoBadIndex, "edge_index values must be in [0, ", K, ") (K = ", K,
                    " keypoints), got ", e[n], " at edge ", n % E);
}

template <typename scalar_t>
struct GraphArgs {
  const scalar_t* P;
  const scalar_t* T;
  const int64_t* src;
  const int64_t* dst;
  const scalar_t* KW;        // keypoint weights or nullptr
  int64_t kw_stride;         // batch stride of KW (0 when shared)
  const scalar_t* EW;        // edge weights or nullptr
  GraphShape s;
  double omega0;
  // These loops gather through edge indices and are not vectorised, so a null check is cheap.
  double keypoint_weight(int64_t b, int64_t n) const {
    return KW ? static_cast<double>(KW[b * kw_stride + n]) : 1.0;
  }
  double edge_weight(int64_t b, int64_t e) const {
    return (EW ? static_cast<double>(EW[e]) : 1.0) * keypoint_weight(b, src[e]) *
           keypoint_weight(b, dst[e]);
  }
};

// The shape-checked, contiguous inputs of both ops (values are checked in the kernels' pass).
struct GraphInputs {
  GraphShape s;
  at::Tensor pred, target, edges, weight, edge_weight;
  int64_t w_stride = 0;
  GraphInputs(const at::Tensor& pred_, const at::Tensor& target_, const at::Tensor& edge_index,
              const c10::optional<at::Tensor>& weight_, const c10::optional<at::Tensor>& edge_weight_)
      : s(graph_shape(pred_, target_, edge_index)), pred(pred_.contiguous()),
        target(target_.contiguous()), edges(edge_index.to(at::kLong).contiguous()) {
    std::tie(weight, w_stride) = prepare_weight(weight_, "weight", s.batch, s.K, pred);
    edge_weight = prepare_weight(edge_weight_, "edge_weight", 1, s.E, pred).first;
    TORCH_CHECK_VALUE(!edge_weight.defined() || edge_weight.numel() == s.E, "edge_weight must have ",
                      s.E, " elements (one per edge), got ", edge_weight.numel());
  }
  template <typename scalar_t>
  GraphArgs<scalar_t> args(double omega0) const {
    const int64_t* e = edges.data_ptr<int64_t>();
    return {pred.data_ptr<scalar_t>(), target.data_ptr<scalar_t>(), e, e + s.E,
            weight.defined() ? weight.data_ptr<scalar_t>() : nullptr, w_stride,
            edge_weight.defined() ? edge_weight.data_ptr<scalar_t>() : nullptr, s, omega0};
  }
};

// sin/cos of omega0 * x for the K*D coordinates of one batch entry.
template <typename scalar_t>
void keypoint_sincos(const scalar_t* x, int64_t n, double omega0, std::vector<double>& buf,
                     double* s, double* c) {
  for (int64_t i = 0; i < n; ++i) buf[i] = omega0 * static_cast<double>(x[i]);
  sincos_array(buf.data(), s, c, n);
}

// Scratch of one thread: scaled coordinates and sin/cos of pred and target.
struct SinCosScratch {
  std::vector<double> arg, sp, cp, st, ct;
  explicit SinCosScratch(int64_t n) : arg(n), sp(n), cp(n), st(n), ct(n) {}
  template <typename scalar_t>
  void fill(const scalar_t* p, const scalar_t* t, int64_t n, double omega0) {
    keypoint_sincos(p, n, omega0, arg, sp.data(), cp.data());
    keypoint_sincos(t, n, omega0, arg, st.data(), ct.data());
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sirenpose_fwd_cpu(
    const at::Tensor& pred_, const at::Tensor& target_, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& weight_, const c10::optional<at::Tensor>& edge_weight_,
    double omega0, double lambda_geo, bool with_pos, int64_t reduction_) {
  const Reduction reduction = checked_reduction(reduction_);
  check_positive_number(omega0, "omega0");
  check_nonnegative_number(lambda_geo, "lambda_geo");
  const GraphInputs in(pred_, target_, edge_index, weight_, edge_weight_);
  const GraphShape& s = in.s;
  const at::Tensor &pred = in.pred, &weight = in.weight, &edge_weight = in.edge_weight;
  const auto opts = pred.options();
  std::vector<int64_t> batch_shape(pred.sizes().begin(), pred.sizes().end() - 2);
  at::Tensor pos_out, geo_out;
  if (reduction == kNone) {
    std::vector<int64_t> geo_shape = batch_shape;
    geo_shape.push_back(s.E);
    pos_out = with_pos ? at::empty(pred.sizes().slice(0, pred.dim() - 1), opts) : at::empty({0}, opts);
    geo_out = at::empty(geo_shape, opts);
  }
  std::array<double, 4> sums{};  // (pos, geo, keypoint weights, edge weights)
  FirstBad bad_edge, bad_weight, bad_edge_weight;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "sirenpose_fwd", [&] {
    const GraphArgs<scalar_t> a = in.args<scalar_t>(omega0);
    scalar_t* PO = pos_out.defined() && with_pos ? pos_out.data_ptr<scalar_t>() : nullptr;
    scalar_t* GO = geo_out.defined() ? geo_out.data_ptr<scalar_t>() : nullptr;
    const int64_t K = s.K, D = s.D, E = s.E, KD = K * D;
    const int64_t per_chunk = std::max<int64_t>(1, kWorkPerChunk / std::max<int64_t>(1, K + E));
    sums = chunked_sum<4>(ceil_div(s.batch, per_chunk), per_chunk * (K + E) * D, [&](int64_t c) {
      std::array<double, 4> acc{};
      const int64_t edge_bad = first_bad_edge(a.src, E, K);
      if (edge_bad != kNoBadIndex) {
        bad_edge.note(edge_bad);
        return acc;
      }
      SinCosScratch sc(E > 0 ? KD : 0);
      const int64_t b_end = std::min(s.batch, (c + 1) * per_chunk);
      for (int64_t b = c * per_chunk; b < b_end; ++b) {
        const scalar_t* p = a.P + b * KD;
        const scalar_t* t = a.T + b * KD;
        // A shared weight is checked with the first batch entry, a per-entry one with each.
        if (a.KW && (a.kw_stride != 0 || b == 0))
          bad_weight.note(first_negative(a.KW, b * a.kw_stride, b * a.kw_stride + K));
        if (a.EW && b == 0) bad_edge_weight.note(first_negative(a.EW, 0, E));
        if (with_pos) {
          for (int64_t n = 0; n < K; ++n) {
            double sq = 0.0;
            for (int64_t k = 0; k < D; ++k) {
              const double d = static_cast<double>(p[n * D + k]) - static_cast<double>(t[n * D + k]);
              sq += d * d;
            }
            const double w = a.keypoint_weight(b, n);
            if (PO) PO[b * K + n] = static_cast<scalar_t>(w * sq);
            acc[0] += w * sq;
            acc[2] += w;
          }
        }
        if (E == 0) continue;
        sc.fill(p, t, KD, omega0);
        for (int64_t e = 0; e < E; ++e) {
          const int64_t i = a.src[e] * D, j = a.dst[e] * D;
          double sq = 0.0;
          for (int64_t k = 0; k < D; ++k) {
            const double sin_p = sc.sp[i + k] * sc.cp[j + k] - sc.cp[i + k] * sc.sp[j + k];
            const double sin_t = sc.st[i + k] * sc.ct[j + k] - sc.ct[i + k] * sc.st[j + k];
            const double r = sin_p - sin_t;
            sq += r * r;
          }
          const double w = a.edge_weight(b, e);
          if (GO) GO[b * E + e] = static_cast<scalar_t>(w * sq);
          acc[1] += w * sq;
          acc[3] += w;
        }
      }
      return acc;
    });
    const bool covered = s.batch > 0;  // some chunk ran and read every edge and weight
    raise_if_bad_edge(bad_edge, in.edges, K, covered);
    raise_if_negative<scalar_t>(bad_weight, weight, "weight", covered);
    raise_if_negative<scalar_t>(bad_edge_weight, edge_weight, "edge_weight", covered);
  });
  const double pos_denom = weight.defined() ? sums[2] : static_cast<double>(s.batch * s.K);
  const double geo_denom = (weight.defined() || edge_weight.defined()) ? sums[3]
                                                                       : static_cast<double>(s.batch * s.E);
  at::Tensor denom = at::empty({2}, opts.dtype(at::kDouble));
  denom.mutable_data_ptr<double>()[0] = pos_denom;
  denom.mutable_data_ptr<double>()[1] = geo_denom;
  if (reduction == kNone) return {at::empty({0}, opts), pos_out, geo_out, denom};
  const double pos = !with_pos ? 0.0 : reduction == kMean ? safe_mean(sums[0], pos_denom) : sums[0];
  const double geo = reduction == kMean ? safe_mean(sums[1], geo_denom) : sums[1];
  return {at::scalar_tensor(pos + lambda_geo * geo, opts), at::scalar_tensor(pos, opts),
          at::scalar_tensor(geo, opts), denom};
}

std::tuple<at::Tensor, at::Tensor> sirenpose_bwd_cpu(
    const at::Tensor& grad_pos_, const at::Tensor& grad_geo_, const at::Tensor& pred_,
    const at::Tensor& target_, const at::Tensor& edge_index,
    const c10::optional<at::Tensor>& weight_, const c10::optional<at::Tensor>& edge_weight_,
    const at::Tensor& denom, const c10::optional<at::Tensor>& /*incidence_ptr: CUDA only*/,
    const c10::optional<at::Tensor>& /*incidence_slot: CUDA only*/, double omega0,
    double lambda_geo, bool with_pos, int64_t reduction_, std::array<bool, 2> output_mask) {
  const Reduction reduction = checked_reduction(reduction_);
  const GraphInputs in(pred_, target_, edge_index, weight_, edge_weight_);
  const GraphShape& s = in.s;
  const at::Tensor &pred = in.pred, &target = in.target;
  at::Tensor grad_pred = grad_or_empty(output_mask[0], pred);
  at::Tensor grad_target = grad_or_empty(output_mask[1], target);
  if (!output_mask[0] && !output_mask[1]) return {grad_pred, grad_target};
  // Per-term incoming gradients (none) or one coefficient per component (mean/sum).
  at::Tensor g_pos, g_geo;
  double c_pos = 0.0, c_geo = 0.0;
  if (reduction == kNone) {
    if (with_pos) g_pos = per_term_grad(grad_pos_, pred.sizes().slice(0, pred.dim() - 1), pred, "sirenpose_bwd");
    std::vector<int64_t> geo_shape(pred.sizes().begin(), pred.sizes().end() - 2);
    geo_shape.push_back(s.E);
    g_geo = per_term_grad(grad_geo_, geo_shape, pred, "sirenpose_bwd");
  } else {
    c_pos = with_pos ? reduced_coef(scalar_grad(grad_pos_, "sirenpose_bwd"), denom_value(denom, 0), reduction) : 0.0;
    c_geo = reduced_coef(scalar_grad(grad_geo_, "sirenpose_bwd"), denom_value(denom, 1), reduction);
  }
  FirstBad bad_edge;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "sirenpose_bwd", [&] {
    const GraphArgs<scalar_t> a = in.args<scalar_t>(omega0);
    const scalar_t* GPOS = g_pos.defined() ? g_pos.data_ptr<scalar_t>() : nullptr;
    const scalar_t* GGEO = g_geo.defined() ? g_geo.data_ptr<scalar_t>() : nullptr;
    scalar_t* GP = output_mask[0] ? grad_pred.data_ptr<scalar_t>() : nullptr;
    scalar_t* GT = output_mask[1] ? grad_target.data_ptr<scalar_t>() : nullptr;
    const int64_t K = s.K, D = s.D, E = s.E, KD = K * D;
    const int64_t per_chunk = std::max<int64_t>(1, kWorkPerChunk / std::max<int64_t>(1, K + E));
    at::parallel_for(0, ceil_div(s.batch, per_chunk), chunk_grain(per_chunk * (K + E) * D),
                     [&](int64_t c0, int64_t c1) {
      // The forward has checked the edges of an autograd call; this guard keeps a direct call
      // of the op from gathering outside [0, K). Weights are not read as indices: not re-checked.
      const int64_t edge_bad = first_bad_edge(a.src, E, K);
      if (edge_bad != kNoBadIndex) {
        bad_edge.note(edge_bad);
        return;
      }
      SinCosScratch sc(E > 0 ? KD : 0);
      std::vector<double> gp(KD), gt(KD);  // this batch entry's gradient rows, in double
      for (int64_t b = c0 * per_chunk; b < std::min(s.batch, c1 * per_chunk); ++b) {
        const scalar_t* p = a.P + b * KD;
        const scalar_t* t = a.T + b * KD;
        if (!with_pos) {
          // No L_pos term: its gradient is exactly 0 (not 0 * (p - t), which is NaN for NaN input).
          std::fill(gp.begin(), gp.end(), 0.0);
          std::fill(gt.begin(), gt.end(), 0.0);
        }
        for (int64_t n = 0; with_pos && n < K; ++n) {
          const double cn = 2.0 * a.keypoint_weight(b, n) *
                            (GPOS ? static_cast<double>(GPOS[b * K + n]) : c_pos);
          for (int64_t k = 0; k < D; ++k) {
            const int64_t x = n * D + k;
            gp[x] = cn * (static_cast<double>(p[x]) - static_cast<double>(t[x]));
            gt[x] = -gp[x];
          }
        }
        if (E > 0) {
          sc.fill(p, t, KD, omega0);
          for (int64_t e = 0; e < E; ++e) {
            const double ce = 2.0 * omega0 * lambda_geo * a.edge_weight(b, e) *
                              (GGEO ? static_cast<double>(GGEO[b * E + e]) : c_geo);
            const int64_t i = a.src[e] * D, j = a.dst[e] * D;
            for (int64_t k = 0; k < D; ++k) {
              const double sp_i = sc.sp[i + k], cp_i = sc.cp[i + k], sp_j = sc.sp[j + k], cp_j = sc.cp[j + k];
              const double st_i = sc.st[i + k], ct_i = sc.ct[i + k], st_j = sc.st[j + k], ct_j = sc.ct[j + k];
              const double r = (sp_i * cp_j - cp_i * sp_j) - (st_i * ct_j - ct_i * st_j);
              const double gp_e = ce * r * (cp_i * cp_j + sp_i * sp_j);  // 2 w w0 r cos(w0 dp)
              const double gt_e = ce * r * (ct_i * ct_j + st_i * st_j);  // 2 w w0 r cos(w0 dt)
              gp[i + k] += gp_e;
              gp[j + k] -= gp_e;
              gt[i + k] -= gt_e;
              gt[j + k] += gt_e;
            }
          }
        }
        for (int64_t x = 0; x < KD; ++x) {
          if (GP) GP[b * KD + x] = static_cast<scalar_t>(gp[x]);
          if (GT) GT[b * KD + x] = static_cast<scalar_t>(gt[x]);
        }
      }
    });
  });
  raise_if_bad_edge(bad_edge, in.edges, s.K, /*covered=*/true);  // no batch entry: nothing read
  return {grad_pred, grad_target};
}

}  // namespace

TORCH_LIBRARY_IMPL(sirenpose_loss, CPU, m) {
  m.impl("sirenpose_fwd", &sirenpose_fwd_cpu);
  m.impl("sirenpose_bwd", &sirenpose_bwd_cpu);
}

}  // namespace sirenpose
