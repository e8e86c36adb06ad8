// C entry points of the host emulation of the CUDA kernels (loaded with ctypes by
// tests/test_host_emulation.py). Each runs the kernels' own launch code (kml::fwd, scl::bwd, ...
// of csrc/<loss>/<loss>_items.cuh) with the HostExec of exec.h instead of CudaExec. Pointers are
// host pointers of contiguous tensors; `blocks` (and SCL's `chunk`) <= 0 take the launch plan of
// <loss>_cuda.h.
#include <cstdint>
#include <vector>

#include "arap/arap_items.cuh"
#include "exec.h"
#include "graph_smoothness/graph_smoothness_items.cuh"
#include "rigidity/rigidity_items.cuh"
#include "keypoint_match/keypoint_match_items.cuh"
#include "sirenpose/sirenpose_items.cuh"
#include "spatiotemporal_consistency/spatiotemporal_consistency_items.cuh"

using namespace sirenpose::cuda;
using emulation::HostExec;

namespace {

int64_t plan(int64_t blocks, int64_t planned) { return blocks > 0 ? blocks : planned; }

// Scratch of the first pass, as the glue allocates it (none for one block).
std::vector<double> scratch(int sums, int64_t blocks) {
  return std::vector<double>(blocks > 1 ? sums * blocks : 0);
}

SpatioTemporalProblem scl_problem(int dtype, const void* positions, const void* weight,
                                  int weight_shared, int64_t batch, int64_t T, int64_t M,
                                  int64_t D, int order) {
  return {static_cast<Dtype>(dtype), positions, weight, weight_shared != 0, batch, T, M, D,
          order, T > order ? T - order : 0};
}

SirenPoseProblem siren_problem(int dtype, int index, const void* pred, const void* target,
                               const void* edge_index, const void* weight, int weight_shared,
                               const void* edge_weight, int64_t batch, int64_t K, int64_t D,
                               int64_t E, double omega0, double lambda_geo, int with_pos) {
  return {static_cast<Dtype>(dtype), static_cast<IndexType>(index), pred, target, edge_index,
          weight, weight_shared != 0, edge_weight, batch, K, D, E, omega0, lambda_geo,
          with_pos != 0};
}

GraphSmoothnessProblem smooth_problem(int dtype, const void* features, const int64_t* edges,
                                      const int64_t* incidence, const void* edge_weight,
                                      int64_t batch, int64_t M, int64_t C, int64_t E, int penalty) {
  return {static_cast<Dtype>(dtype), features, edges, incidence, edge_weight, batch, M, C, E,
          penalty};
}

ArapProblem arap_problem(int dtype, const void* positions, const void* rest, int64_t rest_stride,
                         const int64_t* edges, const int64_t* incidence, const void* edge_weight,
                         int64_t batch, int64_t T, int64_t M, int64_t E) {
  return {static_cast<Dtype>(dtype), positions, rest, rest_stride, edges, incidence, edge_weight,
          batch, T, M, E};
}

RigidityProblem trio_problem(int dtype, const void* positions, const void* quaternions,
                             const int64_t* edges, const int64_t* incidence,
                             const void* rest_length, const void* edge_weight, int64_t batch,
                             int64_t T, int64_t M, int64_t E, int terms, int penalty,
                             const double* lambdas) {
  return {static_cast<Dtype>(dtype), positions, quaternions, edges, incidence, rest_length,
          edge_weight, batch, T, M, E, terms, penalty, {lambdas[0], lambdas[1], lambdas[2]}};
}

// The relative-rotation scratch of the rigidity trio, as the glue allocates it (room for double).
std::vector<double> trio_rel(int64_t batch, int64_t T, int64_t M) {
  return std::vector<double>((T > 1 ? batch * (T - 1) * M * kRigidityRel : 0) + 1);
}

// A reduction of an array, for the bit-exact model of the summation order: item it adds x[it]
// and x[it]^2 (two sums, to check the k-major partials layout); the finisher stores both.
struct ArrayItems {
  const double* x;
  int64_t n;
  int64_t count() const { return n; }
  void operator()(int64_t it, Sums<2>& s) const {
    s.v[0] += x[it];
    s.v[1] += x[it] * x[it];
  }
};
struct StoreFinish {
  double* out;
  void operator()(const Sums<2>& s) const {
    out[0] = s.v[0];
    out[1] = s.v[1];
  }
};

}  // namespace

