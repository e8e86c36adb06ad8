#!/usr/bin/env bash
# Compile-checks the CUDA sources without a GPU (and without a CUDA build of torch):
#   every csrc/**/*.cu       with nvcc for sm_80 and sm_90 (-c -o /dev/null), warnings as errors;
#   every csrc/**/*_cuda.cpp with g++ -fsyntax-only against the installed torch's headers.
# Prints one line per file and check; exits non-zero if any fails, and when nvcc is missing unless
# SIRENPOSE_SKIP_CUDA_CHECK=1 asks to skip on purpose. Uses the python on PATH to find torch (CI
# runs it inside the venv).
set -u -o pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v nvcc >/dev/null 2>&1; then
  if [ "${SIRENPOSE_SKIP_CUDA_CHECK:-0}" = 1 ]; then
    echo "check_cuda: SKIPPED (SIRENPOSE_SKIP_CUDA_CHECK=1), nvcc not found: the CUDA sources were not compile-checked"
    exit 0
  fi
  echo "check_cuda: FAIL nvcc not found on PATH; install the CUDA toolkit, or set SIRENPOSE_SKIP_CUDA_CHECK=1 to skip this check on purpose"
  exit 1
fi

cxx="${CXX:-g++}"
# The nvcc on PATH may be a wrapper script: ask nvcc itself where its headers are.
cuda_inc="$(nvcc --dryrun -c -x cu /dev/null 2>&1 | sed -n 's/^#\$ INCLUDES="-I\([^"]*\)".*/\1/p' | head -n1)"
[ -n "$cuda_inc" ] || cuda_inc="${CUDA_HOME:-/usr/local/cuda}/include"
if [ ! -f "$cuda_inc/cuda_runtime_api.h" ]; then
  echo "check_cuda: FAIL cannot find cuda_runtime_api.h (looked in $cuda_inc)"
  exit 1
fi

torch_incs="$(python -c 'import torch.utils.cpp_extension as c; print(" ".join(c.include_paths()))')" || {
  echo "check_cuda: FAIL the python on PATH ($(command -v python)) cannot import torch"
  exit 1
}
# The flags torch's CUDAExtension adds to every nvcc call (no implicit half conversions, ...).
read -r -a torch_nvcc_flags < <(python -c 'import torch.utils.cpp_extension as c; print(" ".join(c.COMMON_NVCC_FLAGS))')

# The CPU wheel of torch ships c10/cuda headers but not the generated cuda_cmake_macros.h.
stub="$(mktemp -d)"
trap 'rm -rf "$stub"' EXIT
mkdir -p "$stub/c10/cuda/impl"
echo '#define C10_CUDA_BUILD_SHARED_LIBS' >"$stub/c10/cuda/impl/cuda_cmake_macros.h"

# Every check runs in the background (the g++ passes over the ATen headers are slow); results
# are printed in a fixed order once all are done.
logs="$stub/logs"
mkdir -p "$logs"
labels=()
start_check() {  # label file command...
  local id="${#labels[@]}"
  labels+=("$1|$2")
  shift 2
  ( "$@" >"$logs/$id.out" 2>&1; echo $? >"$logs/$id.rc" ) &
}

mapfile -t cu_files < <(find csrc -name '*.cu' | sort)
mapfile -t glue_files < <(find csrc -name '*_cuda.cpp' | sort)
if [ "${#cu_files[@]}" -eq 0 ] && [ "${#glue_files[@]}" -eq 0 ]; then
  echo "check_cuda: FAIL no CUDA sources found under csrc/"
  exit 1
fi

for f in "${cu_files[@]}"; do
  for arch in 80 90; do
    start_check "nvcc sm_$arch " "$f" nvcc -std=c++17 -O3 -lineinfo -Icsrc -arch="sm_$arch" \
      "${torch_nvcc_flags[@]}" -DSIRENPOSE_WITH_CUDA --Werror all-warnings \
      -Xcompiler -Wall,-Wextra,-fPIC -c -o /dev/null "$f"
  done
done

inc_flags=(-Icsrc -I"$stub" -I"$cuda_inc")
for d in $torch_incs; do inc_flags+=(-isystem "$d"); done
for f in "${glue_files[@]}"; do
  start_check "g++ syntax" "$f" "$cxx" -std=c++17 -fsyntax-only -Wall -Wextra -Werror \
    -DSIRENPOSE_WITH_CUDA "${inc_flags[@]}" "$f"
done
wait

failures=0
for id in "${!labels[@]}"; do
  label="${labels[$id]%%|*}" file="${labels[$id]#*|}"
  # A check passes when the compiler exits 0 and prints nothing (no warning either).
  if [ "$(cat "$logs/$id.rc")" = 0 ] && [ ! -s "$logs/$id.out" ]; then
    echo "ok    $label $file"
  else
    echo "FAIL  $label $file"
    sed 's/^/      /' "$logs/$id.out"
    failures=$((failures + 1))
  fi
done

if [ "$failures" -ne 0 ]; then
  echo "check_cuda: $failures check(s) failed"
  exit 1
fi
echo "check_cuda: all ${#cu_files[@]} .cu and ${#glue_files[@]} _cuda.cpp files compile cleanly"
