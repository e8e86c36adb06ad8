#!/usr/bin/env bash
# One-time (and idempotent) set-up: virtual environment, torch, dependencies, our extension.
# Sourced by scripts/demo.sh and scripts/test.sh, so either of them works on a fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
VPY="$ROOT/.venv/bin/python"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
if ! "$VPY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  echo "[setup] installing torch==$TORCH_VERSION"
  "$VPY" -m pip install -q "torch==$TORCH_VERSION"
fi
echo "[setup] installing dependencies (requirements-dev.txt)"
"$VPY" -m pip install -q -r requirements-dev.txt
if "$VPY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "[setup] torch sees a CUDA GPU: installing the examples' GPU renderer (requirements-gpu.txt)"
  "$VPY" -m pip install -q -r requirements-gpu.txt
fi
echo "[setup] building the C++ extension (pip install --no-build-isolation -e .)"
MAX_JOBS="${MAX_JOBS:-2}" "$VPY" -m pip install -q --no-build-isolation -e .
"$VPY" -c "
import sys, sirenpose_loss as s
print('[setup] sirenpose_loss', s.__version__, 'backend:', s.backend())
sys.exit(0 if s.backend() == 'compiled' else 'the compiled kernels do not load: see the warning above')"
