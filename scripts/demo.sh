#!/usr/bin/env bash
# Sets everything up if needed, then runs the demo: the CPU ablation on the synthetic scene
# (photometric only, +SCL, +KML, +SirenPose, all) and prints its table. PRESET=smoke is quicker.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
"$VPY" examples/losses_tour.py
"$VPY" examples/ablation.py --preset "${PRESET:-cpu}" --seed "${SEED:-0}" --out "${OUT:-runs/ablation}"
