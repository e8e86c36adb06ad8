// Argument checks of the C++ ops. The Python API validates first with friendlier messages;
// these keep direct calls of torch.ops.sirenpose_loss.* from reading out of bounds.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <charconv>
#include <cmath>
#include <string>

namespace sirenpose {

// A double as Python's repr() writes it (shortest round-trip digits, "30.0" rather than "30"),
// so that the kernels' messages read exactly like the Python API's.
inline std::string float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  const double a = std::fabs(v);
  const bool scientific = a != 0.0 && (a < 1e-4 || a >= 1e16);  // where repr() switches
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof(buf), v,
                                 scientific ? std::chars_format::scientific : std::chars_format::fixed);
  std::string out(buf, end.ptr);
  if (!scientific && out.find('.') == std::string::npos) out += ".0";
  return out;
}

// Plain-number arguments. The Python API checks them first in eager mode; under torch.compile
// it leaves them to these checks, which run with the values the compiled graph passes.
inline void check_positive_number(double v, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(v) && v > 0, name, " must be a positive finite number, got ",
                    float_repr(v));
}

inline void check_nonnegative_number(double v, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(v) && v >= 0, name, " must be a non-negative finite number, got ",
                    float_repr(v));
}

inline void check_order(int64_t order) {
  TORCH_CHECK_VALUE(order == 1 || order == 2,
                    "order must be 1 (velocity) or 2 (acceleration), got ", order);
}

inline void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()), name,
                   " must be a floating-point tensor, got dtype ", t.scalar_type());
}

inline void check_same(const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn) {
  TORCH_CHECK_VALUE(a.sizes() == b.sizes(), an, " and ", bn, " must have the same shape, got ",
                    a.sizes(), " and ", b.sizes());
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), an, " and ", bn,
                   " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK_VALUE(a.device() == b.device(), an, " and ", bn,
                    " must be on the same device, got ", a.device(), " and ", b.device());
}

// A per-row weight is either shared ([rows_per_batch]) or per batch entry ([batch*rows]).
// Returns the stride between batch entries in the weight (0 when shared).
inline int64_t weight_batch_stride(const at::Tensor& w, const char* name, int64_t batch,
                                   int64_t rows, const at::Tensor& like) {
  check_float(w, name);
  TORCH_CHECK_TYPE(w.scalar_type() == like.scalar_type(), name, " must have dtype ",
                   like.scalar_type(), ", got ", w.scalar_type());
  TORCH_CHECK_VALUE(w.device() == like.device(), name, " must be on ", like.device(), ", got ",
                    w.device());
  if (w.numel() == rows && (w.dim() == 1 || batch == 1)) return 0;
  TORCH_CHECK_VALUE(w.numel() == batch * rows, name, " must have ", rows, " or ", batch * rows,
                    " elements, got shape ", w.sizes());
  return rows;
}

}  // namespace sirenpose
