// Index arithmetic shared by the kernels and the host emulation.
#pragma once

#include <cstdint>

#include "common/scalar.cuh"

namespace sirenpose {
namespace cuda {

// n / d and n % d for n >= 0, d > 0. Both operands almost always fit in 32 bits, where the
// hardware sequence is far cheaper than the 64-bit division subroutine.
SP_HD int64_t div_rem(int64_t n, int64_t d, int64_t* rem) {
  if (((n | d) >> 32) == 0) {
    const uint32_t q = static_cast<uint32_t>(n) / static_cast<uint32_t>(d);
    *rem = n - static_cast<int64_t>(q) * d;
    return q;
  }
  const int64_t q = n / d;
  *rem = n - q * d;
  return q;
}

}  // namespace cuda
}  // namespace sirenpose
