// The per-edge maths of the rigidity trio, shared by the CPU and CUDA kernels. A slice
// (one batch entry, frames t and t + 1) is any type with x0, x1, rigid, rot, iso,
// offset(x, j, i, o), p_at(n, c) (node n's relative rotation) and rotation_at(n, R) (its R(p))
// (see rigidity_cpu.cpp and rigidity_kernels.cu).
#pragma once

#include <cstdint>

#include "common/rigid_math.h"

namespace sirenpose {
namespace rigid {

// Per node and slice: p (4), R(p) (9), padded to 16 values (one cache line in float32).
constexpr int64_t kRel = 16;

// The residuals of edge (j -> i) in one slice, recomputed wherever they are needed.
struct EdgeResiduals {
  double o0[3] = {0, 0, 0}, o1[3];  // offsets at t and t + 1
  double R[9];          // R(p_i)
  double rigid[3] = {0, 0, 0};  // R_i^T o1 - o0 (0 where off: read only when on)
  double rot[4] = {0, 0, 0, 0};  // p_j - p_i
  double len = 1;       // sqrt(||o0||^2 + eps) (1 where off: read only when on)
  template <typename SliceT>
  SP_MATH void compute(const SliceT& sl, int64_t j, int64_t i) {
    if (sl.x0) sl.offset(sl.x0, j, i, o0);
    if (sl.rigid) {
      sl.offset(sl.x1, j, i, o1);
      sl.rotation_at(i, R);
      for (int a = 0; a < 3; ++a)
        rigid[a] = R[a] * o1[0] + R[3 + a] * o1[1] + R[6 + a] * o1[2] - o0[a];
    }
    if (sl.rot)
      for (int c = 0; c < 4; ++c)
        rot[c] = sl.p_at(j, c) - sl.p_at(i, c);
    if (sl.iso) len = sqrt(o0[0] * o0[0] + o0[1] * o0[1] + o0[2] * o0[2] + kNormEps);
  }
  SP_MATH double rigid_sq() const { return rigid[0] * rigid[0] + rigid[1] * rigid[1] + rigid[2] * rigid[2]; }
  SP_MATH double rot_sq() const { return rot[0] * rot[0] + rot[1] * rot[1] + rot[2] * rot[2] + rot[3] * rot[3]; }
  // The three terms' values (0 for terms off in this slice). d: the rest length.
  template <typename SliceT>
  SP_MATH void values(const SliceT& sl, int penalty, double w, double d, double v[3]) const {
    v[0] = sl.rigid ? penalty_value(penalty, w, rigid_sq()) : 0.0;
    v[1] = sl.rot ? penalty_value(penalty, w, rot_sq()) : 0.0;
    v[2] = sl.iso ? penalty_value(penalty, w, (len - d) * (len - d)) : 0.0;
  }
  // d(loss)/d(residual) = f * residual for the three terms (isometry: f * o0, the chain
  // through the length folded in). c: the terms' incoming gradients.
  template <typename SliceT>
  SP_MATH void factors(const SliceT& sl, int penalty, double w, double d, const double c[3],
               double f[3]) const {
    f[0] = sl.rigid ? c[0] * penalty_factor(penalty, w, rigid_sq()) : 0.0;
    f[1] = sl.rot ? c[1] * penalty_factor(penalty, w, rot_sq()) : 0.0;
    f[2] = sl.iso ? c[2] * penalty_factor(penalty, w, (len - d) * (len - d)) * (len - d) / len : 0.0;
  }
};

// One node's gradient accumulators in one slice.
struct NodeGrad {
  double gx0[3], gx1[3] = {0, 0, 0}, gR[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0}, gp[4] = {0, 0, 0, 0};
  // Adds an edge's contribution; sign +1 when the node is the neighbour j, -1 the centre i.
  template <typename SliceT>
  SP_MATH void add(const SliceT& sl, const EdgeResiduals& er, const double f[3], double sign) {
    if (sl.rigid) {
      const double* R = er.R;
      for (int a = 0; a < 3; ++a) {
        const double gr = f[0] * er.rigid[a];
        gx0[a] -= sign * gr;
        gx1[a] += sign * f[0] * (R[a * 3] * er.rigid[0] + R[a * 3 + 1] * er.rigid[1] + R[a * 3 + 2] * er.rigid[2]);
        if (sign < 0)
          for (int c = 0; c < 3; ++c) gR[c * 3 + a] += er.o1[c] * gr;
      }
    }
    if (sl.rot)
      for (int c = 0; c < 4; ++c) gp[c] += sign * f[1] * er.rot[c];
    if (sl.iso)
      for (int a = 0; a < 3; ++a) gx0[a] += sign * f[2] * er.o0[a];
  }
};

}  // namespace rigid
}  // namespace sirenpose
