#!/usr/bin/env bash
# The first-run check on a machine with an NVIDIA GPU, one command:
#     bash tools/gpu_check.sh OUT_DIR
# builds the extension for this GPU only, runs tests/test_cuda.py, compute-sanitizer (memcheck,
# then racecheck) over a small selection, and the GPU benchmarks against eager PyTorch and
# torch.compile, then writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md (logs beside them).
# Needs no network: the python on PATH (or $PYTHON) must already have a CUDA build of torch,
# pytest and hypothesis. Exit status: 0 all passed; 1 a step failed; 2 every step passed but a
# performance target was missed. Without a GPU it says so in one line and exits 0.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -eq 1 ] || { echo "usage: bash tools/gpu_check.sh OUT_DIR" >&2; exit 64; }
py="${PYTHON:-python3}"

gpu_listed=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  gpu_listed=1
fi
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  if [ "$gpu_listed" = 1 ]; then
    echo "gpu_check: FAIL nvidia-smi lists a GPU but $py cannot use it (no CUDA build of torch?)"
    exit 1
  fi
  echo "gpu_check: no CUDA GPU on this machine; nothing was run"
  exit 0
fi
exec "$py" "$root/tools/gpu_check.py" "$1"
