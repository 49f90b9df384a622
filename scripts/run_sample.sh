#!/usr/bin/env bash
# Create or reuse the environment, then build the ASM rig on the bundled sample head into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh main
.venv/bin/python -m asm_blender sample --output out "$@"
