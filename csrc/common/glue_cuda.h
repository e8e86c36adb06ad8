// ATen-side helpers of the CUDA glue (csrc/<loss>/<loss>_cuda.cpp, host compiler only): dtype
// codes, the current stream, scratch buffers and incoming gradients, all without a host sync.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "common/checks.h"
#include "common/kernel_utils.h"
#include "common/launch_cuda.h"
#include "common/reduction.h"

namespace sirenpose {

inline cuda::Dtype cuda_dtype(const at::Tensor& t, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat: return cuda::Dtype::kFloat32;
    case at::kDouble: return cuda::Dtype::kFloat64;
    case at::kHalf: return cuda::Dtype::kFloat16;
    case at::kBFloat16: return cuda::Dtype::kBFloat16;
    default:
      TORCH_CHECK_TYPE(false, name, " must be float32, float64, float16 or bfloat16 on CUDA, got ",
                       t.scalar_type());
  }
}

inline cuda::Reduce cuda_reduce(Reduction r) { return static_cast<cuda::Reduce>(r); }

inline void check_on(const at::Tensor& t, const char* name, const at::Tensor& like) {
  TORCH_CHECK_VALUE(t.device() == like.device(), name, " must be on ", like.device(), ", got ",
                    t.device());
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline const void* data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

// Scratch of the first pass of a reduction: `sums` doubles per block; none for a single block.
inline at::Tensor reduce_scratch(int sums, int64_t blocks, const at::Tensor& like) {
  if (blocks <= 1) return at::Tensor();
  return at::empty({sums * blocks}, like.options().dtype(at::kDouble));
}

inline double* scratch_ptr(const at::Tensor& scratch) {
  return scratch.defined() ? scratch.data_ptr<double>() : nullptr;
}

// The incoming gradient of a reduced loss, left on the device (the kernel reads it there).
inline at::Tensor reduced_grad(const at::Tensor& grad, const at::Tensor& like, const char* what) {
  TORCH_CHECK_VALUE(grad.numel() == 1, what, ": the gradient of a reduced loss must have one "
                    "element, got shape ", grad.sizes());
  check_on(grad, "grad", like);
  return grad.to(like.scalar_type()).contiguous();
}

// The incoming per-term gradient in like's dtype, contiguous, on like's device.
inline at::Tensor per_term_grad_cuda(const at::Tensor& grad, at::IntArrayRef shape,
                                     const at::Tensor& like, const char* what) {
  check_on(grad, "grad", like);
  return per_term_grad(grad, shape, like, what);
}

// The forward's denom as contiguous float64 on like's device, with at least `n` elements.
inline at::Tensor device_denom(const at::Tensor& denom, int64_t n, const at::Tensor& like) {
  TORCH_CHECK_VALUE(denom.numel() >= n, "denom must have at least ", n, " elements, got ",
                    denom.numel());
  return denom.to(like.device(), at::kDouble).contiguous();
}

// Batch shape of points [..., R, D] (or positions [..., T, M, D] with tail = 3).
inline std::vector<int64_t> leading_shape(const at::Tensor& t, int64_t tail) {
  return std::vector<int64_t>(t.sizes().begin(), t.sizes().end() - tail);
}

inline int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

}  // namespace sirenpose
