"""A batch's manifest, read and validated as a whole before anything runs.

A manifest is one row per head, in TOML, JSON or CSV, or a folder of heads:

    # heads.toml                                   # heads.json
    [defaults]                                     {"defaults": {"preset": "game"},
    preset = "game"                                 "heads": [{"mesh": "alice.obj", "photos": "alice/"}]}
    quality = "fast"
                                                   # heads.csv (photos separated by ";")
    [[head]]                                       name,mesh,photos,preset,output
    name = "alice"                                 alice,alice.obj,alice/,game,out/alice.blend
    mesh = "scans/alice.obj"
    photos = ["photos/alice/"]      # files or folders; none: the rig is generated only
    output = "out/alice.blend"
    glb = "out/alice.glb"           # optional exports
    fbx = "out/alice.fbx"

A row's keys: ROW_KEYS (paths and names) and SETTINGS (choices as the commands take them, asm_protocol.choices).
Relative paths resolve against the manifest's folder. A folder of HEAD.obj (any mesh type) with an optional HEAD/
folder of photos beside each is a manifest too (its outputs go to FOLDER/asm_out/).

`read_manifest` returns the jobs and the problems: every bad row with where it is (the file and line) and why
(a missing file, an unknown setting or value, an output path used twice or not writable).
"""
from __future__ import annotations

import csv
import io
import json
import json.decoder
import json.scanner
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ...protocol import choices
from ...scene_io.mesh import SceneInputError

MESH_SUFFIXES = (".blend", ".obj", ".ply", ".glb", ".gltf", ".fbx")  # as scene_io.importers reads them
MANIFEST_SUFFIXES = (".toml", ".json", ".csv")
FOLDER_OUTPUTS = "asm_out"  # where a folder manifest's outputs go, inside the folder


def _choice(allowed):
    def parse(value):
        if value not in allowed:
            raise ValueError(f"use one of {', '.join(map(str, allowed))}")
        return value
    return parse


def _integer(allowed):
    def parse(value):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"give a whole number, one of {', '.join(map(str, allowed))}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"give a whole number, one of {', '.join(map(str, allowed))}") from None
        if number not in allowed:
            raise ValueError(f"use one of {', '.join(map(str, allowed))}")
        return number
    return parse


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ValueError("give true or false")


def _seconds(value):
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError("give a number of seconds") from None
    if isinstance(value, bool) or not seconds > 0:
        raise ValueError("give a number of seconds above 0")
    return seconds


# setting -> how a value is read; the same names and choices as the generate and fit commands' options
SETTINGS = {
    "preset": _choice(choices.PRESETS),
    "cap": _integer(choices.INFLUENCE_CAPS),
    "gaussians": _integer(list(choices.GAUSSIANS_PER_BONE)),
    "face_direction": _choice((choices.AUTO_DIRECTION, *choices.FACE_DIRECTIONS)),
    "geometry_fallback": _boolean,
    "quality": _choice(choices.QUALITIES),
    "expressions": _choice(choices.EXPRESSION_MODES),
    "same_lens": _boolean,
    "no_texture": _boolean,
    "bake_identity": _boolean,
    "timeout": _seconds,
}
DEFAULTS = {"preset": choices.DEFAULT_PRESET, "cap": choices.DEFAULT_INFLUENCE_CAP,
            "gaussians": choices.DEFAULT_GAUSSIANS_PER_BONE, "face_direction": choices.AUTO_DIRECTION,
            "geometry_fallback": False, "quality": choices.DEFAULT_QUALITY,
            "expressions": choices.DEFAULT_EXPRESSIONS, "same_lens": False, "no_texture": False,
            "bake_identity": False, "timeout": None}
PHOTO_SETTINGS = ("quality", "expressions", "same_lens", "no_texture", "bake_identity")
ROW_KEYS = ("name", "mesh", "object", "photos", "output", "glb", "fbx", "overlays")


class ManifestError(SceneInputError):
    """The manifest as a whole cannot be read (not found, unknown type, a syntax error)."""


