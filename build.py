"""Build the extension: one zip per platform with asm_blender (the add-on), the solver and asm_protocol packages
inside it and the solver worker's wheels that blender_manifest.toml lists.

    python build.py                        # this machine's platform (linux-x64 here)
    python build.py --platform all         # every platform in the manifest (downloads their wheels)
    python build.py --platform windows-x64 --platform macos-arm64
    python build.py --no-wheels            # the add-on and solver only (the worker then needs its own Python)
    python build.py --list                 # what each platform needs and whether its wheels are here
    python build.py --check                # whether the package index has every platform's wheels (no download)
    python build.py --models               # only put the face models into solver/vision/models (scripts/env.sh)

The manifest's `wheels` are the one list of what is bundled: each file is downloaded by name and version with
`pip download --no-deps --only-binary :all:` for the tags in its own file name into ./wheels (kept out of git;
pip's own sources are used, so a machine with a local wheel source, such as the CPU build of torch, takes it from
there). Blender's own extension builder (blender_ext.py, shipped with the bpy module) validates the manifest and
writes the zips with --split-platforms; without it a zipfile fallback writes the same layout. Prints each zip's
size. Exit code 1 names the wheels that could not be had (no network, a wheel missing from the index).

The face models (solver/vision/model_files.py) are MediaPipe 0.10.21's model files with its Apache-2.0 licence,
taken out of the mediapipe wheel into solver/vision/models (kept out of git) before anything is staged: from this
interpreter's installed mediapipe 0.10.21, else from its wheel (downloaded into ./wheels like the others). The zips
carry them inside the solver package; nothing is downloaded at run time.
"""
from __future__ import annotations

import argparse
import os
import platform as platform_module
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from solver.vision import model_files  # noqa: E402  (standard library only)

MANIFEST = ROOT / "blender_manifest.toml"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")
PYTHON_VERSION = "3.11"  # Blender 4.2 to 5.0
UNSUPPORTED = {  # Blender platforms without a zip, and why
    "macos-x64": "no torch 2.13 wheel for Intel macOS",
    "linux-arm64": "no ai-edge-litert 2.3.0 wheel for Linux on ARM (Python 3.11)",
    "windows-arm64": "no ai-edge-litert 2.3.0 wheel for Windows on ARM",
}


def wheel_platforms(filename: str, known: list[str]) -> list[str]:
    """The Blender platforms (of `known`) a wheel file serves, from its platform tags (as Blender's builder reads
    them: `any` serves all, universal2 both macOS kinds)."""
    tags = Path(filename).stem.split("-")[-1].split(".")
    found = set()
    for tag in tags:
        if tag == "any":
            return list(known)
        system = ("linux" if tag.startswith(("manylinux", "musllinux", "linux")) else
                  "macos" if tag.startswith("macosx") else "windows" if tag.startswith("win") else None)
        machine = ("x64" if tag.endswith(("x86_64", "amd64")) else
                   "arm64" if tag.endswith(("arm64", "aarch64")) else
                   "universal2" if tag.endswith("universal2") else None)
        if system is None or machine is None:
            continue
        found |= {f"{system}-x64", f"{system}-arm64"} if machine == "universal2" else {f"{system}-{machine}"}
    return [p for p in known if p in found]


def this_platform() -> str:
    system = {"darwin": "macos"}.get(sys.platform, "windows" if sys.platform.startswith("win") else "linux")
    machine = platform_module.machine().lower()
    return f"{system}-{'arm64' if machine in ('arm64', 'aarch64') else 'x64'}"


def pip_download_command(filename: str, folder: Path) -> list[str]:
    """The `pip download` that fetches exactly this wheel file (its name, version, ABI and platform tags)."""
    parts = Path(filename).stem.split("-")
    name, version, abi, platforms = parts[0], parts[1], parts[-2], parts[-1].split(".")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
               "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", abi, "--dest", str(folder)]
    for tag in platforms:
        command += ["--platform", tag]
    return command + [f"{name.replace('_', '-')}=={version}"]


