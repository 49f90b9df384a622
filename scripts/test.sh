#!/usr/bin/env bash
# Create or reuse the environments, then run the default test suite on Blender 4.5 (all tests), the Blender-side
# tests again on Blender 5.0, and the suite on Blender 5.3 with Python 3.13 and numpy 2 (Blender 5.1 and later).
# Extra arguments go to every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh main
bash scripts/env.sh bpy50
# Blender 5.3 needs Python 3.13: PYTHON313, else a python3.13 on the path that runs, else pyenv's newest 3.13 (its
# shim on the path fails where 3.13 is installed but not selected).
find_python313() {
    local candidate
    for candidate in ${PYTHON313:-} python3.13 $(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.13*/bin/python3.13 2>/dev/null | sort -V -r); do
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
            command -v "$candidate"
            return
        fi
    done
}
python313=$(find_python313)
if [ -n "$python313" ]; then
    PYTHON="$python313" bash scripts/env.sh bpy53
fi
echo "== tests on Blender 4.5 (bpy module) ==" >&2
.venv/bin/python -m pytest "$@"
# Not the batch's tests on 5.0: it runs the same Python (3.11) as 4.5, and the batch's own code is plain Python that
# starts the commands as processes; 4.5 and 5.3 run them.
echo "== Blender-side tests on Blender 5.0 (bpy module) ==" >&2
.venv-bpy50/bin/python -m pytest tests/blender --ignore=tests/blender/test_batch.py "$@"
if [ -z "$python313" ]; then
    echo "== Blender 5.3 skipped: no python3.13 here (install Python 3.13, e.g. with pyenv, or name it in" \
         "PYTHON313) ==" >&2
    exit 0
fi
# The scan fit's own tests run on 4.5 only: the same torch runs the same code on 5.3, where the sample command's
# test runs the scan fit (and Generate and the photo fit) end to end.
echo "== tests on Blender 5.3 (bpy module, Python 3.13, numpy 2) ==" >&2
.venv-bpy53/bin/python -m pytest --deselect tests/solver/test_scan_fit.py::test_the_sample_rig_fits_the_bundled_scan \
    --deselect tests/solver/test_scan_fit.py::test_without_smoothness_the_fit_folds_the_face "$@"
