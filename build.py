"""Build the extension zip: asm_blender (the add-on) with the solver package inside it.

    .venv/bin/python build.py [--output-dir dist]

Uses Blender's own extension builder (blender_ext.py, shipped in the bpy wheel) on a staging folder, so
the manifest is validated the way Blender validates it; falls back to zipfile when it is not available.
Bundling the worker's wheels (torch, mediapipe, OpenCV) per platform comes with the packaging issue.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def find_extension_builder() -> Path | None:
    """Blender's extension builder script, shipped with the bpy module (None without bpy)."""
    try:
        import bpy
    except ImportError:
        return None
    builder = Path(bpy.utils.system_resource('SCRIPTS')) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    return builder if builder.is_file() else None


def stage(folder: Path) -> None:
    shutil.copytree(ROOT / "asm_blender", folder, ignore=IGNORE)
    shutil.copytree(ROOT / "solver", folder / "solver", ignore=IGNORE)
    shutil.copy(ROOT / "blender_manifest.toml", folder / "blender_manifest.toml")
    shutil.copy(ROOT / "LICENSE", folder / "LICENSE")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    args.output_dir.mkdir(parents=True, exist_ok=True)
    output = (args.output_dir / f"{manifest['id']}-{manifest['version']}.zip").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / manifest["id"]
        stage(folder)
        builder = find_extension_builder()
        if builder is not None:
            subprocess.run([sys.executable, str(builder), "build", "--source-dir", str(folder),
                            "--output-filepath", str(output)], check=True)
        else:
            print("Blender's extension builder not found; writing the zip with zipfile", file=sys.stderr)
            with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(folder.rglob("*")):
                    archive.write(path, path.relative_to(folder))
    print(f"{output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}: {output.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
