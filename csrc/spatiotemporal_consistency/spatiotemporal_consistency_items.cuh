// Spatio-temporal consistency loss, the per-item work of the CUDA kernels: host+device code,
// run by the kernel shells of common/launch.cuh and by the host emulation of the tests alike.
//
// The time axis is cut into chunks (scl_chunk in spatiotemporal_consistency_cuda.h, a function
// of the problem size only), and a work item is one chunk of one column, chunk-major: consecutive
// threads own consecutive columns (coalesced accesses) and the grid fills the GPU whatever the
// number of columns. A chunk re-reads the `order` frames before it. Each thread loads a group of
// frames before using the first, so several loads are in flight per thread.
//   forward:  item (chunk, batch, Gaussian); D = 2 or 3 in registers (other D re-read the few
//             previous frames, from cache); fixed-grid two-pass sum;
//   backward: item (chunk, batch, Gaussian, coordinate); each gradient element written once,
//             with the same arithmetic whatever the chunking (the chunk first replays the
//             `order` terms before it).
#pragma once

#include "common/dispatch.cuh"
#include "common/grid.cuh"
#include "common/reduced.cuh"
#include "common/rows.cuh"
#include "common/scalar.cuh"
#include "common/two_pass.cuh"
#include "spatiotemporal_consistency/spatiotemporal_consistency_cuda.h"

namespace sirenpose {
namespace cuda {
namespace scl {

// Frames each thread loads before using the first: the loads in flight per thread (see
// docs/cuda.md for the sizing).
constexpr int kAheadFwd = 4;  // D = 2 or 3 coordinates each
constexpr int kAheadBwd = 8;  // one coordinate (and one incoming gradient) each

// Blocks per SM each kernel must fit (caps its registers): 4 (1024 threads, <= 64 registers)
// for float, where ptxas then needs no spills; half/bfloat16 and double need more registers
// (their conversions, 64-bit values) and get 3 and 2.
template <typename T>
constexpr int min_blocks() {
  return sizeof(T) == 4 ? 4 : sizeof(T) == 2 ? 3 : 2;
}

template <typename T>
struct Data {
  const T* positions;  // [batch, T, M, D]
  RowWeight<T> weight;
  int64_t batch, frames, M, D, steps;  // frames: the T of [batch, T, M, D]

