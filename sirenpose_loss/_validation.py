"""Input checks shared by every loss. Messages name the argument, what was expected and what
was given. Only shape/dtype/device checks happen here (they are free under torch.compile);
value checks that read the data (negative weights, edge indices out of range) are done by the
CPU kernels in the same pass as the loss, and once per graph/weight tensor on CUDA. Plain
numbers are checked here in eager mode and by the kernels under torch.compile."""
import math
from typing import Optional

import torch

from ._backend import COMPILED
from ._ops import REDUCTION_CODES
from ._value_checks import check_once


def reduction_code(reduction) -> int:
    code = REDUCTION_CODES.get(reduction) if isinstance(reduction, str) else None
    if code is None:
        raise ValueError(f"reduction must be one of 'none', 'mean' or 'sum', got {reduction!r}")
    return code


def check_points(t, name: str, layout: str, min_dim: int) -> None:
    """t must be a floating tensor of at least min_dim dims with a non-empty coordinate axis."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dim() < min_dim:
        raise ValueError(f"{name} must have shape {layout} (at least {min_dim} dims), "
                         f"got shape {list(t.shape)}")
    if t.shape[-1] < 1:
        raise ValueError(f"{name} must have a coordinate dimension D >= 1 (shape {layout}), "
                         f"got shape {list(t.shape)}")


def check_pair(pred: torch.Tensor, target: torch.Tensor, layout: str,
               names=("pred", "target")) -> None:
    """Two point tensors of one shape, dtype and device; ``names`` are the caller's own."""
    p, t = names
    check_points(pred, p, layout, 2)
    check_points(target, t, layout, 2)
    if pred.shape != target.shape:
        raise ValueError(f"{p} and {t} must have the same shape {layout}, got "
                         f"{list(pred.shape)} and {list(target.shape)}")
    if pred.dtype != target.dtype:
        raise TypeError(f"{p} and {t} must have the same dtype, got {pred.dtype} and {target.dtype}")
    if pred.device != target.device:
        raise ValueError(f"{p} and {t} must be on the same device, got {pred.device} and "
                         f"{target.device}")


def check_weight(weight: Optional[torch.Tensor], name: str, rows_shape, rows_layout: str,
                 like: torch.Tensor) -> Optional[torch.Tensor]:
    """A per-row weight of shape rows_shape ([..., R]) or [R] (shared by the batch).

    Returns it in like's dtype; bool masks are accepted and turned into 0/1 weights.
    """
    if weight is None:
        return None
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {rows_layout} or None, "
                        f"got {type(weight).__name__}")
    if weight.requires_grad:
        raise ValueError(f"{name} is a constant of the loss and must not require grad (no "
                         f"gradient flows to it), got a tensor that requires grad; pass "
                         f"{name}.detach()")
    if not (weight.is_floating_point() or weight.dtype == torch.bool):
        raise TypeError(f"{name} must be a floating-point or bool tensor, got dtype {weight.dtype}")
    if weight.device != like.device:
        raise ValueError(f"{name} must be on the same device as the points ({like.device}), "
                         f"got {weight.device}")
    rows_shape = tuple(rows_shape)
    if tuple(weight.shape) != rows_shape and tuple(weight.shape) != rows_shape[-1:]:
        raise ValueError(f"{name} must have shape {rows_layout} = {list(rows_shape)} or "
                         f"[{rows_shape[-1]}], got {list(weight.shape)}")
    if weight.is_cuda and weight.dtype != torch.bool:
        # On CUDA no kernel checks values (that would sync every call): once per tensor, cached.
        check_once(weight, lambda w: check_nonnegative(w, name))
    return weight.to(like.dtype)


def check_nonnegative(weight: Optional[torch.Tensor], name: str) -> None:
    """Value check for paths without a kernel that checks (the reference fallback)."""
    if weight is not None and weight.numel() and bool((weight < 0).any()):
        raise ValueError(f"{name} must be non-negative, got a minimum of {float(weight.min())}")


def call_naming(op, args, kernel_name: str, caller_name: str):
    """``op(*args)``, with a kernel's value error about its argument ``kernel_name`` re-raised
    under the caller's own name (a loss that passes its ``keypoint_weight`` as the kernel's
    ``weight``). Under torch.compile the kernel's own message goes through unchanged."""
    if caller_name == kernel_name or torch.compiler.is_compiling():
        return op(*args)
    try:
        return op(*args)
    except ValueError as err:
        message = str(err)
        if not message.startswith(kernel_name + " "):
            raise
        raise ValueError(caller_name + message[len(kernel_name):]) from None


def check_edge_index(edge_index, num_nodes: int, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(edge_index, torch.Tensor):
        raise TypeError(f"edge_index must be a torch.Tensor of shape [2, E] or a KeypointGraph, "
                        f"got {type(edge_index).__name__}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"edge_index must be an int64 (or int32) tensor, got dtype {edge_index.dtype}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
    if edge_index.device != like.device:
        raise ValueError(f"edge_index must be on the same device as pred ({like.device}), "
                         f"got {edge_index.device}")
    return edge_index


def check_edge_range(edge_index: torch.Tensor, num_nodes: int) -> None:
    """Value check for paths without a kernel that checks (the reference fallback)."""
    if edge_index.numel() and (bool((edge_index < 0).any()) or bool((edge_index >= num_nodes).any())):
        raise IndexError(f"edge_index values must be in [0, {num_nodes}) (K = {num_nodes} keypoints), "
                         f"got values in [{int(edge_index.min())}, {int(edge_index.max())}]")


# Device types whose forward kernels check the plain numbers they receive (omega0, lambda_geo,
# order) with the messages below (csrc/common/checks.h).
NUMBER_CHECKING_DEVICES = ("cpu", "cuda")


def _left_to_kernels(device) -> bool:
    # Under torch.compile a raise here would stop the trace (fullgraph=True reports it as an
    # unsupported construct, not as this ValueError), and a float argument may be symbolic.
    # For a number that goes to kernels that check it, those checks raise the same ValueError
    # when the compiled graph runs, so the check is moved, never skipped.
    return (device is not None and device.type in NUMBER_CHECKING_DEVICES and COMPILED
            and torch.compiler.is_compiling())


def check_positive_number(value, name: str, *, device=None):
    """A positive finite int or float, returned as a float. ``device``: where the kernels that
    receive the value run, when they check it too (then they do so under torch.compile)."""
    if _left_to_kernels(device):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_nonnegative_number(value, name: str, *, device=None):
    """A non-negative finite int or float, returned as a float (``device`` as above)."""
    if _left_to_kernels(device):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)


def check_order(order, *, device=None) -> int:
    """The finite-difference order of the spatio-temporal consistency loss: 1 or 2."""
    is_int = isinstance(order, int) and not isinstance(order, bool)
    if is_int and _left_to_kernels(device):
        return order
    if not is_int or order not in (1, 2):
        raise ValueError(f"order must be 1 (velocity) or 2 (acceleration), got {order!r}")
    return order
