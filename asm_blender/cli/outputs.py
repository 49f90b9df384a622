"""The files a headless command writes: checked before any work (a wrong path fails in a second, not after a fit),
and written atomically (a temporary name in the same folder, then renamed), so that a failed or stopped command
never leaves half a file under the name asked for."""
from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path

from ..scene_io.mesh import SceneInputError

WRITE_ADVICE = "choose a folder you can write to"


def check_output(path: Path, option: str, suffixes: tuple[str, ...], inputs: tuple[Path, ...] = ()) -> Path:
    """`path` (given with `option`, e.g. "--output") resolved, once it is sure that it can be written: one of
    `suffixes`, not one of `inputs`, not a folder, in a folder that exists or can be made and is writable."""
    path = Path(path).expanduser()
    shown = f"{option} {path}"
    if path.suffix.lower() not in suffixes:
        wanted = f"name it {suffixes[0]}" if len(suffixes) == 1 else f"use one of {', '.join(suffixes)}"
        raise SceneInputError(f"{shown}: {wanted}")
    path = path.resolve()
    if any(_same_file(path, source) for source in inputs):
        raise SceneInputError(f"{shown} is the input file; choose another name (the input is never overwritten)")
    if path.is_dir():
        raise SceneInputError(f"{shown} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise SceneInputError(f"{shown} exists and is read-only; choose another name or make it writable")
    _check_folder(path.parent, shown)
    return path


def check_output_folder(path: Path, option: str) -> Path:
    """A folder a command writes files into (`option`, e.g. "--overlays"), resolved once it is sure that it is a
    folder (or can be made) and is writable."""
    path = Path(path).expanduser().resolve()
    _check_folder(path, f"{option} {path}")
    return path


def _check_folder(folder: Path, shown: str) -> None:
    """The folder exists or can be made: its nearest existing parent is a folder that takes a new file."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise SceneInputError(f"{shown}: {existing} is a file, not a folder; {WRITE_ADVICE}")
    try:
        probe, probe_path = tempfile.mkstemp(prefix=".asm_probe_", dir=existing)
    except OSError as error:
        raise SceneInputError(f"{shown}: cannot write into {existing} ({error.strerror or error}); "
                              f"{WRITE_ADVICE}") from None
    os.close(probe)
    os.remove(probe_path)


def _same_file(path: Path, source: Path) -> bool:
    source = Path(source)
    if not source.exists() or not path.exists():
        return path == source.resolve()
    return os.path.samefile(path, source)


@contextlib.contextmanager
def written_atomically(path: Path):
    """Yields the temporary path to write `path` to, beside it (so that a renamed file stays on the same disk and
    the writer's relative paths stay right); moved to `path` when the block ends without an error, removed
    otherwise. A .gltf, whose .bin the exporter names after it, is written in place and removed with its .bin when
    the block fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gltf":
        try:
            yield path
        except BaseException:
            for written in (path, path.with_suffix(".bin")):
                written.unlink(missing_ok=True)
            raise
        return
    # a name only, no file yet: Blender keeps a file it saves over as a .blend1 backup
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        raise SceneInputError(f"cannot write {path} ({error.strerror or error}); {WRITE_ADVICE}") from None
    finally:
        temporary.unlink(missing_ok=True)