  SP_HD int64_t frame() const { return M * D; }  // elements between consecutive frames
};

template <typename T>
Data<T> data(const SpatioTemporalProblem& p) {
  return {static_cast<const T*>(p.positions),
          {static_cast<const T*>(p.weight), p.weight_shared, p.M},
          p.batch, p.T, p.M, p.D, p.steps};
}

// One coordinate of Delta^order: order 1 is x1 - x0, order 2 is (x2 - 2 x1) + x0 (the CPU's
// evaluation order). xs are consecutive frames, oldest first.
template <int ORDER, typename A>
SP_HD A stencil(A x0, A x1, A x2) {
  if constexpr (ORDER == 1) return x1 - x0;
  else return (x2 - A(2) * x1) + x0;
}

// One step of the forward walk: the term of the newest frame `next` after the frames held in x
// (oldest first), which then shift by one.
template <typename A, int ORDER, int DC>
SP_HD A step_fwd(A (&x)[ORDER][DC], const A (&next)[DC], A w) {
  A sq = 0;
  SP_UNROLL(DC)
  for (int k = 0; k < DC; ++k) {
    const A d = stencil<ORDER>(x[0][k], ORDER == 1 ? next[k] : x[ORDER - 1][k], next[k]);
    sq += d * d;
  }
  SP_UNROLL(DC)
  for (int k = 0; k < DC; ++k) {
    if (ORDER == 2) x[0][k] = x[ORDER - 1][k];
    x[ORDER - 1][k] = next[k];
  }
  return w * sq;
}

// Terms of steps [s0, s1) of one column (col: its frame 0; out: its term 0, STORE only), weighted
// by w; returns their sum, added in step order. DC = D known at compile time: the last ORDER
// frames live in registers, and whole groups of kAheadFwd frames are loaded (no bounds checks)
// before the first of them is used; the last partial group goes one frame at a time.
template <typename T, int ORDER, int DC, bool STORE>
SP_HD double chunk_fwd(const T* __restrict__ col, T* __restrict__ out, int64_t frame,
                       int64_t M, acc_t<T> w, int64_t s0, int64_t s1) {
  using A = acc_t<T>;
  A x[ORDER][DC];  // frames s .. s + ORDER - 1, oldest first
  SP_UNROLL(ORDER)
  for (int f = 0; f < ORDER; ++f) {
    SP_UNROLL(DC)
    for (int k = 0; k < DC; ++k) x[f][k] = to_acc(col[(s0 + f) * frame + k]);
  }
  double sum = 0.0;
  int64_t s = s0;
  for (; s + kAheadFwd <= s1; s += kAheadFwd) {
    A next[kAheadFwd][DC];  // frames s + u + ORDER
    SP_UNROLL(kAheadFwd)
    for (int u = 0; u < kAheadFwd; ++u) {
      SP_UNROLL(DC)
      for (int k = 0; k < DC; ++k) next[u][k] = to_acc(col[(s + u + ORDER) * frame + k]);
    }
    loads_issued();
    SP_UNROLL(kAheadFwd)
    for (int u = 0; u < kAheadFwd; ++u) {
      const A term = step_fwd<A, ORDER, DC>(x, next[u], w);
      if (STORE) out[(s + u) * M] = from_acc<T>(term);
      sum += static_cast<double>(term);
    }
  }
  for (; s < s1; ++s) {
    A next[DC];
    SP_UNROLL(DC)
    for (int k = 0; k < DC; ++k) next[k] = to_acc(col[(s + ORDER) * frame + k]);
    const A term = step_fwd<A, ORDER, DC>(x, next, w);
    if (STORE) out[s * M] = from_acc<T>(term);
    sum += static_cast<double>(term);
  }
  return sum;
}

// The same for any D: the previous frames are re-read (from cache) at every step.
template <typename T, int ORDER, bool STORE>
SP_HD double chunk_fwd_any_d(const T* __restrict__ col, T* __restrict__ out, int64_t frame,
                             int64_t M, int64_t D, acc_t<T> w, int64_t s0, int64_t s1) {
  using A = acc_t<T>;
  double sum = 0.0;
  for (int64_t s = s0; s < s1; ++s) {
    const T* first = col + s * frame;
    A sq = 0;
    for (int64_t k = 0; k < D; ++k) {
      const A x0 = to_acc(first[k]), x1 = to_acc(first[frame + k]);
      const A d = stencil<ORDER>(x0, x1, ORDER == 2 ? to_acc(first[2 * frame + k]) : A(0));
      sq += d * d;
    }
    const A term = w * sq;
    if (STORE) out[s * M] = from_acc<T>(term);
    sum += static_cast<double>(term);
  }
  return sum;
}

// Item it = chunk * columns + (b * M + i) of the forward. Sums: (weighted terms, weights); a
// column's weight is counted by its first chunk only.
template <typename T, int ORDER, int DC, bool STORE>
struct FwdItems {
  static constexpr int kMinBlocks = min_blocks<T>();
  Data<T> a;
  T* terms;       // [batch, steps, M], STORE only
  int64_t chunk;  // steps per chunk

  SP_HD int64_t columns() const { return a.batch * a.M; }
  SP_HD int64_t count() const { return columns() * ceil_div64(a.steps, chunk); }
  SP_HD void operator()(int64_t it, Sums<kSpatioTemporalSums>& s) const {
    int64_t column, i;
    const int64_t c = div_rem(it, columns(), &column);
    const int64_t b = div_rem(column, a.M, &i);
    const acc_t<T> w = a.weight.at(b, i);
    const int64_t s0 = c * chunk, s1 = s0 + chunk < a.steps ? s0 + chunk : a.steps;
    const T* col = a.positions + b * a.frames * a.frame() + i * a.D;
    T* out = STORE ? terms + b * a.steps * a.M + i : nullptr;
    if constexpr (DC > 0)
      s.v[0] += chunk_fwd<T, ORDER, DC, STORE>(col, out, a.frame(), a.M, w, s0, s1);
    else
      s.v[0] += chunk_fwd_any_d<T, ORDER, STORE>(col, out, a.frame(), a.M, a.D, w, s0, s1);
    if (c == 0) s.v[1] += static_cast<double>(w);
  }
};

// The backward walk's state at frame t: the frames t .. t + ORDER - 1 and the terms starting at
// t - ORDER .. t - 1 (value and coefficient), oldest first.
template <typename A, int ORDER>
struct BwdState {
  A x[ORDER];
  A av[ORDER], cv[ORDER];

