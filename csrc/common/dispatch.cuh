// Runtime dtype (and index width) to template argument, for the launchers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

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

}  // namespace cuda
}  // namespace sirenpose
