// Four double lanes for the CPU kernels' hot loops (GCC/Clang vector extension; two SSE2
// registers on baseline x86-64, one AVX register in the AVX2 clones).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

// Everything here is inline, so the "AVX vector return changes the ABI" note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sirenpose {

// Lane-wise sums in a fixed order are deterministic and vectorised without -ffast-math.
typedef double lanes4 __attribute__((vector_size(32)));
typedef float flanes4 __attribute__((vector_size(16)));

// Four consecutive values as doubles.
template <typename scalar_t>
inline lanes4 load4(const scalar_t* p) {
  if constexpr (std::is_same_v<scalar_t, double>) {
    lanes4 v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  } else if constexpr (std::is_same_v<scalar_t, float>) {
    flanes4 v;
    std::memcpy(&v, p, sizeof(v));
    return __builtin_convertvector(v, lanes4);
  } else {
    return lanes4{static_cast<double>(p[0]), static_cast<double>(p[1]), static_cast<double>(p[2]),
                  static_cast<double>(p[3])};
  }
}

inline double sum_lanes(lanes4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

// Sum of x[0, n): lane j takes x[4k + j], the tail goes to lane 0.
inline double sum_lanes(const double* __restrict x, int64_t n) {
  lanes4 acc = {0.0, 0.0, 0.0, 0.0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) acc += load4(x + i);
  for (; i < n; ++i) acc[0] += x[i];
  return sum_lanes(acc);
}

}  // namespace sirenpose
