// Value checks that run inside a CPU kernel's own pass (negative weights, edge indices out of
// range). Each chunk notes the first offending flat index it saw; the minimum over the chunks
// does not depend on which thread ran which chunk, so the error names the same element as a
// serial scan would. The op raises after the pass, before it returns anything.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <limits>

namespace sirenpose {

constexpr int64_t kNoBadIndex = std::numeric_limits<int64_t>::max();

// The smallest offending flat index noted by any chunk. A compare-exchange of an integer
// minimum: one per chunk, never in a result path, and order-independent.
class FirstBad {
 public:
  void note(int64_t index) {
    int64_t seen = first_.load(std::memory_order_relaxed);
    while (index < seen && !first_.compare_exchange_weak(seen, index, std::memory_order_relaxed)) {
    }
  }
  bool found() const { return index() != kNoBadIndex; }
  int64_t index() const { return first_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> first_{kNoBadIndex};
};

// The first negative entry of w[begin, end) (NaN is not negative), or kNoBadIndex.
template <typename scalar_t>
inline int64_t first_negative(const scalar_t* w, int64_t begin, int64_t end) {
  for (int64_t n = begin; n < end; ++n) {
    if (static_cast<double>(w[n]) < 0.0) return n;
  }
  return kNoBadIndex;
}

// Raises for the first negative entry of the contiguous weight `w` (undefined: no weight) that
// the pass found. `covered`: the pass read every entry of w. It does not when the problem is
// empty (no rows to weight); then w is scanned here, which is the only work of such a call.
template <typename scalar_t>
void raise_if_negative(const FirstBad& bad, const at::Tensor& w, const char* name, bool covered) {
  if (!w.defined()) return;
  const scalar_t* p = w.const_data_ptr<scalar_t>();
  const int64_t n = covered ? bad.index() : first_negative(p, 0, w.numel());
  TORCH_CHECK_VALUE(n == kNoBadIndex, name, " must be non-negative, got ",
                    static_cast<double>(p[n]), " at flat index ", n);
}

}  // namespace sirenpose
