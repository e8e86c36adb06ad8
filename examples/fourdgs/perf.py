"""CPU allocator tuning for the example trainers.

Every training step allocates tensors whose sizes change from step to step (the number of
Gaussian-pixel pairs varies), and glibc serves allocations above ~128 KiB with fresh ``mmap``
pages that are returned on free; on some machines (VMs, sandboxes) the page faults then cost
more than the arithmetic (we measured a 10x slower renderer). Raising glibc's mmap and trim
thresholds keeps freed memory in the heap for reuse. Harmless elsewhere; a no-op off glibc.
"""
import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tune_cpu_allocator() -> bool:
    """Call once, early. Returns True when glibc accepted both settings."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1 and ok
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