  // The gradient of frame s, given frame s + ORDER (next) and the incoming gradient of the term
  // starting at s (gn; both unused when s >= steps); the state then moves to frame s + 1.
  //   order 1: g[s] = c_{s-1} D_{s-1} - c_s D_s;
  //   order 2: g[s] = c_{s-2} a_{s-2} - 2 c_{s-1} a_{s-1} + c_s a_s  (terms outside [0, steps)
  //            drop).
  SP_HD A step(int64_t s, int64_t steps, A next, A gn, A w2) {
    A v = 0, a0 = 0, c0 = 0;
    if constexpr (ORDER == 1) {
      if (s >= 1) v += cv[0] * av[0];
      if (s < steps) {
        a0 = next - x[0];
        c0 = w2 * gn;
        v -= c0 * a0;
      }
    } else {
      if (s >= 2) v += cv[0] * av[0];
      if (s >= 1 && s - 1 < steps) v -= A(2) * cv[1] * av[1];
      if (s < steps) {
        a0 = stencil<2>(x[0], x[1], next);
        c0 = w2 * gn;
        v += c0 * a0;
      }
    }
    SP_UNROLL(ORDER)
    for (int f = 0; f + 1 < ORDER; ++f) {
      av[f] = av[f + 1];
      cv[f] = cv[f + 1];
      x[f] = x[f + 1];
    }
    av[ORDER - 1] = a0;
    cv[ORDER - 1] = c0;
    x[ORDER - 1] = next;
    return v;
  }
};

// Gradient frames [t0, t1) of one coordinate column (col, g: its frame 0). c_s = 2 w g_s with
// g_s the incoming gradient of the term starting at frame s (gterm: the column's term 0). The
// walk starts ORDER frames early, without storing, to rebuild the previous terms; each element's
// arithmetic is then the same as in one walk over the whole column. Whole groups of kAheadBwd
// frames (and their terms' gradients) are loaded before the first is used.
template <typename T, int ORDER>
SP_HD void chunk_bwd(const T* __restrict__ col, T* __restrict__ g, const TermGrad<T>& gt,
                     int64_t gterm, int64_t frame, int64_t M, int64_t steps, acc_t<T> w2,
                     int64_t t0, int64_t t1) {
  using A = acc_t<T>;
  const int64_t start = t0 > ORDER ? t0 - ORDER : 0;
  BwdState<A, ORDER> st{};
  SP_UNROLL(ORDER)
  for (int f = 0; f < ORDER; ++f) st.x[f] = to_acc(col[(start + f) * frame]);  // T > ORDER
  const int64_t full = t1 < steps ? t1 : steps;  // frames below have a term: no bounds checks
  int64_t t = start;
  for (; t + kAheadBwd <= full; t += kAheadBwd) {
    A next[kAheadBwd], gn[kAheadBwd];
    SP_UNROLL(kAheadBwd)
    for (int u = 0; u < kAheadBwd; ++u) {
      next[u] = to_acc(col[(t + u + ORDER) * frame]);
      gn[u] = gt.at(gterm + (t + u) * M);
    }
    loads_issued();
    SP_UNROLL(kAheadBwd)
    for (int u = 0; u < kAheadBwd; ++u) {
      const A v = st.step(t + u, steps, next[u], gn[u], w2);
      if (t + u >= t0) g[(t + u) * frame] = from_acc<T>(v);
    }
  }
  for (; t < t1; ++t) {
    const bool term = t < steps;
    const A next = term ? to_acc(col[(t + ORDER) * frame]) : A(0);
    const A v = st.step(t, steps, next, term ? gt.at(gterm + t * M) : A(0), w2);
    if (t >= t0) g[t * frame] = from_acc<T>(v);
  }
}

// Item it = chunk * columns + ((b * M + i) * D + d) of the backward.
template <typename T, int ORDER>
struct BwdItems {
  static constexpr int kMinBlocks = min_blocks<T>();
  Data<T> a;
  Reduce reduction;
  const T* grad;  // [batch, steps, M] (none) or 1 element
  const double* denom;
  T* grad_out;    // [batch, T, M, D]
  int64_t chunk;  // frames per chunk