def check_wheels(filenames: list[str]) -> list[str]:
    """Ask the package index (pip's resolver, metadata only: no wheel is downloaded) which file it would give for
    each wheel; returns the ones it would not give (missing from the index, or another file)."""
    import json

    unavailable = []
    with tempfile.TemporaryDirectory() as tmp:
        for filename in filenames:
            command = pip_download_command(filename, Path(tmp))
            at = command.index("download")
            command[at:at + 1] = ["install", "--dry-run", "--ignore-installed", "--target", str(Path(tmp) / "t"),
                                  "--quiet", "--report", str(Path(tmp) / "report.json")]
            command.remove("--dest")
            command.remove(str(Path(tmp)))
            completed = subprocess.run(command, capture_output=True, text=True)
            found = None
            if completed.returncode == 0:
                report = json.loads((Path(tmp) / "report.json").read_text())
                found = report["install"][0]["download_info"]["url"].rsplit("/", 1)[-1].replace("%2B", "+")
            print(f"  {'ok     ' if found == filename else 'MISSING'} {filename}"
                  + ("" if found in (None, filename) else f" (the index gives {found})"), flush=True)
            if found != filename:
                unavailable.append(filename)
    return unavailable


def fetch_wheels(filenames: list[str], folder: Path) -> list[str]:
    """Download the wheels not yet in `folder`; returns the ones that could not be had."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = []
    for filename in filenames:
        if (folder / filename).is_file():
            continue
        print(f"downloading {filename}", file=sys.stderr, flush=True)
        completed = subprocess.run(pip_download_command(filename, folder), capture_output=True, text=True)
        if not (folder / filename).is_file():
            last = (completed.stderr.strip().splitlines() or ["pip found another file"])[-1]
            print(f"  could not get {filename}: {last}", file=sys.stderr)
            missing.append(filename)
    return missing


# any platform's wheel holds the same model files (their digests are checked)
MEDIAPIPE_WHEEL = f"mediapipe-{model_files.MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"


def installed_mediapipe() -> Path | None:
    """The folder that holds this interpreter's mediapipe package, when it is version MEDIAPIPE_VERSION."""
    from importlib import metadata

    try:
        distribution = metadata.distribution("mediapipe")
    except metadata.PackageNotFoundError:
        return None
    return Path(distribution.locate_file("")) if distribution.version == model_files.MEDIAPIPE_VERSION else None


def extract_models(folder: Path, wheels_dir: Path) -> str | None:
    """Put the face model files and MediaPipe's licence into `folder` unless they are there already; returns what
    went wrong (None when all is in place)."""
    if model_files.complete(folder):
        return None
    installed = installed_mediapipe()
    if installed is not None:
        source, read = f"the installed mediapipe ({installed})", lambda inside: (installed / inside).read_bytes()
    else:
        if fetch_wheels([MEDIAPIPE_WHEEL], wheels_dir):
            return f"the face models come from {MEDIAPIPE_WHEEL}, which could not be downloaded (see above)"
        source, read = MEDIAPIPE_WHEEL, zipfile.ZipFile(wheels_dir / MEDIAPIPE_WHEEL).read
    folder.mkdir(parents=True, exist_ok=True)
    for name, (inside, digest) in model_files.MODEL_FILES.items():
        data = read(inside)
        if model_files.sha256(data) != digest:
            return f"{inside} in {source} is not the expected file (SHA-256 {digest})"
        (folder / name).write_bytes(data)
    (folder / model_files.LICENCE_FILE).write_bytes(read(model_files.WHEEL_LICENCE))
    print(f"face models taken from {source} into {shown(folder)}", file=sys.stderr)
    return None


def find_extension_builder() -> tuple[str, Path] | None:
    """(a Python that can run it, Blender's extension builder script): from this interpreter's bpy module, else
    from the project's .venv; None without either."""
    probe = ("import bpy, pathlib; print(pathlib.Path(bpy.utils.system_resource('SCRIPTS')) / 'addons_core' / "
             "'bl_pkg' / 'cli' / 'blender_ext.py')")
    for python in (sys.executable, str(ROOT / ".venv" / "bin" / "python")):
        if not Path(python).is_file():
            continue
        completed = subprocess.run([python, "-c", probe], capture_output=True, text=True)
        builder = Path(completed.stdout.strip().splitlines()[-1]) if completed.returncode == 0 and completed.stdout.strip() else None
        if builder is not None and builder.is_file():
            return python, builder
    return None


