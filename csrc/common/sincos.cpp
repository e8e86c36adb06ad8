// See sincos.h. Built once per instruction set (AVX2+FMA and baseline) when the compiler
// supports function multi-versioning; the loader picks the clone for the running CPU.
#include "common/sincos.h"

#include "common/simd_clones.h"

namespace sirenpose {

SIRENPOSE_SIMD_CLONES
void sincos_array(const double* __restrict x, double* __restrict s, double* __restrict c,
                  int64_t n) {
  constexpr double kTwoOverPi = 6.36619772367581382433e-01;
  // pi/2 split in three parts (33 + 33 + 53 bits): q * part is exact for |q| < 2^20.
  constexpr double kPio2a = 1.57079632673412561417e+00;
  constexpr double kPio2b = 6.07710050630396597660e-11;
  constexpr double kPio2c = 2.02226624871116645580e-21;
  constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  // Minimax polynomials of sin and cos on [-pi/4, pi/4] (the classic fdlibm kernel constants).
  constexpr double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
                   S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
                   S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
  constexpr double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
                   C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
                   C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x[i];
    const double xf = std::fabs(xi) <= kFastSinCosLimit ? xi : 0.0;  // NaN/Inf/huge: fixed below
    const double q = (xf * kTwoOverPi + kRound) - kRound;
    // k = q mod 4 in {0, 1, 2, 3}, kept in double so the whole loop vectorises.
    const double m = q - 4.0 * ((q * 0.25 + kRound) - kRound);
    const double k = m < 0.0 ? m + 4.0 : m;
    const double r = ((xf - q * kPio2a) - q * kPio2b) - q * kPio2c;
    const double z = r * r;
    const double sr = r + r * z * (S1 + z * (S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)))));
    const double cr = (1.0 - 0.5 * z) + z * z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
    // x = r + k pi/2: odd k swaps sin and cos; k = 2, 3 flip sin; k = 1, 2 flip cos.
    const double odd = std::fabs(k - 2.0) == 1.0 ? 1.0 : 0.0;
    const double sign_s = k >= 2.0 ? -1.0 : 1.0;
    const double sign_c = std::fabs(k - 1.5) == 0.5 ? -1.0 : 1.0;
    // Exact blends: one product is 0, the other an exact copy (sr, cr are finite here).
    s[i] = sign_s * ((1.0 - odd) * sr + odd * cr);
    c[i] = sign_c * ((1.0 - odd) * cr + odd * sr);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!(std::fabs(x[i]) <= kFastSinCosLimit)) {
      s[i] = std::sin(x[i]);
      c[i] = std::cos(x[i]);
    }
  }
}

}  // namespace sirenpose
