// Small fixed-size maths of the rigidity losses, shared by the CPU and CUDA kernels (all in the
// accumulation type T, double on the CPU): quaternions (w, x, y, z), rotation matrices and their
// gradients, the two penalties, and the ARAP rotation (Horn's quaternion form of Kabsch).
#pragma once

#include <cmath>

#ifdef __CUDACC__
#define SP_MATH __host__ __device__ __forceinline__
#else
// Forced: the per-edge maths is small and runs in the kernels' innermost loops.
#define SP_MATH inline __attribute__((always_inline))
#endif

namespace sirenpose {
namespace rigid {

constexpr double kNormEps = 1e-20;  // sqrt(w ||r||^2 + eps), sqrt(||o||^2 + eps)

enum Penalty : int { kSquared = 0, kNorm = 1 };
enum Term : int { kRigid = 1, kRotation = 2, kIsometry = 4 };

// Penalty of a residual with weight w and squared norm sq, and d(term)/dr = factor * r.
template <typename T>
SP_MATH T penalty_value(int penalty, T w, T sq) {
  return penalty == kNorm ? sqrt(w * sq + T(kNormEps)) : w * sq;
}
template <typename T>
SP_MATH T penalty_factor(int penalty, T w, T sq) {
  return penalty == kNorm ? w / sqrt(w * sq + T(kNormEps)) : T(2) * w;
}

// q / ||q||; returns 1 / ||q||.
template <typename T>
SP_MATH T normalize4(T q[4]) {
  const T inv = T(1) / sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  for (int k = 0; k < 4; ++k) q[k] *= inv;
  return inv;
}

// out = a ⊗ b (Hamilton product); out must not alias a or b.
template <typename T>
SP_MATH void qmul(const T a[4], const T b[4], T out[4]) {
  out[0] = a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3];
  out[1] = a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2];
  out[2] = a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1];
  out[3] = a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0];
}

template <typename T>
SP_MATH void qconj(const T q[4], T out[4]) {
  out[0] = q[0];
  out[1] = -q[1];
  out[2] = -q[2];
  out[3] = -q[3];
}

// R(q) of a unit quaternion, row-major.
template <typename T>
SP_MATH void rotation(const T q[4], T R[9]) {
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  R[0] = T(1) - T(2) * (y * y + z * z); R[1] = T(2) * (x * y - w * z); R[2] = T(2) * (x * z + w * y);
  R[3] = T(2) * (x * y + w * z); R[4] = T(1) - T(2) * (x * x + z * z); R[5] = T(2) * (y * z - w * x);
  R[6] = T(2) * (x * z - w * y); R[7] = T(2) * (y * z + w * x); R[8] = T(1) - T(2) * (x * x + y * y);
}

// g += (dR(q)/dq)^T G for G = dL/dR (row-major).
template <typename T>
SP_MATH void rotation_backward(const T q[4], const T G[9], T g[4]) {
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  g[0] += T(2) * (-z * G[1] + y * G[2] + z * G[3] - x * G[5] - y * G[6] + x * G[7]);
  g[1] += T(2) * (y * G[1] + z * G[2] + y * G[3] - T(2) * x * G[4] - w * G[5] + z * G[6] +
                  w * G[7] - T(2) * x * G[8]);
  g[2] += T(2) * (-T(2) * y * G[0] + x * G[1] + w * G[2] + x * G[3] + z * G[5] - w * G[6] +
                  z * G[7] - T(2) * y * G[8]);
  g[3] += T(2) * (-T(2) * z * G[0] - w * G[1] + x * G[2] + w * G[3] - T(2) * z * G[4] +
                  y * G[5] + x * G[6] + y * G[7]);
}

