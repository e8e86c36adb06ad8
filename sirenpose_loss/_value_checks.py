"""Value checks of CUDA tensors (negative weights) read the data, which costs a host sync. They
run once per tensor and the answer is cached, so a weight tensor passed on every step is
checked on its first use only; the CPU path is unchanged (its kernels check in their own pass).
"""
import weakref

import torch


def tracing() -> bool:
    """True while torch.compile traces or a CUDA graph is being captured: no host syncs then."""
    if torch.compiler.is_compiling():
        return True
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


# key -> weak reference to the tensor that passed; the identity check on a hit guards against a
# new tensor that reuses a freed tensor's memory (and starts again at version 0).
_PASSED: "dict" = {}
_PASSED_SIZE = 64


def check_once(t: torch.Tensor, check) -> None:
    """Run ``check(t)`` (which raises on bad values) unless ``t`` passed it before, unchanged.

    Skipped while tracing or capturing (no sync is allowed there; the kernels never read out of
    bounds whatever the weights). In-place edits bump the version counter and re-check. A new
    tensor on every call (e.g. ``mask.float()`` per step) is checked on every call: pass the
    same weight tensor to keep the check free.
    """
    if tracing():
        return
    if t.is_inference():  # no version counter: an in-place edit would go unseen
        check(t)
        return
    key = (t.data_ptr(), t._version, t.device, tuple(t.shape), t.stride(), t.dtype)
    ref = _PASSED.get(key)
    if ref is not None and ref() is t:
        return
    check(t)
    if len(_PASSED) >= _PASSED_SIZE:
        _PASSED.pop(next(iter(_PASSED)))
    _PASSED[key] = weakref.ref(t)