def staged_manifest(text: str, platforms: list[str], wheels: list[str]) -> str:
    """The manifest with `platforms` and `wheels` narrowed to what this build bundles (none: both left out)."""
    def listing(key: str, values: list[str]) -> str:
        return f"{key} = [\n" + "".join(f'  "{v}",\n' for v in values) + "]" if values else ""

    for key, values in (("platforms", platforms), ("wheels", wheels)):
        text, count = re.subn(rf"^{key} = \[.*?\]", lambda _m: listing(key, values), text, flags=re.S | re.M)
        if count != 1:
            raise SystemExit(f"error: {MANIFEST.name} must hold one `{key} = [...]` list")
    return text


def stage(folder: Path, manifest_text: str, wheels: list[str], wheels_dir: Path) -> None:
    shutil.copytree(ROOT / "asm_blender", folder, ignore=IGNORE)
    shutil.copytree(ROOT / "solver", folder / "solver", ignore=IGNORE)
    # The one package both sides import: the add-on reaches it as its own subpackage (asm_blender/protocol.py),
    # the worker as a top-level package beside `solver` (the extension's folder is on its path).
    shutil.copytree(ROOT / "asm_protocol", folder / "asm_protocol", ignore=IGNORE)
    (folder / "blender_manifest.toml").write_text(manifest_text)
    shutil.copy(ROOT / "LICENSE", folder / "LICENSE")
    if wheels:
        (folder / "wheels").mkdir()
    for wheel in wheels:
        source, target = wheels_dir / Path(wheel).name, folder / "wheels" / Path(wheel).name
        try:
            os.link(source, target)  # no copy of several hundred MB where the file system allows it
        except OSError:
            shutil.copy(source, target)