  SP_HD int64_t columns() const { return a.batch * a.frame(); }
  SP_HD int64_t count() const { return columns() * ceil_div64(a.frames, chunk); }
  // Read once per thread, on the device (no host sync).
  SP_HD TermGrad<T> context() const { return term_grad(reduction, grad, denom); }
  SP_HD void operator()(int64_t it, const TermGrad<T>& g) const {
    int64_t column, rest, d;
    const int64_t c = div_rem(it, columns(), &column);
    const int64_t b = div_rem(column, a.frame(), &rest), i = div_rem(rest, a.D, &d);
    const int64_t offset = b * a.frames * a.frame() + i * a.D + d;
    const int64_t t0 = c * chunk, t1 = t0 + chunk < a.frames ? t0 + chunk : a.frames;
    chunk_bwd<T, ORDER>(a.positions + offset, grad_out + offset, g, b * a.steps * a.M + i,
                        a.frame(), a.M, a.steps, acc_t<T>(2) * a.weight.at(b, i), t0, t1);
  }
};

template <typename T, int ORDER, int DC, typename Exec>
void fwd_for(const Exec& exec, const SpatioTemporalProblem& p, T* terms, double* scratch,
             int64_t blocks, const WeightedFinish<T>& finish, int64_t chunk) {
  if (terms)
    exec.template reduce<kSpatioTemporalSums>(
        FwdItems<T, ORDER, DC, true>{data<T>(p), terms, chunk}, blocks, scratch, finish);
  else
    exec.template reduce<kSpatioTemporalSums>(
        FwdItems<T, ORDER, DC, false>{data<T>(p), nullptr, chunk}, blocks, scratch, finish);
}

template <typename T, int ORDER, typename Exec>
void fwd_for_d(const Exec& exec, const SpatioTemporalProblem& p, T* terms, double* scratch,
               int64_t blocks, const WeightedFinish<T>& finish, int64_t chunk) {
  if (p.D == 3) fwd_for<T, ORDER, 3>(exec, p, terms, scratch, blocks, finish, chunk);
  else if (p.D == 2) fwd_for<T, ORDER, 2>(exec, p, terms, scratch, blocks, finish, chunk);
  else fwd_for<T, ORDER, 0>(exec, p, terms, scratch, blocks, finish, chunk);
}

// chunk: steps per chunk; the launch plan's when 0 (the tests try others).
template <typename Exec>
cudaError_t fwd(const Exec& exec, const SpatioTemporalProblem& p, Reduce reduction, void* out,
                double* denom, double* scratch, int64_t blocks, int64_t chunk = 0) {
  if (chunk <= 0) chunk = spatiotemporal_fwd_chunk(p);
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const bool none = reduction == Reduce::kNone;
    T* terms = none ? static_cast<T*>(out) : nullptr;
    // denom = steps * (the Gaussians' weight total over the batch, or batch * M).
    const WeightedFinish<T> finish{none ? nullptr : static_cast<T*>(out), denom, reduction,
                                   p.weight != nullptr, static_cast<double>(p.steps),
                                   static_cast<double>(p.batch * p.M)};
    if (p.order == 1) fwd_for_d<T, 1>(exec, p, terms, scratch, blocks, finish, chunk);
    else fwd_for_d<T, 2>(exec, p, terms, scratch, blocks, finish, chunk);
    return exec.status();
  });
}

// chunk: frames per chunk; the launch plan's when 0 (the tests try others).
template <typename Exec>
cudaError_t bwd(const Exec& exec, const SpatioTemporalProblem& p, Reduce reduction,
                const void* grad, const double* denom, void* grad_positions, int64_t chunk = 0) {
  if (chunk <= 0) chunk = spatiotemporal_bwd_chunk(p);
  return dispatch_dtype(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* g = static_cast<const T*>(grad);
    T* out = static_cast<T*>(grad_positions);
    if (p.order == 1) exec.for_each(BwdItems<T, 1>{data<T>(p), reduction, g, denom, out, chunk});
    else exec.for_each(BwdItems<T, 2>{data<T>(p), reduction, g, denom, out, chunk});
    return exec.status();
  });
}

}  // namespace scl
}  // namespace cuda
}  // namespace sirenpose