// The relative rotation p = â ⊗ b̂^-1 of two raw quaternions (a at t+1, b at t): the
// normalised inputs and their inverse norms are kept for the backward.
template <typename T>
struct RelativeRotation {
  T a[4], b[4], inv_a, inv_b, p[4];
  template <typename S>
  SP_MATH void compute(const S* qa, const S* qb) {
    for (int k = 0; k < 4; ++k) {
      a[k] = static_cast<T>(qa[k]);
      b[k] = static_cast<T>(qb[k]);
    }
    inv_a = normalize4(a);
    inv_b = normalize4(b);
    T bc[4];
    qconj(b, bc);
    qmul(a, bc, p);
  }
  // From dL/dp to dL/d(raw a) and dL/d(raw b): dL/dâ = gp ⊗ b̂, dL/db̂ = gp^* ⊗ â, then through
  // the normalisation, dL/dq = (g - q̂ (q̂ . g)) / ||q||.
  SP_MATH void backward(const T gp[4], T ga[4], T gb[4]) const {
    T gpc[4];
    qconj(gp, gpc);
    qmul(gp, b, ga);
    qmul(gpc, a, gb);
    project(a, inv_a, ga);
    project(b, inv_b, gb);
  }
  static SP_MATH void project(const T q[4], T inv, T g[4]) {
    const T d = q[0] * g[0] + q[1] * g[1] + q[2] * g[2] + q[3] * g[3];
    for (int k = 0; k < 4; ++k) g[k] = (g[k] - q[k] * d) * inv;
  }
};

// Horn's symmetric 4x4 matrix N(S) of S = sum w X o^T (row-major): the quaternion q of the
// proper rotation maximising tr(R S) is the unit eigenvector of N's largest eigenvalue.
template <typename T>
SP_MATH void horn_matrix(const T S[9], T A[4][4]) {
  const T xx = S[0], xy = S[1], xz = S[2], yx = S[3], yy = S[4], yz = S[5], zx = S[6],
          zy = S[7], zz = S[8];
  A[0][0] = xx + yy + zz; A[0][1] = yz - zy; A[0][2] = zx - xz; A[0][3] = xy - yx;
  A[1][1] = xx - yy - zz; A[1][2] = xy + yx; A[1][3] = zx + xz;
  A[2][2] = -xx + yy - zz; A[2][3] = yz + zy;
  A[3][3] = -xx - yy + zz;
  for (int p = 1; p < 4; ++p)
    for (int q = 0; q < p; ++q) A[p][q] = A[q][p];
}

