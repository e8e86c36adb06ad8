#!/usr/bin/env bash
# Builds the real CUDA extension without a GPU and checks what it registers:
#   1. a virtual environment OUTSIDE the clone (reused when present, built from nothing when
#      not) with a CUDA build of torch whose CUDA version must equal the installed nvcc's;
#   2. a wheel of a temporary copy of the working tree, built as a user would
#      (FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="8.0;9.0" pip wheel --no-build-isolation), so the
#      clone's own (CPU) build and the shared environment are never touched;
#   3. the unpacked wheel imported from an empty folder: it must link the CUDA libraries of
#      torch, cuda_kernels_built() must be true, and every op of the sirenpose_loss namespace
#      (discovered from the dispatcher, not listed here) must have a CUDA kernel.
# Exits non-zero on any failure, and when nvcc is missing unless SIRENPOSE_SKIP_CUDA_CHECK=1.
#
# Settings (environment): SIRENPOSE_CUDA_VENV (default ${XDG_CACHE_HOME:-~/.cache}/sirenpose-cuda-venv),
# SIRENPOSE_CUDA_TORCH (default 2.12.0, built for CUDA 13.0), PYTHON (creates the venv; python3),
# MAX_JOBS (default 2), TORCH_CUDA_ARCH_LIST (default "8.0;9.0").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "[cuda_build_check] $*"; }
fail() { say "FAIL $*"; exit 1; }

if ! command -v nvcc >/dev/null 2>&1; then
  if [ "${SIRENPOSE_SKIP_CUDA_CHECK:-0}" = 1 ]; then
    say "SKIPPED (SIRENPOSE_SKIP_CUDA_CHECK=1): nvcc not found, the CUDA build was not checked"
    exit 0
  fi
  fail "nvcc not found on PATH; install the CUDA toolkit, or set SIRENPOSE_SKIP_CUDA_CHECK=1 to skip this check on purpose"
fi
nvcc_cuda="$(nvcc --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')"
[ -n "$nvcc_cuda" ] || fail "cannot read the CUDA version from 'nvcc --version'"

venv="${SIRENPOSE_CUDA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sirenpose-cuda-venv}"
torch_version="${SIRENPOSE_CUDA_TORCH:-2.12.0}"
vpy="$venv/bin/python"
t0=$SECONDS
mkdir -p "$(dirname "$venv")"
(
  flock 9  # one CI run at a time creates or upgrades the shared environment
  [ -x "$vpy" ] || { say "creating $venv"; "${PYTHON:-python3}" -m venv "$venv"; }
  if ! "$vpy" - "$torch_version" <<'EOF' 2>/dev/null
import sys
import numpy, ninja, wheel, setuptools, torch  # noqa: F401  (all present)
sys.exit(0 if torch.__version__.split("+")[0] == sys.argv[1]
         and int(setuptools.__version__.split(".")[0]) < 82 else 1)
EOF
  then
    # setuptools 82+ cannot build against torch 2.12's cpp_extension.
    say "installing torch==$torch_version and the build dependencies into $venv"
    "$vpy" -m pip install -q "torch==$torch_version" numpy ninja "setuptools<82" wheel
  fi
) 9>"$venv.lock"
torch_cuda="$("$vpy" -c 'import torch; print(torch.version.cuda or "")')"
say "environment ready in $((SECONDS - t0)) s: $("$vpy" -c 'import torch; print("torch", torch.__version__)'), nvcc CUDA $nvcc_cuda"
[ -n "$torch_cuda" ] || fail "torch $torch_version in $venv is not a CUDA build; set SIRENPOSE_CUDA_TORCH to a version built for CUDA $nvcc_cuda"
[ "$torch_cuda" = "$nvcc_cuda" ] || fail "torch in $venv is built for CUDA $torch_cuda but nvcc is CUDA $nvcc_cuda; set SIRENPOSE_CUDA_TORCH to a torch built for CUDA $nvcc_cuda"

