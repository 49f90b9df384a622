#!/usr/bin/env bash
# Create or reuse both environments, then run the default test suite on Blender 4.5 (all tests)
# and the Blender-side tests again on Blender 5.0. Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh main
bash scripts/env.sh bpy50
echo "== tests on Blender 4.5 (bpy module) ==" >&2
.venv/bin/python -m pytest "$@"
echo "== Blender-side tests on Blender 5.0 (bpy module) ==" >&2
.venv-bpy50/bin/python -m pytest tests/blender "$@"
