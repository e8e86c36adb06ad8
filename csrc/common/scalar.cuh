// Scalar types of the CUDA kernels: each storage dtype, the type its arithmetic runs in
// (float for float/half/bfloat16, double for double) and the conversions between them.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>

#define SP_HD __host__ __device__ __forceinline__

// `#pragma unroll n` for loops in SP_HD functions, which the host compiler must not see.
#define SP_PRAGMA(x) _Pragma(#x)
#ifdef __CUDA_ARCH__
#define SP_UNROLL(n) SP_PRAGMA(unroll n)
#else
#define SP_UNROLL(n)
#endif

namespace sirenpose {
namespace cuda {

template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <typename T> using acc_t = typename AccOf<T>::type;

SP_HD float to_acc(float x) { return x; }
SP_HD double to_acc(double x) { return x; }
SP_HD float to_acc(__half x) { return __half2float(x); }
SP_HD float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }

// Storage from the arithmetic type (round to nearest even). Doubles reach half/bfloat16 through
// float, as c10::Half(double) does on the CPU.
template <typename T> SP_HD T from_acc(double v);
template <> SP_HD float from_acc<float>(double v) { return static_cast<float>(v); }
template <> SP_HD double from_acc<double>(double v) { return v; }
template <> SP_HD __half from_acc<__half>(double v) { return __float2half_rn(static_cast<float>(v)); }
template <> SP_HD __nv_bfloat16 from_acc<__nv_bfloat16>(double v) {
  return __float2bfloat16_rn(static_cast<float>(v));
}

// sin and cos together. The accurate library versions, not the __sinf intrinsics: omega0 times a
// coordinate difference can be tens of radians, where the intrinsics lose digits.
SP_HD void sin_cos(float x, float* s, float* c) {
#ifdef __CUDA_ARCH__
  sincosf(x, s, c);
#else
  *s = std::sin(x);
  *c = std::cos(x);
#endif
}
SP_HD void sin_cos(double x, double* s, double* c) {
#ifdef __CUDA_ARCH__
  sincos(x, s, c);
#else
  *s = std::sin(x);
  *c = std::cos(x);
#endif
}

// A compiler barrier (no instruction): the loads written above it stay above it in the PTX.
// Without it NVVM sinks each load next to its first use; ptxas then hoists only some of them.
SP_HD void loads_issued() {
#ifdef __CUDA_ARCH__
  asm volatile("" ::: "memory");
#endif
}

// The NaN that poisons a result computed from an invalid index (never read out of bounds).
SP_HD float quiet_nan(float) { return static_cast<float>(NAN); }
SP_HD double quiet_nan(double) { return static_cast<double>(NAN); }

}  // namespace cuda
}  // namespace sirenpose
