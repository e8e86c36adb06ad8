"""The benchmarks' correctness gate alone, at small sizes: no timing, a few seconds.

    python benchmarks/gate.py [--size tiny|quick|full] [--dtypes float32 float64]

Every case of every bench_<loss>.py sweep (plain, weighted, order 2, reduction "none") is run
through `ours` in each dtype and compared with the reference in float64 on the same values
(harness.compare_to_reference; the bound, 16 * omega0 * unit roundoff, is derived in
harness.tolerance). Prints one row per (case, dtype) and exits with status 1 on any mismatch,
and when the compiled kernels did not load (unless --allow-reference).
"""
import argparse
import os
import sys
from typing import Iterable, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import bench_arap  # noqa: E402
import bench_keypoint_match  # noqa: E402
import bench_rigidity  # noqa: E402
import bench_sirenpose  # noqa: E402
import bench_spatiotemporal_consistency  # noqa: E402
import harness  # noqa: E402

SWEEPS = (bench_spatiotemporal_consistency, bench_keypoint_match, bench_sirenpose, bench_rigidity,
          bench_arap)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _cast(args: tuple, kwargs: dict, dtype: torch.dtype):
    def conv(v):
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return v.detach().to(dtype).requires_grad_(v.requires_grad)
        return v
    return tuple(conv(v) for v in args), {k: conv(v) for k, v in kwargs.items()}


def check(size: str = "tiny", dtypes: Iterable[torch.dtype] = DTYPES.values()) -> List[dict]:
    """One row per (case, dtype): label, dtype, errors, bound, ok."""
    rows = []
    device = torch.device("cpu")
    for sweep in SWEEPS:
        for case in sweep.cases(size):
            built = case.build(device)
            for dtype in dtypes:
                args, kwargs = _cast(*built, dtype)
                grads = harness._grad_leaves(args, kwargs)
                res = harness.compare_to_reference(case.ours, case.reference, args, kwargs, grads)
                rows.append(dict(res, label=f"{sweep.__name__[len('bench_'):]}: {case.label}"))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny", choices=["tiny", "quick", "full"])
    p.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    p.add_argument("--allow-reference", action="store_true",
                   help="run even when the compiled kernels did not load (ours is then the reference)")
    args = p.parse_args(argv)
    backend = harness.sirenpose_loss.backend()
    if backend != "compiled" and not args.allow_reference:
        print(f"gate: sirenpose_loss.backend() is {backend!r}, so ours would be compared with itself; "
              "build the extension, or pass --allow-reference", file=sys.stderr)
        return 1
    rows = check(args.size, [DTYPES[d] for d in args.dtypes])
    print(f"backend {backend}; error = max |ours - ref| / max |ref| "
          "(loss / worst gradient) against the float64 reference")
    for r in rows:
        print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['dtype']:<14} {r['rel_err_loss']:.1e} / "
              f"{r['rel_err_grad']:.1e} (bound {r['tol']:.1e})  {r['label']}")
    bad = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(bad)} of {len(rows)} checks within the bound")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
