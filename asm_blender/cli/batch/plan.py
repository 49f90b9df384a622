"""A manifest's job turned into what runs: the command lines of its steps (the existing commands, each with
--json), the staged names of its outputs, its environment and its digest."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from pathlib import Path

from ..stopping import STOP_WITH_PARENT
from ...jobs.job import WORKER_STOPPED
from .manifest import Job, file_name

ADDON_PARENT = Path(__file__).resolve().parents[2]  # the folder `python -m asm_blender` needs on its path


def command_prefix() -> list[str]:
    """How a job's process runs a command: this Blender (`blender -b -c asm ...`) when the batch itself runs in
    Blender, else this Python with the bpy module (`python -m asm_blender ...`). ASM_BATCH_BLENDER gives the Blender
    to run instead, with its options if any (e.g. "/opt/blender/blender --addons NAME")."""
    given = os.environ.get("ASM_BATCH_BLENDER")
    if given:
        return [*shlex.split(given), "-b", "-c", "asm"]
    import bpy

    if bpy.app.binary_path:  # empty in the bpy module
        return [bpy.app.binary_path, "-b", "-c", "asm"]
    return [sys.executable, "-m", "asm_blender"]


def staged(final: Path) -> Path:
    """The name an output is written under until its job is done: hidden, beside the final one (same disk, and a
    .blend's relative paths stay right)."""
    return final.with_name(f".{final.stem}.batch-partial{final.suffix}")


def steps(job: Job, prefix: list[str]) -> list[dict]:
    s = job.settings
    blend = str(staged(job.output))
    rig = ["--preset", s["preset"], "--cap", str(s["cap"])] + (["--object", job.object] if job.object else [])
    if job.fits:
        argv = [*prefix, "fit", str(job.mesh), *map(str, job.photos), "-o", blend, *rig,
                "--quality", s["quality"], "--expressions", s["expressions"]]
        argv += [flag for key, flag in (("same_lens", "--same-lens"), ("no_texture", "--no-texture"),
                                        ("bake_identity", "--bake-identity")) if s[key]]
        if job.glb is not None:  # the fit exports it itself: one process less
            argv += ["--glb", str(staged(job.glb))]
        if job.overlays is not None:
            argv += ["--overlays", str(staged(job.overlays))]
        found = [{"what": "fit", "argv": argv + ["--json"]}]
    else:
        argv = [*prefix, "generate", str(job.mesh), "-o", blend, *rig, "--gaussians", str(s["gaussians"]),
                "--face-direction", s["face_direction"]]
        argv += ["--geometry-fallback"] if s["geometry_fallback"] else []
        found = [{"what": "generate", "argv": argv + ["--json"]}]
    for export in ([] if job.fits else [job.glb]) + [job.fbx]:
        if export is not None:
            found.append({"what": f"export {export.suffix[1:]}",
                          "argv": [*prefix, "export", blend, "-o", str(staged(export)), "--json"]})
    return found


def environment(threads: int) -> dict[str, str]:
    """What a job's processes get on top of the batch's own environment: the add-on on the path (a checkout),
    `threads` threads for torch's and the maths libraries' pools, and the order to stop when the batch is gone."""
    paths = [str(ADDON_PARENT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    count = str(threads)
    return {"PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": count, "MKL_NUM_THREADS": count,
            "OPENBLAS_NUM_THREADS": count, STOP_WITH_PARENT: "1"}


def payload(job: Job, prefix: list[str], logs: Path, threads: int, timeout: float | None,
            grace: float = 15.0) -> dict:
    """The job as process.run_job takes it (plain data: it also travels to Ray's workers)."""
    found = steps(job, prefix)
    outputs = job.outputs()
    return {"name": job.name, "where": job.where, "steps": found, "env": environment(threads),
            "cwd": str(job.mesh.parent), "log": str(logs / f"{file_name(job.name)}.log"),
            "timeout": job.timeout if job.timeout is not None else timeout,
            "staged": [[str(staged(p)), str(p)] for p in outputs], "retries": 1, "grace": grace,
            "crash_errors": [WORKER_STOPPED],
            "spec": digest(job, found, len(prefix))}


def digest(job: Job, found: list[dict], prefix_length: int) -> str:
    """What the job does, as a digest: its steps without the program that runs them (the same job started from
    Blender or from Python is the same job), and its inputs' sizes and modification times."""
    inputs = []
    for path in job.inputs():
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            info = file.stat()
            inputs.append([str(file), info.st_size, info.st_mtime_ns])
    text = json.dumps({"steps": [s["argv"][prefix_length:] for s in found], "inputs": inputs})
    return hashlib.sha256(text.encode()).hexdigest()[:16]