work="$(mktemp -d)"
# Removed on success; kept (and named) on failure, to look at.
trap 'rc=$?; if [ $rc -eq 0 ]; then rm -rf "$work"; else say "kept $work"; fi' EXIT
mkdir -p "$work/src" "$work/wheel" "$work/site" "$work/run"
# The working tree as committed plus uncommitted edits and new files, without build outputs.
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard \
     | tar --null --ignore-failed-read -T - -cf -) 2>/dev/null | tar -xf - -C "$work/src"
else
  tar -C "$root" --exclude=./.venv --exclude=./build --exclude='*.so' -cf - . | tar -xf - -C "$work/src"
fi

t0=$SECONDS
export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}" MAX_JOBS="${MAX_JOBS:-2}"
say "building the wheel (FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=\"$TORCH_CUDA_ARCH_LIST\" MAX_JOBS=$MAX_JOBS)"
if ! (cd "$work/src" && "$vpy" -m pip wheel -q --no-build-isolation --no-deps -w "$work/wheel" . \
        >"$work/build.log" 2>&1); then
  # The compiler's and ninja's own error lines first (pip buries them under a traceback).
  grep -E -m 40 'error|FAILED:' "$work/build.log" | grep -v -E '^\s*(File |raise |note:)' || true
  echo "    ..."
  tail -n 12 "$work/build.log"
  fail "the CUDA build failed (its error lines and the end of its log are above; the log: $work/build.log)"
fi
say "built in $((SECONDS - t0)) s"
"$vpy" -m zipfile -e "$work"/wheel/sirenpose_loss-*.whl "$work/site"

cd "$work/run"
PYTHONPATH="$work/site" "$vpy" - "$work/site" <<'EOF' || fail "the built extension does not provide every op on CUDA"
import os, subprocess, sys
import torch
import sirenpose_loss as spl

site = sys.argv[1]
assert spl.__file__.startswith(site), f"imported {spl.__file__}, not the wheel under {site}"
assert spl.backend() == "compiled", "the compiled extension did not load"
lib = spl._backend._C.__file__
needed = [line.split("[")[1].rstrip("]") for line in subprocess.run(
    ["readelf", "-d", lib], capture_output=True, text=True).stdout.splitlines() if "(NEEDED)" in line]
cuda_libs = [n for n in needed if "cuda" in n]
print(f"  {os.path.basename(lib)} links {', '.join(cuda_libs) or 'no CUDA library'}")
for want in ("libc10_cuda.so", "libcudart.so"):  # the glue's stream/guard; the kernel launches
    assert any(n.startswith(want) for n in needed), f"{lib} does not link {want}: {needed}"
names = sorted(n for n in torch._C._dispatch_get_all_op_names() if n.startswith("sirenpose_loss::"))
assert names, "no op registered in the sirenpose_loss namespace"
missing = []
for name in names:
    # Every op must run on CUDA (a composite op counts); one with its own CPU kernel needs its
    # own CUDA kernel too.
    runs = torch._C._dispatch_has_computed_kernel_for_dispatch_key(name, "CUDA")
    own_cpu = torch._C._dispatch_has_kernel_for_dispatch_key(name, "CPU")
    own_cuda = torch._C._dispatch_has_kernel_for_dispatch_key(name, "CUDA")
    ok = runs and (own_cuda or not own_cpu)
    print(f"  {'ok  ' if ok else 'FAIL'} {name}: "
          f"{'CUDA kernel' if own_cuda else 'composite' if runs else 'no CUDA kernel'}")
    if not ok:
        missing.append(name)
assert not missing, f"ops without a CUDA kernel: {missing}"
assert spl.cuda_kernels_built(), "cuda_kernels_built() is False"
print(f"  {len(names)} ops, torch {torch.__version__} (CUDA {torch.version.cuda})")
EOF
say "OK: the CUDA extension builds, links and registers a CUDA kernel for every op"
