#!/usr/bin/env bash
# Create or reuse the project's environments from pyproject.toml (the one dependency source).
#   bash scripts/env.sh          -> .venv        (Blender 4.5 module, solver, tests)
#   bash scripts/env.sh bpy50    -> .venv-bpy50  (Blender 5.0 module for the Blender-side tests)
#   bash scripts/env.sh bpy53    -> .venv-bpy53  (Python 3.13, Blender 5.3 module, numpy 2: the vision tests)
# An environment is rebuilt only when pyproject.toml changed since it was made.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-main}
case "$flavour" in
    main) venv=.venv; groups="project test"; version=3.11 ;;
    bpy50) venv=.venv-bpy50; groups="bpy50"; version=3.11 ;;
    bpy53) venv=.venv-bpy53; groups="bpy53"; version=3.13 ;;
    *) echo "error: unknown environment '$flavour' (use main, bpy50 or bpy53)" >&2; exit 2 ;;
esac
python=${PYTHON:-python$version}
if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; install Python $version (Debian: apt-get install python$version" \
         "python$version-venv), or name it in PYTHON" >&2
    exit 2
fi
# The face models are not packages: build.py takes them out of the mediapipe wheel into solver/vision/models (kept
# out of git) when they are not there yet.
face_models() { "$venv/bin/python" build.py --models; }
stamp="$venv/.asm-env-stamp"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $flavour"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    face_models
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv ..." >&2
    "$python" -m venv "$venv" || {
        echo "error: could not create $venv; on Debian install python$version-venv" >&2; exit 2; }
fi
# Read the pinned requirement lists straight from pyproject.toml (tomllib is in Python 3.11's stdlib); those that
# [tool.asm-env] no-deps names are prefixed "--no-deps ": they are installed without their dependencies.
mapfile -t requirements < <("$venv/bin/python" - "$groups" <<'PY'
import re, sys, tomllib
document = tomllib.load(open("pyproject.toml", "rb"))
project, no_deps = document["project"], set(document.get("tool", {}).get("asm-env", {}).get("no-deps", []))
for group in sys.argv[1].split():
    for requirement in (project["dependencies"] if group == "project" else project["optional-dependencies"][group]):
        print(("--no-deps " if re.split(r"[=<>!~;\[ ]", requirement)[0] in no_deps else "") + requirement)
PY
)
with_deps=() without_deps=()
for requirement in "${requirements[@]}"; do
    case "$requirement" in
        "--no-deps "*) without_deps+=("${requirement#--no-deps }") ;;
        *) with_deps+=("$requirement") ;;
    esac
done
echo "installing into $venv: ${with_deps[*]}" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${with_deps[@]}"
if [ ${#without_deps[@]} -gt 0 ]; then
    echo "installing into $venv without their dependencies: ${without_deps[*]}" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${without_deps[@]}"
fi
mapfile -t unwanted < <("$venv/bin/python" -c \
    'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb")).get("tool", {}).get("asm-env", {}).get("remove", [])))')
for package in "${unwanted[@]}"; do
    if [ -n "$package" ] && "$venv/bin/python" -m pip show --quiet "$package" >/dev/null 2>&1; then
        echo "removing $package from $venv (pyproject.toml [tool.asm-env] remove)" >&2
        "$venv/bin/python" -m pip uninstall --quiet --yes "$package"
    fi
done
echo "$want" > "$stamp"
face_models
