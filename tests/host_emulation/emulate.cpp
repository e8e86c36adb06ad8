// C entry points of the host emulation of the CUDA kernels (loaded with ctypes by
// tests/test_host_emulation.py). Each runs the kernels' own launch code (kml::fwd, scl::bwd, ...
// of csrc/<loss>/<loss>_items.cuh) with the HostExec of exec.h instead of CudaExec. Pointers are
// host pointers of contiguous tensors; `blocks` (and SCL's `chunk`) <= 0 take the launch plan of
// <loss>_cuda.h.
#include <cstdint>
#include <vector>

#include "exec.h"
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

}  // extern "C"
