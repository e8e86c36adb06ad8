// One op namespace for every kernel: schemas here, CPU kernels in csrc/<loss>/<loss>_cpu.cpp,
// CUDA kernels in csrc/<loss>/<loss>_kernels.cu with their ATen glue in <loss>_cuda.cpp.
// Autograd lives in csrc/autograd.cpp; fake (meta) kernels in sirenpose_loss/_ops.py.
#include <Python.h>
#include <torch/library.h>

#include "common/launch_cuda.h"
#include "common/reduction.h"

// csrc/common/reduction.h is the one definition of the reduction codes; the CUDA launchers'
// copy (a plain-C++ header, no torch) must agree, and Python reads them from this module.
static_assert(static_cast<int>(sirenpose::cuda::Reduce::kNone) == sirenpose::kNone &&
                  static_cast<int>(sirenpose::cuda::Reduce::kMean) == sirenpose::kMean &&
                  static_cast<int>(sirenpose::cuda::Reduce::kSum) == sirenpose::kSum,
              "cuda::Reduce in common/launch_cuda.h must use the codes of common/reduction.h");

// Importing sirenpose_loss._C loads this library and runs the static registrations below. The
// module itself exports only the reduction codes (REDUCTION_NONE, _MEAN, _SUM).
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  PyObject* module = PyModule_Create(&module_def);
  if (module == nullptr) return nullptr;
  if (PyModule_AddIntConstant(module, "REDUCTION_NONE", sirenpose::kNone) < 0 ||
      PyModule_AddIntConstant(module, "REDUCTION_MEAN", sirenpose::kMean) < 0 ||
      PyModule_AddIntConstant(module, "REDUCTION_SUM", sirenpose::kSum) < 0) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}

TORCH_LIBRARY(sirenpose_loss, m) {
  // The differentiable losses (autograd in csrc/autograd.cpp). They return what the fused
  // forward op computes and save what its backward op needs.
  m.def("keypoint_match(Tensor pred, Tensor target, Tensor? weight, int reduction) -> Tensor");
  m.def("spatiotemporal_consistency(Tensor positions, Tensor? weight, int order, int reduction)"
        " -> Tensor");
  m.def("sirenpose(Tensor pred, Tensor target, Tensor edge_index, Tensor? weight,"
        " Tensor? edge_weight, Tensor? incidence_ptr, Tensor? incidence_slot, float omega0,"
        " float lambda_geo, bool with_pos, int reduction) -> (Tensor loss, Tensor pos, Tensor geo)");

  // The fused kernels.
  // reduction: a code of common/reduction.h (none, mean, sum). denom: float64 total weight (or term count) of the mean.
  m.def("keypoint_match_fwd(Tensor pred, Tensor target, Tensor? weight, int reduction)"
        " -> (Tensor loss, Tensor denom)");
  m.def("keypoint_match_bwd(Tensor grad, Tensor pred, Tensor target, Tensor? weight,"
        " Tensor denom, int reduction, bool[2] output_mask) -> (Tensor grad_pred, Tensor grad_target)");
  m.def("spatiotemporal_consistency_fwd(Tensor positions, Tensor? weight, int order, int reduction)"
        " -> (Tensor loss, Tensor denom)");
  m.def("spatiotemporal_consistency_bwd(Tensor grad, Tensor positions, Tensor? weight, Tensor denom,"
        " int order, int reduction) -> Tensor");
  // with_pos=False gives the sine graph term alone. loss = pos + lambda_geo * geo (mean/sum);
  // pos/geo are the reduced components (mean/sum) or per-term values (none, loss is empty).
  // denom: float64 [2] = (sum of keypoint weights, sum of edge weights).
  m.def("sirenpose_fwd(Tensor pred, Tensor target, Tensor edge_index, Tensor? weight,"
        " Tensor? edge_weight, float omega0, float lambda_geo, bool with_pos, int reduction)"
        " -> (Tensor loss, Tensor pos, Tensor geo, Tensor denom)");
  // grad_pos/grad_geo: the incoming gradient of each component ([] for mean/sum, per-term for
  // none); the geo part is scaled by lambda_geo. incidence_ptr/incidence_slot: the per-node
  // incidence (CSR) of the graph, used by the deterministic CUDA gather; ignored on CPU.
  m.def("sirenpose_bwd(Tensor grad_pos, Tensor grad_geo, Tensor pred, Tensor target,"
        " Tensor edge_index, Tensor? weight, Tensor? edge_weight, Tensor denom,"
        " Tensor? incidence_ptr, Tensor? incidence_slot, float omega0, float lambda_geo,"
        " bool with_pos, int reduction, bool[2] output_mask) -> (Tensor grad_pred, Tensor grad_target)");
}