extern "C" {

int emu_sum(const double* x, int64_t n, int64_t blocks, double* out) {
  std::vector<double> s = scratch(2, blocks);
  HostExec{}.reduce<2>(ArrayItems{x, n}, blocks, s.data(), StoreFinish{out});
  return 0;
}

int64_t emu_reduce_blocks(int64_t items, int64_t work_per_item) {
  return reduce_blocks(items, work_per_item);
}

int64_t emu_kml_blocks(int64_t rows, int64_t D) {
  return keypoint_match_fwd_blocks({Dtype::kFloat64, nullptr, nullptr, nullptr, false, rows, 1, D});
}

int emu_kml_fwd(int dtype, const void* pred, const void* target, const void* weight,
                int weight_shared, int64_t rows, int64_t K, int64_t D, int reduction, void* out,
                double* denom, int64_t blocks) {
  const KeypointMatchProblem p{static_cast<Dtype>(dtype), pred, target, weight,
                               weight_shared != 0, rows, K, D};
  blocks = plan(blocks, keypoint_match_fwd_blocks(p));
  std::vector<double> s = scratch(kKeypointMatchSums, blocks);
  return kml::fwd(HostExec{}, p, static_cast<Reduce>(reduction), out, denom, s.data(), blocks);
}

int emu_kml_bwd(int dtype, const void* pred, const void* target, const void* weight,
                int weight_shared, int64_t rows, int64_t K, int64_t D, int reduction,
                const void* grad, const double* denom, void* grad_pred, void* grad_target) {
  const KeypointMatchProblem p{static_cast<Dtype>(dtype), pred, target, weight,
                               weight_shared != 0, rows, K, D};
  return kml::bwd(HostExec{}, p, static_cast<Reduce>(reduction), grad, denom, grad_pred,
                  grad_target);
}

// SCL launch plan: out = forward chunk, items, blocks; backward chunk, items, blocks.
void emu_scl_plan(int64_t batch, int64_t T, int64_t M, int64_t D, int order, int64_t* out) {
  const SpatioTemporalProblem p = scl_problem(0, nullptr, nullptr, 0, batch, T, M, D, order);
  out[0] = spatiotemporal_fwd_chunk(p);
  out[1] = batch * M * ceil_div64(p.steps, out[0]);
  out[2] = spatiotemporal_fwd_blocks(p);
  out[3] = spatiotemporal_bwd_chunk(p);
  out[4] = batch * M * D * ceil_div64(T, out[3]);
  out[5] = elementwise_blocks(out[4]);
}

int emu_scl_fwd(int dtype, const void* positions, const void* weight, int weight_shared,
                int64_t batch, int64_t T, int64_t M, int64_t D, int order, int reduction,
                void* out, double* denom, int64_t blocks, int64_t chunk) {
  const SpatioTemporalProblem p = scl_problem(dtype, positions, weight, weight_shared, batch, T,
                                              M, D, order);
  blocks = plan(blocks, spatiotemporal_fwd_blocks(p));
  std::vector<double> s = scratch(kSpatioTemporalSums, blocks);
  return scl::fwd(HostExec{}, p, static_cast<Reduce>(reduction), out, denom, s.data(), blocks,
                  chunk);
}

int emu_scl_bwd(int dtype, const void* positions, const void* weight, int weight_shared,
                int64_t batch, int64_t T, int64_t M, int64_t D, int order, int reduction,
                const void* grad, const double* denom, void* grad_positions, int64_t chunk) {
  const SpatioTemporalProblem p = scl_problem(dtype, positions, weight, weight_shared, batch, T,
                                              M, D, order);
  return scl::bwd(HostExec{}, p, static_cast<Reduce>(reduction), grad, denom, grad_positions,
                  chunk);
}

int emu_siren_fwd(int dtype, int index, const void* pred, const void* target,
                  const void* edge_index, const void* weight, int weight_shared,
                  const void* edge_weight, int64_t batch, int64_t K, int64_t D, int64_t E,
                  double omega0, double lambda_geo, int with_pos, int reduction, void* loss,
                  void* pos, void* geo, double* denom, int64_t blocks) {
  const SirenPoseProblem p = siren_problem(dtype, index, pred, target, edge_index, weight,
                                           weight_shared, edge_weight, batch, K, D, E, omega0,
                                           lambda_geo, with_pos);
  blocks = plan(blocks, sirenpose_fwd_blocks(p));
  std::vector<double> s = scratch(kSirenPoseSums, blocks);
  return siren::fwd(HostExec{}, p, static_cast<Reduce>(reduction), loss, pos, geo, denom,
                    s.data(), blocks);
}

int emu_siren_bwd(int dtype, int index, const void* pred, const void* target,
                  const void* edge_index, const void* weight, int weight_shared,
                  const void* edge_weight, int64_t batch, int64_t K, int64_t D, int64_t E,
                  double omega0, double lambda_geo, int with_pos, int reduction,
                  const void* grad_pos, const void* grad_geo, const double* denom,
                  const int64_t* ptr, const int64_t* slot, void* grad_pred, void* grad_target) {
  const SirenPoseProblem p = siren_problem(dtype, index, pred, target, edge_index, weight,
                                           weight_shared, edge_weight, batch, K, D, E, omega0,
                                           lambda_geo, with_pos);
  return siren::bwd(HostExec{}, p, static_cast<Reduce>(reduction), grad_pos, grad_geo, denom,
                    ptr, slot, grad_pred, grad_target);
}

int64_t emu_smooth_blocks(int64_t batch, int64_t C, int64_t E) {
  return graph_smoothness_fwd_blocks(smooth_problem(1, nullptr, nullptr, nullptr, nullptr, batch,
                                                    1, C, E, 0));
}

// The graph losses take the glue's inputs: features [batch, M, C], edges [2, E], the packed
// incidence of sirenpose_loss._graph_ops.graph_incidence.
int emu_smooth_fwd(int dtype, const void* features, const int64_t* edges, const int64_t* incidence,
                   const void* edge_weight, int64_t batch, int64_t M, int64_t C, int64_t E,
                   int penalty, int reduction, void* loss, void* terms, double* denom,
                   int64_t blocks) {
  const GraphSmoothnessProblem p = smooth_problem(dtype, features, edges, incidence, edge_weight,
                                                  batch, M, C, E, penalty);
  blocks = plan(blocks, graph_smoothness_fwd_blocks(p));
  std::vector<double> s = scratch(kGraphSmoothnessSums, blocks);
  return smooth::fwd(HostExec{}, p, static_cast<Reduce>(reduction), loss, terms, denom, s.data(),
                     blocks);
}

int emu_smooth_bwd(int dtype, const void* features, const int64_t* edges, const int64_t* incidence,
                   const void* edge_weight, int64_t batch, int64_t M, int64_t C, int64_t E,
                   int penalty, int reduction, const void* grad, const double* denom,
                   void* grad_features) {
  const GraphSmoothnessProblem p = smooth_problem(dtype, features, edges, incidence, edge_weight,
                                                  batch, M, C, E, penalty);
  // The factors as the glue allocates them: float, double for float64.
  std::vector<double> factors(batch * E);
  return smooth::bwd(HostExec{}, p, static_cast<Reduce>(reduction), grad, denom, factors.data(),
                     grad_features);
}

int64_t emu_arap_blocks(int64_t frames, int64_t E) {
  return arap_fwd_blocks(arap_problem(1, nullptr, nullptr, 0, nullptr, nullptr, nullptr, frames, 1,
                                      1, E));
}

// positions [batch, T, M, 3]; rest as the glue passes it (rest_stride 0, M * 3, or T * M * 3 with
// rest = positions for the first frame); state: 1 + batch * T * M * 9 doubles.
int emu_arap_fwd(int dtype, const void* positions, const void* rest, int64_t rest_stride,
                 const int64_t* edges, const int64_t* incidence, const void* edge_weight,
                 int64_t batch, int64_t T, int64_t M, int64_t E, int reduction, void* loss,
                 void* terms, double* state, int64_t blocks) {
  const ArapProblem p = arap_problem(dtype, positions, rest, rest_stride, edges, incidence,
                                     edge_weight, batch, T, M, E);
  blocks = plan(blocks, arap_fwd_blocks(p));
  std::vector<double> s = scratch(kArapSums, blocks);
  return arap::fwd(HostExec{}, p, static_cast<Reduce>(reduction), loss, terms, state, s.data(),
                   blocks);
}

int emu_arap_bwd(int dtype, const void* positions, const void* rest, int64_t rest_stride,
                 const int64_t* edges, const int64_t* incidence, const void* edge_weight,
                 int64_t batch, int64_t T, int64_t M, int64_t E, int reduction, const void* grad,
                 const double* state, void* grad_positions) {
  const ArapProblem p = arap_problem(dtype, positions, rest, rest_stride, edges, incidence,
                                     edge_weight, batch, T, M, E);
  std::vector<double> factors(batch * T * E);  // room for double factors
  return arap::bwd(HostExec{}, p, static_cast<Reduce>(reduction), grad, state, factors.data(),
                   grad_positions);
}

int64_t emu_trio_blocks(int64_t frames, int64_t E) {
  const double lambdas[3] = {1, 1, 1};
  return rigidity_fwd_blocks(trio_problem(1, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          frames, 1, 1, E, 7, 0, lambdas));
}

// The rigidity trio: positions [batch, T, M, 3] and quaternions [batch, T, M, 4] (either may be
// null when its terms are off), lambdas: 3 doubles; terms: term bits; t0..t2: per-term outputs.
int emu_trio_fwd(int dtype, const void* positions, const void* quaternions, const int64_t* edges,
                 const int64_t* incidence, const void* rest_length, const void* edge_weight,
                 int64_t batch, int64_t T, int64_t M, int64_t E, int terms, int penalty,
                 const double* lambdas, int reduction, void* loss, void* t0, void* t1, void* t2,
                 double* denom, int64_t blocks) {
  const RigidityProblem p = trio_problem(dtype, positions, quaternions, edges, incidence,
                                         rest_length, edge_weight, batch, T, M, E, terms, penalty,
                                         lambdas);
  blocks = plan(blocks, rigidity_fwd_blocks(p));
  std::vector<double> s = scratch(kRigiditySums, blocks), rel = trio_rel(batch, T, M);
  void* const outs[3] = {t0, t1, t2};
  return trio::fwd(HostExec{}, p, static_cast<Reduce>(reduction), loss, outs, denom, rel.data(),
                   s.data(), blocks);
}

int emu_trio_bwd(int dtype, const void* positions, const void* quaternions, const int64_t* edges,
                 const int64_t* incidence, const void* rest_length, const void* edge_weight,
                 int64_t batch, int64_t T, int64_t M, int64_t E, int terms, int penalty,
                 const double* lambdas, int reduction, const void* g0, const void* g1,
                 const void* g2, const double* denom, void* grad_positions,
                 void* grad_quaternions) {
  const RigidityProblem p = trio_problem(dtype, positions, quaternions, edges, incidence,
                                         rest_length, edge_weight, batch, T, M, E, terms, penalty,
                                         lambdas);
  std::vector<double> rel = trio_rel(batch, T, M), factors(batch * T * E * 3);
  const void* const grads[3] = {g0, g1, g2};
  return trio::bwd(HostExec{}, p, static_cast<Reduce>(reduction), grads, denom, rel.data(),
                   factors.data(), grad_positions, grad_quaternions);
}

}  // extern "C"