// The eigenvector by cyclic Jacobi sweeps: deterministic (fixed sweep order, a fixed cap on
// sweeps), never NaN for finite S; S = 0 gives N = 0 and the identity. The fallback of
// horn_rotation for (nearly) repeated eigenvalues.
template <typename T>
SP_MATH void horn_rotation_jacobi(const T S[9], T R[9]) {
  T A[4][4];
  horn_matrix(S, A);
  T V[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
  for (int sweep = 0; sweep < 12; ++sweep) {
    T off = 0, scale = 0;
    for (int p = 0; p < 4; ++p) {
      scale += A[p][p] * A[p][p];
      for (int q = p + 1; q < 4; ++q) off += A[p][q] * A[p][q];
    }
    if (!(off > T(1e-30) * scale)) break;  // converged (or S = 0)
    for (int p = 0; p < 3; ++p) {
      for (int q = p + 1; q < 4; ++q) {
        const T apq = A[p][q];
        if (apq == T(0)) continue;
        // Rotation angle that zeroes A[p][q] (Golub & Van Loan's symmetric Schur step).
        const T theta = (A[q][q] - A[p][p]) / (T(2) * apq);
        const T t = (theta >= T(0) ? T(1) : T(-1)) / (fabs(theta) + sqrt(theta * theta + T(1)));
        const T c = T(1) / sqrt(t * t + T(1)), s = t * c;
        for (int k = 0; k < 4; ++k) {
          const T akp = A[k][p], akq = A[k][q];
          A[k][p] = c * akp - s * akq;
          A[k][q] = s * akp + c * akq;
        }
        for (int k = 0; k < 4; ++k) {
          const T apk = A[p][k], aqk = A[q][k];
          A[p][k] = c * apk - s * aqk;
          A[q][k] = s * apk + c * aqk;
        }
        for (int k = 0; k < 4; ++k) {
          const T vkp = V[k][p], vkq = V[k][q];
          V[k][p] = c * vkp - s * vkq;
          V[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  int best = 0;
  for (int k = 1; k < 4; ++k)
    if (A[k][k] > A[best][best]) best = k;
  T q[4] = {V[0][best], V[1][best], V[2][best], V[3][best]};
  normalize4(q);
  rotation(q, R);
}

template <typename T>
SP_MATH T det3(T a, T b, T c, T d, T e, T f, T g, T h, T i) {
  return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
}

// The 3x3 minor of A without row r and column c.
template <typename T>
SP_MATH T minor3(const T A[4][4], int r, int c) {
  const int r0 = r == 0 ? 1 : 0, r1 = r <= 1 ? 2 : 1, r2 = r <= 2 ? 3 : 2;
  const int c0 = c == 0 ? 1 : 0, c1 = c <= 1 ? 2 : 1, c2 = c <= 2 ? 3 : 2;
  return det3(A[r0][c0], A[r0][c1], A[r0][c2], A[r1][c0], A[r1][c1], A[r1][c2], A[r2][c0],
              A[r2][c1], A[r2][c2]);
}

// The proper rotation R maximising tr(R S) (Horn's quaternion form of Kabsch), fast path in the
// manner of the quaternion characteristic polynomial method: S is scaled to unit Frobenius norm
// (R does not change); N's largest eigenvalue l is the largest root of det(N - l I) =
// l^4 + c2 l^2 + c1 l + c0 (N is traceless), found by Newton's method from the bound
// sqrt(3) ||S|| >= s1 + s2 + s3, which for a real-rooted polynomial descends monotonically onto
// it; the eigenvector is the adjugate column of N - l I of largest norm. When that norm is small
// (a nearly repeated largest eigenvalue: collinear or degenerate neighbourhoods) the column is
// inaccurate and the Jacobi sweeps decide instead. Deterministic, never NaN for finite S.
template <typename T>
SP_MATH void horn_rotation(const T S_in[9], T R[9]) {
  T fro2 = 0;
  for (int k = 0; k < 9; ++k) fro2 += S_in[k] * S_in[k];
  if (!(fro2 > T(0)) || !(fro2 < T(1e300))) {  // S = 0, or not finite
    horn_rotation_jacobi(S_in, R);
    return;
  }
  const T inv = T(1) / sqrt(fro2);
  T S[9];
  for (int k = 0; k < 9; ++k) S[k] = S_in[k] * inv;
  T A[4][4];
  horn_matrix(S, A);
  const T detS = det3(S[0], S[1], S[2], S[3], S[4], S[5], S[6], S[7], S[8]);
  const T c2 = T(-2), c1 = T(-8) * detS;  // ||S|| = 1 after the scaling
  const T c0 = A[0][0] * minor3(A, 0, 0) - A[0][1] * minor3(A, 0, 1) + A[0][2] * minor3(A, 0, 2) -
               A[0][3] * minor3(A, 0, 3);
  T l = sqrt(T(3));
  for (int it = 0; it < 64; ++it) {
    const T l2 = l * l;
    const T p = (l2 + c2) * l2 + c1 * l + c0;
    const T dp = T(4) * l2 * l + T(2) * c2 * l + c1;
    if (!(dp > T(0))) break;
    const T next = l - p / dp;
    if (!(next < l)) break;  // converged: rounding stops the descent
    l = next;
  }
  for (int k = 0; k < 4; ++k) A[k][k] -= l;
  // adj(N - l I) = prod_k (l_k - l) v v^T: its largest column is the eigenvector, scaled.
  T q[4] = {1, 0, 0, 0}, best = -1;
  for (int c = 0; c < 4; ++c) {
    T v[4], n2 = 0;
    for (int r = 0; r < 4; ++r) {
      v[r] = ((r + c) & 1 ? T(-1) : T(1)) * minor3(A, c, r);
      n2 += v[r] * v[r];
    }
    if (n2 > best) {
      best = n2;
      for (int r = 0; r < 4; ++r) q[r] = v[r];
    }
  }
  // With ||S|| = 1 the column's norm is the product of the eigenvalue gaps times a component
  // of v (>= 1/2 for the largest); below 1e-3 the rounding of l would show in q.
  if (!(best > T(1e-6))) {
    horn_rotation_jacobi(S, R);
    return;
  }
  normalize4(q);
  rotation(q, R);
}

}  // namespace rigid
}  // namespace sirenpose
