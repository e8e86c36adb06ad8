#!/usr/bin/env bash
# Sets everything up if needed, then runs the whole test suite against the compiled kernels
# (SIRENPOSE_REQUIRE_COMPILED=1 makes a silent fallback to the reference a failure).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
SIRENPOSE_REQUIRE_COMPILED=1 "$VPY" -m pytest -q tests "$@"
