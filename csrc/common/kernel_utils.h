// Small helpers shared by the CPU kernels: shapes, incoming gradients, weight access.
#pragma once

#include <ATen/ATen.h>

#include "common/checks.h"
#include "common/reduction.h"
#include "common/value_checks.h"

namespace sirenpose {

// Per-row weight view: w[row] for per-batch weights, w[row % rows] for a shared [rows] weight.
// kWeighted = false means every weight is 1. It is a template parameter, not a null check,
// because a `data ? data[i] : 1` select in a vectorised loop compiles to a masked load from a
// null pointer, which costs a microcode assist per vector even though nothing is read.
template <typename scalar_t, bool kWeighted = true>
struct RowWeight {
  const scalar_t* data = nullptr;
  int64_t batch_stride = 0;  // 0 when shared by the batch
  static constexpr bool weighted = kWeighted;
  inline int64_t index(int64_t b, int64_t r) const { return b * batch_stride + r; }
  inline double at(int64_t b, int64_t r) const {
    if constexpr (kWeighted) {
      return static_cast<double>(data[index(b, r)]);
    } else {
      return 1.0;
    }
  }
};

// Calls body(RowWeight<scalar_t, true or false>) depending on whether a weight was given.
template <typename scalar_t, typename Body>
void with_row_weight(const at::Tensor& weight, int64_t batch_stride, const Body& body) {
  if (weight.defined()) body(RowWeight<scalar_t, true>{weight.data_ptr<scalar_t>(), batch_stride});
  else body(RowWeight<scalar_t, false>{});
}

// The weight tensor made contiguous (or undefined), with its batch stride.
inline std::pair<at::Tensor, int64_t> prepare_weight(const c10::optional<at::Tensor>& weight,
                                                     const char* name, int64_t batch,
                                                     int64_t rows, const at::Tensor& like) {
  if (!weight.has_value() || !weight->defined()) return {at::Tensor(), 0};
  const int64_t stride = weight_batch_stride(*weight, name, batch, rows, like);
  return {weight->contiguous(), stride};
}

// The incoming gradient of a reduced loss as a double, or the contiguous per-term gradient.
inline double scalar_grad(const at::Tensor& grad, const char* what) {
  TORCH_CHECK_VALUE(grad.numel() == 1, what, ": the gradient of a reduced loss must have one "
                    "element, got shape ", grad.sizes());
  // Read directly: item() is an op dispatch, a measurable share of a small loss's backward.
  if (grad.is_contiguous() || grad.dim() == 0) {
    double value = 0.0;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "scalar_grad", [&] {
      value = static_cast<double>(*grad.const_data_ptr<scalar_t>());
    });
    return value;
  }
  return grad.item<double>();
}

inline at::Tensor per_term_grad(const at::Tensor& grad, at::IntArrayRef shape,
                                const at::Tensor& like, const char* what) {
  TORCH_CHECK_VALUE(grad.sizes() == shape, what, ": the per-term gradient must have shape ",
                    shape, ", got ", grad.sizes());
  return grad.to(like.scalar_type()).contiguous();
}

inline at::Tensor denom_tensor(double value, const at::Tensor& like) {
  return at::scalar_tensor(value, like.options().dtype(at::kDouble));
}

// A 0-dim tensor of `like`'s dtype holding `value`, written in place of a fill_ dispatch.
inline void set_scalar(at::Tensor& out, double value) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "set_scalar", [&] {
    *out.mutable_data_ptr<scalar_t>() = static_cast<scalar_t>(value);
  });
}

inline double denom_value(const at::Tensor& denom, int64_t index) {
  TORCH_CHECK_VALUE(denom.numel() > index, "denom must have at least ", index + 1,
                    " elements, got ", denom.numel());
  if (denom.scalar_type() == at::kDouble && denom.is_contiguous())
    return denom.const_data_ptr<double>()[index];
  return denom.to(at::kDouble).contiguous().data_ptr<double>()[index];
}

// An empty [0] tensor stands for a gradient nobody asked for.
inline at::Tensor grad_or_empty(bool wanted, const at::Tensor& like) {
  return wanted ? at::empty_like(like, at::MemoryFormat::Contiguous) : at::empty({0}, like.options());
}

}  // namespace sirenpose
