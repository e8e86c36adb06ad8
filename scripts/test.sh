#!/usr/bin/env bash
# Sets everything up if needed, then runs the whole test suite against the compiled kernels.
# The session refuses to start if they did not load (SIRENPOSE_TEST_REFERENCE=1 tests the
# pure-PyTorch fallback on purpose instead).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
"$VPY" -m pytest -q tests "$@"
