// Runtime dtype (and index width) to template argument, for the launchers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "common/launch_cuda.h"

namespace sirenpose {
namespace cuda {

// Calls fn(T{}) with T the storage type of dtype; returns what fn returns (a cudaError_t).
template <typename Fn>
cudaError_t dispatch_dtype(Dtype dtype, const Fn& fn) {
  switch (dtype) {
    case Dtype::kFloat32: return fn(float{});
    case Dtype::kFloat64: return fn(double{});
    case Dtype::kFloat16: return fn(__half{});
    case Dtype::kBFloat16: return fn(__nv_bfloat16{});
  }
  return cudaErrorInvalidValue;
}

template <typename Fn>
cudaError_t dispatch_index(IndexType index, const Fn& fn) {
  switch (index) {
    case IndexType::kInt64: return fn(int64_t{});
    case IndexType::kInt32: return fn(int32_t{});
  }
  return cudaErrorInvalidValue;
}

// Calls fn(std::integral_constant<int, DC>{}) with DC = D for D = 2 and 3 (point coordinates,
// compiled with fixed loops whose loads are all issued up front) and DC = 0 (any D) otherwise.
template <typename Fn>
decltype(auto) dispatch_dim(int64_t D, const Fn& fn) {
  if (D == 3) return fn(std::integral_constant<int, 3>{});
  if (D == 2) return fn(std::integral_constant<int, 2>{});
  return fn(std::integral_constant<int, 0>{});
}

}  // namespace cuda
}  // namespace sirenpose