@dataclass
class Job:
    """One head's job, every path absolute."""
    name: str
    where: str  # "heads.toml line 12": where the row is, for messages
    mesh: Path
    output: Path
    object: str | None = None
    photos: list[Path] = field(default_factory=list)  # files and folders, as given
    settings: dict = field(default_factory=lambda: dict(DEFAULTS))
    glb: Path | None = None
    fbx: Path | None = None
    overlays: Path | None = None

    @property
    def fits(self) -> bool:
        return bool(self.photos)

    @property
    def timeout(self) -> float | None:
        return self.settings.get("timeout")

    def outputs(self) -> list[Path]:
        return [p for p in (self.output, self.glb, self.fbx, self.overlays) if p is not None]

    def inputs(self) -> list[Path]:
        return [self.mesh, *self.photos]


@dataclass
class Problem:
    where: str
    reason: str
    name: str | None = None  # the row's job name, when it has one
    row: bool = False  # a row's problem (--skip-invalid leaves the row out), else the manifest's (always fatal)

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class Manifest:
    path: Path
    jobs: list[Job]
    problems: list[Problem]
    invalid: list[dict] = field(default_factory=list)  # the rows with problems: name, where, reason

    @property
    def folder(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent

    @property
    def fatal(self) -> list[Problem]:
        """The manifest's own problems (its defaults, an unknown section or column, no rows): never skipped."""
        return [p for p in self.problems if not p.row]


@dataclass
class _Row:
    values: dict
    where: str  # the row's place: "heads.toml line 12"
    key_lines: dict = field(default_factory=dict)  # key -> its own line, where known (TOML)
    name_hint: str | None = None


def read_manifest(path: Path, defaults: dict | None = None, exports: tuple[str, ...] = ()) -> Manifest:
    """The jobs of the manifest `path` (a file or a folder) and its problems. `defaults`: settings that apply
    where neither a row nor the manifest's own defaults give one (the command line's options). `exports`: for a
    folder of heads, "glb" and/or "fbx" exported beside each .blend. ManifestError when the manifest cannot be read
    at all."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ManifestError(f"manifest not found: {path}")
    base_defaults = dict(DEFAULTS)
    problems: list[Problem] = []
    for key, value in (defaults or {}).items():
        if value is not None:
            base_defaults[key] = SETTINGS[key](value)
    if path.is_dir():
        rows, own_defaults, folder_outputs = _folder_rows(path, exports), {}, path / FOLDER_OUTPUTS
        unreadable_rows = []
    else:
        suffix = path.suffix.lower()
        if suffix not in MANIFEST_SUFFIXES:
            raise ManifestError(f"{path.name}: unsupported manifest type {suffix!r}; use a .toml, .json or .csv "
                                "file, or a folder of head meshes")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise ManifestError(f"cannot read the manifest {path} ({getattr(error, 'strerror', None) or error})") \
                from None
        reader = {".toml": _toml_rows, ".json": _json_rows, ".csv": _csv_rows}[suffix]
        rows, own_defaults, file_problems = reader(text, path.name)
        problems += file_problems
        unreadable_rows = [p for p in file_problems if p.row]
        folder_outputs = path.parent
    for key, value in own_defaults.items():
        if key not in SETTINGS:
            problems.append(Problem(f"{path.name} defaults", f"unknown setting {key!r}; {_known_settings()}"))
            continue
        try:
            base_defaults[key] = SETTINGS[key](value)
        except ValueError as error:
            problems.append(Problem(f"{path.name} defaults", f"{key} = {value!r}: {error}"))
    manifest_folder = path if path.is_dir() else path.parent
    jobs: list[Job] = []
    invalid: list[dict] = [_invalid(p.where, p.where, [p]) for p in unreadable_rows]
    for row in rows:
        job, row_problems = _job(row, manifest_folder, folder_outputs, base_defaults)
        if row_problems:
            row_problems = sorted(row_problems, key=_line_number)
            problems += row_problems
            invalid.append(_invalid(row_problems[0].name or row.where, row.where, row_problems))
        else:
            jobs.append(job)
    _name_jobs(jobs)
    duplicates = _duplicate_problems(jobs)
    if duplicates:
        problems += [p for _job, p in duplicates]
        for job in jobs:
            found = [p for j, p in duplicates if j is job]
            if found:
                invalid.append(_invalid(job.name, job.where, found))
        jobs = [j for j in jobs if not any(j is bad for bad, _p in duplicates)]
    if not rows and not problems:
        problems.append(Problem(path.name, "no heads in this manifest" + (
            f"; put mesh files ({', '.join(MESH_SUFFIXES)}) in the folder" if path.is_dir() else
            "; add a row per head (see the README's Batches section)")))
    return Manifest(path, jobs, problems, invalid)


def _line_number(problem: Problem) -> int:
    found = re.search(r" line (\d+)$", problem.where)
    return int(found.group(1)) if found else 0


def _invalid(name: str, where: str, problems: list[Problem]) -> dict:
    return {"name": name, "where": where, "status": "invalid",
            "reason": "; ".join(p.reason if p.where == where else f"{p.where}: {p.reason}" for p in problems),
            "log": None}


def _known_settings() -> str:
    return f"known: {', '.join(ROW_KEYS + tuple(SETTINGS))}"


# --- the formats ------------------------------------------------------------------------------------------------

_TOML_HEADER = re.compile(r"^\s*\[\[\s*(\w+)\s*\]\]")


def _toml_rows(text: str, name: str) -> tuple[list[_Row], dict, list[Problem]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(f"{name}: not valid TOML ({error}); fix that line") from None
    problems = [Problem(f"{name}", f"unknown section {key!r}; use [defaults] and [[head]] tables")
                for key in data if key not in ("defaults", "head")]
    heads = data.get("head", [])
    if not isinstance(heads, list) or not all(isinstance(h, dict) for h in heads):
        raise ManifestError(f"{name}: `head` must be a list of tables, one [[head]] per head")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ManifestError(f"{name}: [defaults] must be a table of settings")
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if (m := _TOML_HEADER.match(line)) and m.group(1) == "head"]
    rows = []
    for index, values in enumerate(heads):
        if len(starts) == len(heads):  # one [[head]] header per row: each row's keys are found below it
            first, last = starts[index], starts[index + 1] if index + 1 < len(starts) else len(lines)
            key_lines = {}
            for number in range(first + 1, last):
                found = re.match(r"^\s*([A-Za-z_][\w-]*)\s*=", lines[number])
                if found and found.group(1) not in key_lines:
                    key_lines[found.group(1)] = f"{name} line {number + 1}"
                if re.match(r"^\s*\[", lines[number]):  # a sub-table: the row's own keys ended
                    break
            rows.append(_Row(values, f"{name} line {first + 1}", key_lines))
        else:  # an inline array of tables: the rows' lines are not known
            rows.append(_Row(values, f"{name} head {index + 1}"))
    return rows, defaults, problems


class _LinedDict(dict):
    line = 0


def _json_rows(text: str, name: str) -> tuple[list[_Row], dict, list[Problem]]:
    decoder = json.JSONDecoder()
    parse_object = json.decoder.JSONObject

    def lined_object(s_and_end, *args, **kwargs):
        source, start = s_and_end
        value, end = parse_object(s_and_end, *args, **kwargs)
        lined = _LinedDict(value)
        lined.line = source.count("\n", 0, start) + 1
        return lined, end

    decoder.parse_object = lined_object
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # the C scanner has no hook for object positions
    try:
        data = decoder.decode(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{name}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                            "fix that line") from None
    problems = []
    if isinstance(data, list):
        heads, defaults = data, {}
    elif isinstance(data, dict):
        problems = [Problem(name, f"unknown key {key!r}; use \"defaults\" and \"heads\"")
                    for key in data if key not in ("defaults", "heads")]
        heads, defaults = data.get("heads", []), data.get("defaults", {})
    else:
        raise ManifestError(f"{name}: give a list of heads, or an object with \"heads\" (and \"defaults\")")
    if not isinstance(heads, list) or not isinstance(defaults, dict):
        raise ManifestError(f"{name}: \"heads\" must be a list of objects and \"defaults\" an object")
    rows = []
    for index, values in enumerate(heads):
        where = f"{name} line {values.line}" if isinstance(values, _LinedDict) else f"{name} head {index + 1}"
        if not isinstance(values, dict):
            problems.append(Problem(where, "a head must be an object with at least \"mesh\"", row=True))
            continue
        rows.append(_Row(dict(values), where))
    return rows, dict(defaults), problems


def _csv_rows(text: str, name: str) -> tuple[list[_Row], dict, list[Problem]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows, problems = [], []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values) or values[0].lstrip().startswith("#"):
            continue  # blank lines and comments
        if header is None:
            header = [v.strip().lower() for v in values]
            unknown = [h for h in header if h not in ROW_KEYS and h not in SETTINGS]
            if unknown:
                problems += [Problem(f"{name} line {line}", f"unknown column {h!r}; {_known_settings()}")
                             for h in unknown]
            if "mesh" not in header:
                raise ManifestError(f"{name} line {line}: the first row must name the columns, with a `mesh` "
                                    "column (e.g. name,mesh,photos,preset,output)")
            continue
        if len(values) > len(header):
            problems.append(Problem(f"{name} line {line}", f"{len(values)} fields for {len(header)} columns; "
                                                           "quote values that hold a comma", row=True))
            continue
        row = {key: value.strip() for key, value in zip(header, values, strict=False)
               if value.strip() != "" and key in ROW_KEYS + tuple(SETTINGS)}
        if "photos" in row:
            row["photos"] = [p.strip() for p in row["photos"].split(";") if p.strip()]
        rows.append(_Row(row, f"{name} line {line}"))
    return rows, {}, problems


def _folder_rows(folder: Path, exports: tuple[str, ...]) -> list[_Row]:
    """HEAD.obj (any mesh type) in `folder`, with HEAD/ beside it as its photos when it holds any; the outputs in
    FOLDER/asm_out/."""
    rows = []
    for mesh in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES):
        values = {"mesh": mesh.name, "name": mesh.stem,
                  **{key: f"{FOLDER_OUTPUTS}/{mesh.stem}.{key}" for key in exports}}
        photos = folder / mesh.stem
        if photos.is_dir() and any(p.suffix.lower() in choices.PHOTO_SUFFIXES for p in photos.iterdir()):
            values["photos"] = [mesh.stem]
        rows.append(_Row(values, f"{folder.name}/{mesh.name}"))
    return rows


# --- a row checked --------------------------------------------------------------------------------------------


def _job(row: _Row, folder: Path, output_folder: Path, defaults: dict) -> tuple[Job | None, list[Problem]]:
    values = row.values
    name = values.get("name")
    name = str(name) if name not in (None, "") else None
    problems: list[Problem] = []

    def problem(reason: str, key: str | None = None) -> None:
        problems.append(Problem(row.key_lines.get(key, row.where) if key else row.where, reason, name, row=True))

    settings = dict(defaults)
    for key, value in values.items():
        if key in ROW_KEYS:
            continue
        if key not in SETTINGS:
            problem(f"unknown setting {key!r}; {_known_settings()}", key)
            continue
        try:
            settings[key] = SETTINGS[key](value)
        except ValueError as error:
            problem(f"{key} = {value!r}: {error}", key)
    for key in ("name", "object"):
        if key in values and not isinstance(values[key], (str, int)):
            problem(f"{key} must be text", key)

    def path_of(key: str) -> Path | None:
        value = values.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            problem(f"{key} must be a path (text)", key)
            return None
        return (folder / Path(value).expanduser()).resolve()

    mesh = path_of("mesh")
    if mesh is None:
        if "mesh" not in values:
            problem("no mesh: give each head's mesh file (mesh = \"HEAD.obj\")")
    elif not mesh.is_file():
        problem(f"missing file: mesh {mesh}" + (" is a folder" if mesh.is_dir() else " not found"), "mesh")
    elif mesh.suffix.lower() not in MESH_SUFFIXES:
        problem(f"mesh {mesh.name}: unsupported file type {mesh.suffix.lower()!r}; use one of "
                f"{', '.join(MESH_SUFFIXES)}", "mesh")
    photos = _photos(values.get("photos"), folder, lambda reason: problem(reason, "photos"))
    fits = bool(photos)
    for key in ("gaussians", "face_direction", "geometry_fallback"):
        if fits and key in values:
            problem(f"{key} applies to heads without photos only (a fit generates a missing rig with preset and cap "
                    "alone); leave it out of this row", key)
    stem = mesh.stem if mesh is not None else "head"
    output = path_of("output") or (output_folder / f"{name or stem}{'_fit' if fits else '_asm'}.blend")
    inputs = tuple(p for p in [mesh, *photos] if p is not None)
    checked = {}
    for key, suffixes in (("output", (".blend",)), ("glb", (".glb",)), ("fbx", (".fbx",))):
        path = output if key == "output" else path_of(key)
        if path is None:
            continue
        try:
            checked[key] = _check_output(path, key, suffixes, inputs)
        except SceneInputError as error:
            problem(str(error), key)
    overlays = path_of("overlays")
    if overlays is not None:
        if not fits:
            problem("overlays need photos: give the head's photos, or leave out overlays", "overlays")
        else:
            try:
                checked["overlays"] = _check_folder(overlays, "overlays")
            except SceneInputError as error:
                problem(str(error), "overlays")
    if problems:
        return None, problems
    job = Job(name=name or "", where=row.where, mesh=mesh, output=checked["output"],
              object=str(values["object"]) if values.get("object") not in (None, "") else None,
              photos=photos, settings=settings, glb=checked.get("glb"), fbx=checked.get("fbx"),
              overlays=checked.get("overlays"))
    return job, []


def _photos(value, folder: Path, problem) -> list[Path]:
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problem("photos must be a path or a list of paths (files or folders)")
        return []
    photos = []
    for given in value:
        path = (folder / Path(given).expanduser()).resolve()
        if path.is_dir():
            if not any(p.suffix.lower() in choices.PHOTO_SUFFIXES for p in path.iterdir()):
                problem(f"photo folder {path} holds no photos ({', '.join(choices.PHOTO_SUFFIXES)})")
        elif not path.is_file():
            problem(f"missing file: photo {path} not found")
        elif path.suffix.lower() not in choices.PHOTO_SUFFIXES:
            problem(f"photo {path.name}: not a photo the fit reads ({', '.join(choices.PHOTO_SUFFIXES)})")
        photos.append(path)
    return photos


def _check_output(path: Path, key: str, suffixes, inputs) -> Path:
    from ..outputs import check_output

    return check_output(path, key, suffixes, inputs)


def _check_folder(path: Path, key: str) -> Path:
    from ..outputs import check_output_folder

    if path.exists() and not path.is_dir():
        raise SceneInputError(f"{key} {path} is a file; give a folder for the overlays")
    return check_output_folder(path, key)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _name_jobs(jobs: list[Job]) -> None:
    """Each job's name: the row's own, else its output's name; a default name used twice gets a number."""
    given = {j.name for j in jobs if j.name}
    taken: set[str] = set()
    for job in jobs:
        if job.name:
            continue
        base = candidate = job.output.stem
        number = 2
        while candidate in given or candidate in taken:
            candidate, number = f"{base}-{number}", number + 1
        job.name = candidate
        taken.add(candidate)


def file_name(name: str) -> str:
    """A job's name as a file name (its log)."""
    return _UNSAFE.sub("_", name).strip("._") or "job"


def _duplicate_problems(jobs: list[Job]) -> list[tuple[Job, Problem]]:
    """Two rows writing the same file (or one writing another's input), or sharing a name: the later row is bad."""
    found = []
    written: dict[Path, Job] = {}
    names: dict[str, Job] = {}
    log_names: dict[str, Job] = {}
    inputs: dict[Path, Job] = {}
    for job in jobs:
        for path in job.inputs():
            inputs.setdefault(path, job)
    for job in jobs:
        reasons = []
        for path in job.outputs():
            if path in written:
                reasons.append(f"duplicate output path {path} (also written by {written[path].where}); give each "
                               "head its own outputs")
            elif path in inputs and inputs[path] is not job:
                reasons.append(f"output {path} is an input of {inputs[path].where}; choose another name")
        if job.name in names:
            reasons.append(f"duplicate name {job.name!r} (also {names[job.name].where}); give each head its own name")
        elif file_name(job.name) in log_names:
            reasons.append(f"name {job.name!r} gives the same log file name as {log_names[file_name(job.name)].name!r} "
                           f"({log_names[file_name(job.name)].where}); rename one")
        if reasons:
            found += [(job, Problem(job.where, reason, job.name, row=True)) for reason in reasons]
            continue
        written.update((path, job) for path in job.outputs())
        names[job.name] = job
        log_names[file_name(job.name)] = job
    return found
