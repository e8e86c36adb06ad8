"""Handles on the compiled ops and their fake (meta) kernels, so torch.compile can trace them."""
import torch

from ._backend import COMPILED

if COMPILED:
    # The codes the kernels use, read from the library (defined in csrc/common/reduction.h).
    from ._C import REDUCTION_MEAN as MEAN, REDUCTION_NONE as NONE, REDUCTION_SUM as SUM
else:
    # No kernels to agree with: the reference path only compares codes among themselves.
    NONE, MEAN, SUM = range(3)
REDUCTION_CODES = {"none": NONE, "mean": MEAN, "sum": SUM}

if COMPILED:
    _ns = torch.ops.sirenpose_loss
    # Differentiable losses (C++ autograd): what the functional API calls.
    keypoint_match = _ns.keypoint_match.default
    spatiotemporal_consistency = _ns.spatiotemporal_consistency.default
    sirenpose = _ns.sirenpose.default
    # The fused kernels beneath them.
    keypoint_match_fwd = _ns.keypoint_match_fwd.default
    keypoint_match_bwd = _ns.keypoint_match_bwd.default
    spatiotemporal_consistency_fwd = _ns.spatiotemporal_consistency_fwd.default
    spatiotemporal_consistency_bwd = _ns.spatiotemporal_consistency_bwd.default
    sirenpose_fwd = _ns.sirenpose_fwd.default
    sirenpose_bwd = _ns.sirenpose_bwd.default

    def _denom(like, n=()):
        return like.new_empty(n, dtype=torch.float64)

    def _maybe_grad(like, wanted):
        return like.new_empty(like.shape) if wanted else like.new_empty((0,))

    @torch.library.register_fake("sirenpose_loss::keypoint_match_fwd")
    def _keypoint_match_fwd_fake(pred, target, weight, reduction):
        shape = pred.shape[:-1] if reduction == NONE else ()
        return pred.new_empty(shape), _denom(pred)

    @torch.library.register_fake("sirenpose_loss::keypoint_match_bwd")
    def _keypoint_match_bwd_fake(grad, pred, target, weight, denom, reduction, output_mask):
        return _maybe_grad(pred, output_mask[0]), _maybe_grad(target, output_mask[1])

    @torch.library.register_fake("sirenpose_loss::spatiotemporal_consistency_fwd")
    def _scl_fwd_fake(positions, weight, order, reduction):
        if reduction == NONE:
            t = positions.shape[-3]
            steps = t - order if t > order else 0
            shape = (*positions.shape[:-3], steps, positions.shape[-2])
        else:
            shape = ()
        return positions.new_empty(shape), _denom(positions)

    @torch.library.register_fake("sirenpose_loss::spatiotemporal_consistency_bwd")
    def _scl_bwd_fake(grad, positions, weight, denom, order, reduction):
        return positions.new_empty(positions.shape)

    @torch.library.register_fake("sirenpose_loss::sirenpose_fwd")
    def _sirenpose_fwd_fake(pred, target, edge_index, weight, edge_weight, omega0, lambda_geo,
                            with_pos, reduction):
        if reduction == NONE:
            pos = pred.new_empty(pred.shape[:-1] if with_pos else (0,))
            geo = pred.new_empty((*pred.shape[:-2], edge_index.shape[1]))
            return pred.new_empty((0,)), pos, geo, _denom(pred, (2,))
        return pred.new_empty(()), pred.new_empty(()), pred.new_empty(()), _denom(pred, (2,))

    @torch.library.register_fake("sirenpose_loss::sirenpose_bwd")
    def _sirenpose_bwd_fake(grad_pos, grad_geo, pred, target, edge_index, weight, edge_weight,
                            denom, incidence_ptr, incidence_slot, omega0, lambda_geo, with_pos,
                            reduction, output_mask):
        return _maybe_grad(pred, output_mask[0]), _maybe_grad(target, output_mask[1])
