// What the neighbour-graph kernels share (host+device code): the edges and the packed per-node
// lists of sirenpose_loss._graph_ops.graph_incidence, and the type of their scratch.
#pragma once

#include <cstdint>
#include <type_traits>

namespace sirenpose {
namespace cuda {

// Per-edge factors and other scratch: double for float64, float otherwise.
template <typename T>
using fac_t = typename std::conditional<std::is_same<T, double>::value, double, float>::type;

struct GraphLists {
  const int64_t* src;  // edge_index[0], the neighbour j
  const int64_t* dst;  // edge_index[1], the centre i
  const int64_t *in_ptr, *in_edge, *in_other, *out_ptr, *out_other, *out_pos;
};

// edges: [2, E]; incidence: in_ptr [M+1], in_edge [E], in_other [E], out_ptr [M+1],
// out_other [E], out_pos [E].
inline GraphLists graph_lists(const int64_t* edges, const int64_t* incidence, int64_t M,
                              int64_t E) {
  const int64_t* in_edge = incidence + M + 1;
  const int64_t* in_other = in_edge + E;
  const int64_t* out_ptr = in_other + E;
  const int64_t* out_other = out_ptr + M + 1;
  return {edges, edges + E, incidence, in_edge, in_other, out_ptr, out_other, out_other + E};
}

}  // namespace cuda
}  // namespace sirenpose