def zip_fallback(folder: Path, manifest: dict, platforms: list[str], output_dir: Path) -> list[Path]:
    """What `blender_ext.py build --split-platforms` writes, without Blender: one zip per platform with that
    platform's wheels and the generated build section in its manifest."""
    written = []
    wheels = manifest.get("wheels", [])
    for platform in platforms or [None]:
        suffix = f"-{platform.replace('-', '_')}" if platform else ""
        output = output_dir / f"{manifest['id']}-{manifest['version']}{suffix}.zip"
        own = [w for w in wheels if platform is None or platform in wheel_platforms(w, [platform])]
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                relative = path.relative_to(folder).as_posix()
                if path.is_dir() or (relative.startswith("wheels/") and f"./{relative}" not in own):
                    continue
                if relative == "blender_manifest.toml" and platform:
                    generated = (f'\n\n[build.generated]\nplatforms = ["{platform}"]\nwheels = ['
                                 + ", ".join(f'"{w}"' for w in own) + "]\n")
                    archive.writestr(relative, path.read_text() + generated)
                else:
                    archive.write(path, relative, zipfile.ZIP_STORED if path.suffix == ".whl" else zipfile.ZIP_DEFLATED)
        written.append(output)
    return written


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist", help="where the zips go (default: dist)")
    parser.add_argument("--wheels-dir", type=Path, default=ROOT / "wheels",
                        help="the wheel cache (default: wheels, kept out of git)")
    parser.add_argument("--platform", action="append", metavar="NAME",
                        help="a platform of the manifest, or all (default: this machine's); repeat for several")
    parser.add_argument("--no-wheels", action="store_true", help="build one zip of the add-on and solver only")
    parser.add_argument("--list", action="store_true", help="list each platform's wheels and whether they are here")
    parser.add_argument("--check", action="store_true",
                        help="ask the package index for every platform's wheels (metadata only) and say which it lacks")
    parser.add_argument("--models", action="store_true",
                        help="only put the face models into solver/vision/models (from the mediapipe wheel)")
    parser.add_argument("--zipfile", action="store_true",
                        help="write the zips with Python's zipfile even where Blender's builder is found")
    args = parser.parse_args(argv)

    text = MANIFEST.read_text()
    manifest = tomllib.loads(text)
    known = manifest.get("platforms", [])
    wheels = manifest.get("wheels", [])
    requested = args.platform or [this_platform()]
    platforms = known if "all" in requested else requested
    unknown = [p for p in platforms if p not in known]
    if args.check:
        unavailable = check_wheels([Path(w).name for w in wheels])
        print(f"{len(wheels) - len(unavailable)} of {len(wheels)} wheels available"
              + (": missing " + ", ".join(unavailable) if unavailable else ""))
        return 1 if unavailable else 0
    problem = None if args.list else extract_models(model_files.MODELS_DIR, args.wheels_dir)
    if problem or args.models:
        if problem:
            print(f"error: {problem}", file=sys.stderr)
        return 1 if problem else 0
    if args.list:
        for platform, why in UNSUPPORTED.items():
            print(f"{platform}: no zip ({why})")
        for platform in known:
            own = [Path(w).name for w in wheels if platform in wheel_platforms(w, known)]
            here = sum((args.wheels_dir / w).is_file() for w in own)
            print(f"{platform}: {len(own)} wheels, {here} already in {shown(args.wheels_dir)}")
            for wheel in own:
                print(f"  {'here   ' if (args.wheels_dir / wheel).is_file() else 'missing'} {wheel}")
        return 0
    if args.no_wheels:
        platforms, bundled = [], []
    elif unknown:
        why = "; ".join(f"{p}: {UNSUPPORTED[p]}" for p in unknown if p in UNSUPPORTED)
        print(f"error: no wheels listed for {', '.join(unknown)}; the manifest's platforms are {', '.join(known)}"
              + (f" ({why})" if why else ""), file=sys.stderr)
        return 2
    else:
        bundled = [w for w in wheels if set(wheel_platforms(w, known)) & set(platforms)]
        missing = fetch_wheels([Path(w).name for w in bundled], args.wheels_dir)
        if missing:
            print("error: these wheels could not be downloaded (the network or the package index is needed for "
                  "them, see above):\n  " + "\n  ".join(missing), file=sys.stderr)
            return 1

    args.output_dir.mkdir(parents=True, exist_ok=True)
    output_dir = args.output_dir.resolve()
    staged_text = staged_manifest(text, platforms, bundled)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / manifest["id"]
        stage(folder, staged_text, bundled, args.wheels_dir)
        builder = None if args.zipfile else find_extension_builder()
        if builder is not None:
            python, script = builder
            command = [python, str(script), "build", "--source-dir", str(folder), "--output-dir", str(output_dir)]
            completed = subprocess.run(command + (["--split-platforms"] if platforms else []), capture_output=True,
                                       text=True)
            if completed.returncode != 0:
                print(completed.stdout + completed.stderr, file=sys.stderr)
                return 1
            suffixes = [f"-{p.replace('-', '_')}" for p in platforms] or [""]
            written = [output_dir / f"{manifest['id']}-{manifest['version']}{s}.zip" for s in suffixes]
            for archive in written:  # the archive as Blender reads it when installing
                completed = subprocess.run([python, str(script), "validate", str(archive)], capture_output=True,
                                           text=True)
                if completed.returncode != 0:
                    print(f"error: {archive.name} does not validate:\n{completed.stdout}{completed.stderr}",
                          file=sys.stderr)
                    return 1
        else:
            why = "--zipfile" if args.zipfile else "Blender's extension builder not found (no bpy module here or in .venv)"
            print(f"{why}: writing the zips with zipfile, not validated by Blender", file=sys.stderr)
            written = zip_fallback(folder, tomllib.loads(staged_text), platforms, output_dir)
    for archive in written:
        with zipfile.ZipFile(archive) as opened:
            inside = [i for i in opened.infolist() if i.filename.startswith("wheels/")]
        print(f"{shown(archive)}: {archive.stat().st_size / 1e6:.1f} MB ({len(inside)} wheels, "
              f"{sum(i.file_size for i in inside) / 1e6:.1f} MB of them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
