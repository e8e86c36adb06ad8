#!/usr/bin/env bash
# The examples' first GPU run, in one command (a companion of the package's GPU check):
#
#   bash tools/gpu_check_examples.sh WHEEL [WHEEL_OR_DIR ...] [--out DIR] [--iters N]
#
# GPU machines may have no network, so gsplat comes from the wheel file(s) given: WHEEL is
# gsplat-1.5.3-py3-none-any.whl; the wheels of its own requirements (requirements-gpu.txt)
# are taken from the same folder or from the extra arguments. Gather them on a machine with
# network:  pip download --no-deps -d wheels -r requirements-gpu.txt
#
# Then, in order: builds the package's CUDA kernels if they are missing, probes gsplat (which
# compiles its CUDA kernels the first time, a few minutes), runs tests/test_renderers.py (the
# gsplat-vs-torch parity of images and gradients, and 5 training steps on gsplat), and a short
# `--preset gpu` ablation (--iters per configuration, default 300). Writes to --out (default
# runs/gpu_check_examples): gpu_check_examples.json and .md (the GPU, versions, test counts,
# seconds per iteration and the losses' share of a step for each configuration), the
# ablation's own files and the logs. Without a CUDA GPU it says so in one line and exits 0.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY="$ROOT/.venv/bin/python"
else PY=python3; fi

OUT=runs/gpu_check_examples
ITERS=300
WHEELS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) WHEELS+=("$1"); shift ;;
  esac
done

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "[gpu-check-examples] no CUDA GPU visible to torch ($PY): nothing to check here"
  exit 0
fi
if [ ${#WHEELS[@]} -eq 0 ] || [ ! -f "${WHEELS[0]}" ]; then
  echo "[gpu-check-examples] usage: bash tools/gpu_check_examples.sh path/to/gsplat-1.5.3-py3-none-any.whl [more wheels or folders] [--out DIR] [--iters N]" >&2
  exit 2
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
log() { echo "[gpu-check-examples] $*"; }

# 1. gsplat from the wheel(s), offline: its requirements from the same folders, else alone
LINKS=()
for w in "${WHEELS[@]}"; do
  if [ -d "$w" ]; then LINKS+=(--find-links "$w"); else LINKS+=(--find-links "$(dirname "$w")"); fi
done
log "installing ${WHEELS[0]} (offline)"
if ! "$PY" -m pip install -q --no-index "${LINKS[@]}" "${WHEELS[0]}" > "$OUT/pip.log" 2>&1; then
  log "its requirements are not all among the wheels given: installing the given wheels alone (--no-deps); the probe below names anything still missing"
  FILES=()
  for w in "${WHEELS[@]}"; do [ -f "$w" ] && FILES+=("$w"); done
  "$PY" -m pip install -q --no-index --no-deps "${FILES[@]}" >> "$OUT/pip.log" 2>&1 || { tail -5 "$OUT/pip.log"; exit 3; }
fi

# 2. the package's CUDA kernels
if ! "$PY" -c "import sys, sirenpose_loss as s; sys.exit(0 if s.cuda_kernels_built() else 1)" 2>/dev/null; then
  log "building sirenpose_loss with its CUDA kernels (in place)"
  FORCE_CUDA=1 MAX_JOBS="${MAX_JOBS:-8}" "$PY" setup.py -q build_ext --inplace > "$OUT/build.log" 2>&1 \
    || { tail -20 "$OUT/build.log"; exit 3; }
fi

# 3. the probes (gsplat compiles its kernels here the first time)
START=$(date +%s)
if ! PYTHONPATH="$ROOT/examples:$ROOT" "$PY" -c "
from fourdgs import probes
probes.require_gsplat()
probes.require_package_cuda()" > "$OUT/probe.log" 2>&1; then
  tail -3 "$OUT/probe.log"; exit 3
fi
PROBE_S=$(( $(date +%s) - START ))
log "gsplat and the package's CUDA kernels are ready (${PROBE_S} s, including gsplat's first compilation)"

# 4. the renderer tests, then 5. the short gpu ablation
log "tests/test_renderers.py"
PYTHONPATH="$ROOT" SIRENPOSE_REQUIRE_COMPILED=1 "$PY" -m pytest -q -p no:cacheprovider \
  tests/test_renderers.py --junitxml="$OUT/renderers.xml" > "$OUT/tests.log" 2>&1
TESTS_RC=$?
tail -1 "$OUT/tests.log"
log "ablation --preset gpu --iters $ITERS"
PYTHONPATH="$ROOT" "$PY" examples/ablation.py --preset gpu --seed 0 --iters "$ITERS" --summary-only \
  --out "$OUT/ablation" > "$OUT/ablation.log" 2>&1
ABL_RC=$?
tail -2 "$OUT/ablation.log"

"$PY" - "$OUT" "$ITERS" "$PROBE_S" "$TESTS_RC" "$ABL_RC" <<'PY'
import json, os, sys, xml.etree.ElementTree as ET
import torch
out, iters, probe_s, tests_rc, abl_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
import gsplat
suite = ET.parse(os.path.join(out, "renderers.xml")).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
rows_path = os.path.join(out, "ablation", "ablation.json")
rows = json.load(open(rows_path)) if abl_rc == 0 and os.path.exists(rows_path) else []
record = dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__, cuda=torch.version.cuda,
              gsplat=gsplat.__version__, probe_seconds=probe_s, renderer_tests=counts,
              tests_passed=tests_rc == 0, ablation_completed=abl_rc == 0, iters_per_config=iters,
              ablation=[dict(config=r["config"], sec_per_iter=r["sec_per_iter"],
                             loss_share=r["loss_share"]) for r in rows])
json.dump(record, open(os.path.join(out, "gpu_check_examples.json"), "w"), indent=2)
lines = [f"Examples on {record['gpu']} (torch {record['torch']}, CUDA {record['cuda']}, gsplat "
         f"{record['gsplat']}); probe and gsplat's first compilation: {probe_s} s.", "",
         f"tests/test_renderers.py: {counts['tests']} tests, {counts['failures']} failed, "
         f"{counts['errors']} errors, {counts['skipped']} skipped.", ""]
if rows:
    lines += [f"`--preset gpu`, seed 0, {iters} iterations per configuration:", "",
              "| config | s / iter | loss share |", "|---|---|---|"]
    lines += [f"| {r['config']} | {r['sec_per_iter']:.4f} | {100 * r['loss_share']:.1f} % |" for r in rows]
else:
    lines += ["The ablation did not complete: see ablation.log."]
open(os.path.join(out, "gpu_check_examples.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "wrote $OUT/gpu_check_examples.json and .md"
[ "$TESTS_RC" -eq 0 ] && [ "$ABL_RC" -eq 0 ]
