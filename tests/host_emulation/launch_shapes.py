"""Prints the SCL kernels' launch plan for the shapes docs/cuda.md discusses (a Markdown table).

    python tests/host_emulation/launch_shapes.py

Uses the same plan functions as the kernels (spatiotemporal_consistency_cuda.h), through the
host-emulation library (built on first use, see loader.py).
"""
import ctypes
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from host_emulation import loader  # noqa: E402

KEYS = ("fwd_chunk", "fwd_items", "fwd_blocks", "bwd_chunk", "bwd_items", "bwd_blocks")
SHAPES = [(1, 10**4, 300, 3), (1, 10**6, 32, 3), (64, 1000, 300, 3), (1, 17, 3, 3)]


def main():
    lib = loader.load()
    print("| (B, M, T), D = 3, order | fwd chunk | fwd items | fwd blocks | bwd chunk | "
          "bwd items | bwd blocks |")
    print("|---|---|---|---|---|---|---|")
    for batch, M, T, D in SHAPES:
        for order in (1, 2):
            out = (ctypes.c_int64 * len(KEYS))()
            lib.emu_scl_plan(batch, T, M, D, order, out)
            print(f"| ({batch}, {M}, {T}), {order} | " + " | ".join(f"{v:,}" for v in out) + " |")


if __name__ == "__main__":
    main()
