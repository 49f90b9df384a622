"""The results report: runs the evaluation suite and writes docs/results.md with tables, plots and figures.

    .venv/bin/python -m benchmarks.report            # the fast subset (10-11 minutes on 2 cores)
    .venv/bin/python -m benchmarks.report --full     # the full set (an hour or more)

Parts, each in its own process (a part that fails is reported as failed, the others still run):
  multiview   benchmarks.multiview.run: Cycles view sets of each textured scan, the sample rig fitted to them
              (fast: 1, 2, 4 and 8 views at fast quality; full: 1, 2, 3, 4 and 8 views at balanced quality)
  photos      benchmarks.photo_fit_scan: the main job's four sample photos with the photo fit's error budget
              (oracle landmarks, true cameras, the rig's own 3D fit; fast or balanced quality)
  capacity    benchmarks.capacity_sweep: 24 / 52 / 83 bones x K = 1 / 2 / 3 on random ICT faces
              (fast: one face, fitted on 3,000 vertices, 300 refine steps; full: three faces, all vertices, 500)
  generate    benchmarks.generate_speed: Generate Rig end to end at 5k / 25k / 100k vertices
  fit         benchmarks.fit_speed: the photo fit per stage and its peak memory (fast: 4 photos on 5k and 25k
              vertices; full: 1 / 4 / 8 photos on 5k / 25k / 100k)
  forward     benchmarks.forward_speed: sparse (fast path) vs dense LBS forward
  writeback   benchmarks.writeback_speed: weights into Blender vertex groups
  detectors   benchmarks.detector_compare: the face detector on LiteRT against MediaPipe 0.10.21 on every shared
              head's renders and the sample photos (fast: 3 timed runs per image; full: 5)
  batch       benchmarks.batch_throughput: `asm batch` jobs per minute on the local pool with 1 and 2 processes
              against Generate in one process (fast: 6 jobs per run; full: 10)
CSV files go to benchmarks/results/ (not kept in git) and are copied beside the plots and figures in docs/results/.
When docs/results/results.json from an earlier run exists, the report compares its accuracy numbers with this run's
(the re-run check).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import subprocess
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
FIGURES = DOCS / "results"

FAST_EXPRESSIONS = ("jawOpen", "mouthClose", "eyeBlink_L", "eyeSquint_L", "mouthSmile_L", "mouthPucker", "mouthFunnel",
                    "mouthRollLower", "cheekPuff_L", "browInnerUp_L", "browDown_L", "mouthFrown_L")
PARTS = {  # name: (module, fast arguments, full arguments)
    "multiview": ("benchmarks.multiview.run", ["--views", "1", "2", "4", "8", "--quality", "fast"],
                  ["--views", "1", "2", "3", "4", "8", "--quality", "balanced"]),
    "photos": ("benchmarks.photo_fit_scan", ["--quality", "fast"], ["--quality", "balanced"]),
    "capacity": ("benchmarks.capacity_sweep", ["--targets", "1", "--fit-vertices", "3000", "--iterations", "300"],
                 ["--targets", "3", "--fit-vertices", "0", "--iterations", "500"]),
    "generate": ("benchmarks.generate_speed", ["--sizes", "5000", "25000", "100000", "--runs", "1"],
                 ["--sizes", "5000", "25000", "100000", "--runs", "2"]),
    "fit": ("benchmarks.fit_speed", ["--sizes", "5000", "25000", "--photos", "4"],
            ["--sizes", "5000", "25000", "100000", "--photos", "1", "4", "8"]),
    "forward": ("benchmarks.forward_speed", ["--sizes", "5000", "25000", "100000", "--caps", "4", "--repeats", "5"],
                ["--sizes", "5000", "25000", "100000", "--caps", "4", "8", "--repeats", "9"]),
    "writeback": ("benchmarks.writeback_speed", ["--sizes", "5000", "25000", "100000", "--caps", "4", "8",
                                                 "--repeats", "3", "--reference-repeats", "1"],
                  ["--sizes", "5000", "25000", "100000", "--caps", "4", "8"]),
    "expressions": ("benchmarks.expressions", ["--pictures", "--expressions", *FAST_EXPRESSIONS], ["--pictures"]),
    "template": ("benchmarks.template_mixtures", ["--hold-out"], ["--hold-out"]),
    "detectors": ("benchmarks.detector_compare", ["--repeats", "3"], ["--repeats", "5"]),
    "batch": ("benchmarks.batch_throughput", ["--jobs-per-run", "6"], ["--jobs-per-run", "10"]),
}
CSV_OF = {"multiview": "multiview.csv", "photos": "photo_fit_scan.csv", "capacity": "capacity_sweep.csv",
          "generate": "generate_speed.csv", "fit": "fit_speed.csv", "forward": "forward_speed.csv", "writeback": "writeback_speed.csv",
          "expressions": "expressions.csv", "template": "template_mixtures_held_out.csv",
          "detectors": "detector_compare.csv", "batch": "batch_throughput.csv"}
PART_TIMEOUT_S = 3 * 3600


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_part(name: str, full: bool, logs: Path) -> dict:
    module, fast_args, full_args = PARTS[name]
    command = [sys.executable, "-m", module, *(full_args if full else fast_args)]
    if name == "multiview":
        command += ["--figures", str(FIGURES)]
    log(f"== {name}: {' '.join(command[1:])}")
    began = time.perf_counter()
    with (logs / f"{name}.log").open("w") as stream:
        try:
            completed = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stream, text=True,
                                       timeout=PART_TIMEOUT_S)
            code, output = completed.returncode, completed.stdout
        except subprocess.TimeoutExpired:
            code, output = "timeout", ""
    seconds = time.perf_counter() - began
    stream_text = (logs / f"{name}.log").read_text()
    log(f"   {name}: exit {code} after {seconds / 60:.1f} min")
    if code != 0:
        log(stream_text[-2000:])
    return {"name": name, "command": "python -m " + " ".join(command[2:]), "exit": code, "seconds": seconds,
            "stdout": output}


def read_csv(name: str) -> list[dict]:
    path = RESULTS / CSV_OF[name]
    if not path.is_file():
        return []
    with path.open() as stream:
        return list(csv.DictReader(stream))


def number(value, digits: int = 2) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "-"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --- plots -------------------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_views(rows: list[dict], path: Path) -> Path | None:
    if not rows:
        return None
    plt = _pyplot()
    scans = list(dict.fromkeys(r["scan"] for r in rows))
    figure, axes = plt.subplots(1, len(scans), figsize=(5.2 * len(scans), 3.8), squeeze=False)
    for axis, scan in zip(axes[0], scans):
        for fit, style in zip(dict.fromkeys(r["fit"] for r in rows), ("k--", "C1o-", "C0s-")):
            chosen = [r for r in rows if r["scan"] == scan and r["fit"] == fit]
            axis.plot([int(r["views"]) for r in chosen], [float(r["rms_95_mm"]) for r in chosen], style, label=fit)
        axis.set_xlabel("views (photos)")
        axis.set_ylabel("RMS scan to surface, 95 mm crop (mm)")
        axis.set_title(scan)
        axis.set_xticks(sorted({int(r["views"]) for r in rows}))
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_capacity(rows: list[dict], path: Path) -> Path | None:
    if not rows:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for preset, colour in (("game", "C2"), ("standard", "C1"), ("full", "C0")):
        chosen = [r for r in rows if r["model"].startswith(f"ASM {preset},")]
        axis.plot([int(r["parameters"]) for r in chosen], [float(r["mean_mm"]) for r in chosen], "o-", color=colour,
                  label=f"ASM {preset} ({chosen[0]['bones'] if chosen else '?'} bones), K = 1, 2, 3")
        for r in chosen:
            axis.annotate(f"K={r['gaussians_per_bone']}", (int(r["parameters"]), float(r["mean_mm"])), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")
    for r in rows:
        if r["model"].startswith("static"):
            axis.plot(int(r["parameters"]), float(r["mean_mm"]), "kx", markersize=9, label=r["model"])
        if r["model"].startswith("unfitted"):
            axis.axhline(float(r["mean_mm"]), color="grey", linestyle="--", label=r["model"])
    axis.set_xlabel("free parameters per face")
    axis.set_ylabel("mean per-vertex error over the face (mm)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _log_log_axes(axis, ylabel: str) -> None:
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("mesh vertices")
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)


def plot_speed(generate: list[dict], fit: list[dict], forward: list[dict], writeback: list[dict],
               path: Path) -> Path | None:
    if not (generate or fit or forward or writeback):
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    axis = axes[0]
    if generate:
        axis.plot([int(r["vertices"]) for r in generate], [float(r["total_s"]) for r in generate], "o-",
                  label="Generate Rig (end to end)")
    for photos in sorted({int(r["photos"]) for r in fit}):
        chosen = [r for r in fit if int(r["photos"]) == photos]
        axis.plot([int(r["vertices"]) for r in chosen], [float(r["fit_s"]) for r in chosen], "s-",
                  label=f"photo fit, {photos} photo(s)")
    _log_log_axes(axis, "seconds (2 cores)")
    axis = axes[1]
    for label, key in (("fast path", "fast (gather LBS)"), ("dense reference", "dense reference")):
        chosen = [r for r in forward if r["path"] == key and r["k"] == "4"]
        axis.plot([int(r["N"]) for r in chosen], [float(r["forward_backward_ms"]) for r in chosen], "o-",
                  label=f"forward + backward, {label} (cap 4)")
    chosen = [r for r in writeback if r["k"] == "8"]
    axis.plot([int(r["N"]) for r in chosen], [float(r["new_fresh_ms"]) for r in chosen], "^-",
              label="weights into vertex groups (cap 8)")
    _log_log_axes(axis, "milliseconds")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# --- the report --------------------------------------------------------------------------------------------------

def git_state() -> tuple[str, bool]:
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "solver", "asm_blender",
                            "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    return (commit.stdout.strip() or "unknown"), bool(dirty.stdout.strip())


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), "")
    return f"{os.cpu_count()} cores{', ' + model if model else ''}, {platform.system()} {platform.machine()}"


def versions() -> str:
    probe = "import bpy, numpy, torch; print(bpy.app.version_string, numpy.__version__, torch.__version__, sep='|')"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    parts = completed.stdout.strip().splitlines()[-1].split("|") if completed.stdout.strip() else []
    return (f"Blender {parts[0]} (bpy module), numpy {parts[1]}, torch {parts[2]}, Python {platform.python_version()}"
            if len(parts) >= 3 else f"Python {platform.python_version()}")


def accuracy_numbers(multiview: list[dict], capacity: list[dict]) -> dict[str, float]:
    numbers = {f"multiview {r['scan']} {r['views']} views {r['fit']} rms_95_mm": float(r["rms_95_mm"])
               for r in multiview}
    numbers.update({f"capacity {r['model']} mean_mm": float(r["mean_mm"]) for r in capacity})
    return numbers


def rerun_check(previous: dict | None, numbers: dict[str, float]) -> str:
    if not previous:
        return "No earlier report to compare with (docs/results/results.json was not there)."
    old = previous.get("numbers", {})
    shared = [k for k in numbers if k in old]
    if not shared:
        return f"The earlier report ({previous.get('commit')}) measured other rows; nothing to compare."
    gaps = sorted(((abs(numbers[k] - old[k]), k) for k in shared), reverse=True)
    lines = [f"Against the earlier report (commit {previous.get('commit')}, {previous.get('date')}, "
             f"{previous.get('mode')} mode): {len(shared)} accuracy numbers in common, the largest differences:", ""]
    lines.append(table(["number", "earlier", "now", "difference"],
                       [[k, number(old[k], 3), number(numbers[k], 3), number(numbers[k] - old[k], 3)]
                        for _, k in gaps[:6]]))
    lines.append("")
    lines.append(f"Median absolute difference: {number(sorted(g for g, _ in gaps)[len(gaps) // 2], 3)} mm.")
    return "\n".join(lines)


def multiview_section(rows: list[dict], figures: list[Path]) -> str:
    if not rows:
        return "The multi-view part did not run or failed (see its log)."
    out = []
    views = sorted({int(r["views"]) for r in rows})
    fits = list(dict.fromkeys(r["fit"] for r in rows))
    for scan in dict.fromkeys(r["scan"] for r in rows):
        chosen = [r for r in rows if r["scan"] == scan]
        out.append(f"**{scan}** ({chosen[0]['scan_vertices']} vertices), RMS in mm within 95 mm of the nose tip "
                   "(60 mm crop) and landmark NME:\n")
        body = []
        for fit in fits:
            cells = []
            for count in views:
                r = next((r for r in chosen if r["fit"] == fit and int(r["views"]) == count), None)
                cells.append("-" if r is None else f"{number(r['rms_95_mm'])} ({number(r['rms_60_mm'])}), "
                                                   f"{number(r['landmark_nme'], 3)}")
            body.append([fit, *cells])
        out.append(table(["fit", *[f"{v} view{'s' if v > 1 else ''}" for v in views]], body))
        timing = [r for r in chosen if r.get("fit_seconds")]
        faces = {int(r["views"]): int(r["views_with_face"]) for r in chosen}
        missing = [f"{v} views: face found in {faces[v]}" for v in views if faces[v] < v]
        shared = [r for r in timing if r.get("rms_95_mm_shared_pose")]
        out.append("\nRMS 95 mm of the shared pose (without view 1's own expression): " + ", ".join(
            f"{r['views']} views {r['fit'].split(' (')[0]} {number(r['rms_95_mm_shared_pose'])}" for r in shared) + ".")
        out.append("\nFit times (s): " + ", ".join(f"{r['views']} views {r['fit'].split(' (')[0]} "
                                                    f"{number(r['fit_seconds'], 0)}" for r in timing)
                   + (". " + "; ".join(missing) if missing else ".") + "\n")
    out.append("The fitted heads beside each scan, the scan coloured by its distance to each surface (grey: outside "
               "the 95 mm crop); first column: view 1:\n")
    out += [f"![{p.stem}](results/{p.name})\n" for p in figures]
    return "\n".join(out)


def capacity_section(rows: list[dict]) -> str:
    if not rows:
        return "The capacity part did not run (it needs the ICT-FaceKit in ../shared/data) or failed."
    body = [[r["model"], r["bones"] if r["bones"] != "0" else "-", r["gaussians_per_bone"] if r["gaussians_per_bone"]
             != "0" else "-", r["parameters"], number(r["mean_mm"], 3), number(r["rms_mm"], 3),
             number(r["seconds_per_target"], 1)] for r in rows]
    return (f"{rows[0]['targets']} random ICT face(s) fitted vertex to vertex, errors over the kit's face area:\n\n"
            + table(["model", "bones", "K", "parameters", "mean mm", "RMS mm", "s per face"], body)
            + "\n\n![error vs parameters](results/capacity_sweep.png)\n")


def photos_section(rows: list[dict]) -> str:
    if not rows:
        return "The photos part did not run or failed (see its log)."
    unfitted = next((float(r["rms_95_mm"]) for r in rows if r["fit"].startswith("unfitted")), None)
    reach = next((float(r["rms_95_mm"]) for r in rows if "3D fit" in r["fit"]), None)
    body = []
    for r in rows:
        closed = ""
        if unfitted is not None and reach is not None and unfitted > reach and "3D fit" not in r["fit"] \
                and not r["fit"].startswith("unfitted"):
            closed = f"{(unfitted - float(r['rms_95_mm'])) / (unfitted - reach):.0%}"
        body.append([r["fit"], number(r["rms_95_mm"]), number(r["rms_60_mm"]), number(r.get("rms_95_covered_mm")),
                     number(r.get("rms_95_uncovered_mm")), number(r["landmark_nme"], 3), closed,
                     number(r.get("pixel_error"), 1), r.get("focal_ratio", ""), r.get("rotation_error_deg", ""),
                     number(r.get("seconds"), 0)])
    return table(["fit", "RMS 95 mm", "RMS 60 mm", "95 mm: dense-covered", "95 mm: the rest", "lmk NME",
                  "gap closed", "2D px", "focal / true", "rotation error deg", "s"], body)


def batch_section(rows: list[dict]) -> str:
    if not rows:
        return "The batch part did not run or failed (see its log)."
    body = [[r["run"], r["jobs"], number(r["wall_s"], 1), number(r["command_wall_s"], 1), number(r["jobs_per_min"], 1),
             number(r["per_job_s"]), number(r.get("overhead_vs_in_process_s"))] for r in rows]
    return table(["run", "jobs", "wall s", "command s", "jobs per minute", "s per job", "overhead s per job"], body)


def expressions_section(rows: list[dict]) -> str:
    if not rows:
        return "The expressions part did not run (it needs the ICT-FaceKit in ../shared/data) or failed."
    percent = lambda value: f"{float(value):.0%}" if value not in (None, "") else ""  # noqa: E731
    body = [[r["expression"], number(r["own_rms_mm"]), number(r["rms_mm"]), f"{float(r['residual']):.0%}",
             percent(r.get("residual_from_rest")), percent(r.get("residual_shared")),
             f"{float(r['folded']):.2%} ({float(r['folded_target']):.2%})", number(r.get("crease")),
             f"{number(r.get('inside_rms_mm'), 1)} ({number(r.get('inside_max_mm'), 1)})" if r.get("inside_rms_mm")
             else "",
             f"{number(r.get('lip_open_mm'), 1)} of {number(r.get('lip_open_target_mm'), 1)}" if r.get("lip_pairs") else "",
             f"{number(r.get('close_gap_mm'), 1)} ({number(r.get('close_gap_target_mm'), 1)})" if r.get("closing_pairs")
             else ""] for r in rows]
    median = lambda key: statistics.median(float(r[key]) for r in rows if r.get(key) not in (None, ""))  # noqa: E731
    shared = (f", (B) {median('residual_shared'):.0%}, worst (B) fold "
              f"{max(float(r['folded_shared']) for r in rows):.2%}") if rows[0].get("residual_shared") else ""
    crease = (f"; median (A) crease {median('crease'):.2f}" + (f", (B) {median('crease_shared'):.2f}"
                                                              if rows[0].get("crease_shared") else "")
              if rows[0].get("crease") else "")
    return (f"{len(rows)} expressions; median residual (A) {median('residual'):.0%} (from the rest pose "
            f"{median('residual_from_rest'):.0%}){shared}; worst (A) fold {max(float(r['folded']) for r in rows):.2%}"
            f"{crease}:"
            "\n\n"
            + table(["expression", "own RMS mm", "(A) RMS mm", "(A) residual", "(A) from rest", "(B) residual",
                     "(A) folded (target)", "(A) crease", "(A) inside the mouth mm (largest)", "lips open mm (target)",
                     "closing gap mm (target)"], body)
            + "\n\n![target beside the posed rig](results/expressions.png)\n")


def jaw_alone_section(path: Path) -> str:
    """The artist's first test, from benchmarks/expressions.py's expressions_jaw.csv."""
    if not path.is_file():
        return ""
    with path.open() as stream:
        row = next(csv.DictReader(stream))
    return (f"The jaw's hinge lies {float(row['hinge_from_axis_mm']):.1f} mm from the axis the kit's jawOpen turns the "
            f"lower teeth about ({float(row['kit_angle_deg']):.1f} degrees). The jaw bone alone turned by that angle, "
            f"as an artist opens the mouth: residual {float(row['jaw_alone_residual']):.0%}, "
            f"{float(row['jaw_alone_folded']):.2%} of the face's triangles folded, crease "
            f"{number(row['jaw_alone_crease'])}, lips open {number(row.get('jaw_alone_lip_open_mm'), 1)} of "
            f"{number(row.get('jaw_alone_lip_open_target_mm'), 1)} mm, the mouth's inside "
            f"{number(row['jaw_alone_inside_rms_mm'], 1)} mm from the kit's (the lower teeth "
            f"{number(row['teeth_turn_only_mm'], 1)} mm)."
            + (f" The upper lid bone alone turned down, as an artist closes an eye ({number(row['lid_alone_degrees'], 0)}"
               f" degrees, the turn closest to eyeBlink_L): residual {float(row['lid_alone_residual']):.0%}, "
               f"{float(row['lid_alone_folded']):.2%} folded, crease {number(row['lid_alone_crease'])}, the lids "
               f"{number(row.get('lid_alone_close_gap_mm'), 1)} mm apart (the kit's "
               f"{number(row.get('lid_alone_close_gap_target_mm'), 1)})." if "lid_alone_residual" in row else ""))


def template_section(rows: list[dict]) -> str:
    if not rows:
        return "The template part did not run (it needs the ICT-FaceKit in ../shared/data) or failed."
    body = [[r["expression"], number(r["own_rms_mm"]), f"{float(r['residual_drawn']):.0%}",
             f"{float(r['residual_learned']):.0%}", f"{float(r['folded_drawn']):.2%}",
             f"{float(r['folded_learned']):.2%}"] for r in rows]
    drawn = statistics.median(float(r["residual_drawn"]) for r in rows)
    learned = statistics.median(float(r["residual_learned"]) for r in rows)
    return (f"{len(rows)} expressions never seen in the learning; median (A) residual: drawn {drawn:.0%}, learned "
            f"{learned:.0%}:\n\n"
            + table(["expression", "own RMS mm", "(A) drawn", "(A) learned", "folded drawn", "folded learned"], body))


def detectors_section(rows: list[dict]) -> str:
    if not rows:
        return "The detectors part did not run (it needs mediapipe 0.10.21 and ../shared/data) or failed."
    from benchmarks.detector_compare import detector_table

    return ("The same images through the product's detector (MediaPipe's face detection, face landmark and iris "
            "models on LiteRT, `solver/vision/face_models.py`) and through MediaPipe 0.10.21's refined face mesh "
            "(what the product ran before; its attention model does not load in LiteRT): every shared head's "
            "detection renders as Generate makes them, the four sample photos and the real portrait. Distances per "
            "landmark in % of the eye distance (lips: the 80 points the attention model refines; eyes: the lids' 32 "
            "rim points and the 10 iris points); on the sample photos both also against the oracle (the scan's "
            "landmarks projected through the true cameras; found on renders of the scan by MediaPipe's refined face "
            "mesh, so it leans towards MediaPipe). The last column: Generate's landmark steps with LiteRT, and on the "
            "MediaPipe canonical face the distance of its landmarks from the truth (its vertices).\n\n"
            + detector_table(rows) + "\n\nCSV: `docs/results/detector_compare.csv`.")


def speed_section(generate, fit, forward, writeback) -> str:
    out = []
    if generate:
        phases = [k for k in generate[0] if k.endswith("_s") and k != "total_s"]
        out.append("Generate Rig end to end (renders, landmark detection, solver, write-back; the first run of the "
                   "session also starts the worker):\n")
        out.append(table(["vertices", "total s", *[p[:-2] for p in phases]],
                         [[r["vertices"], r["total_s"], *[r.get(p, "") for p in phases]] for r in generate]))
    if fit:
        stages = [k for k in fit[0] if k.endswith("_s") and k not in ("fit_s",)]
        out.append("\nPhoto fit (default, fast quality; place_rig: the solver's part of Generate; peak memory: the "
                   "whole process, bpy and torch included):\n")
        out.append(table(["vertices", "photos", *[s[:-2] for s in stages], "fit s", "peak MB"],
                         [[r["vertices"], r["photos"], *[r.get(s, "") for s in stages], r["fit_s"], r["peak_rss_mb"]]
                          for r in fit]))
    if forward:
        out.append("\nForward pass (weights, cap, kinematics, skinning), milliseconds, median of repeated calls:\n")
        out.append(table(["vertices", "cap", "path", "forward", "forward + backward"],
                         [[r["N"], r["k"], r["path"], number(r["forward_ms"], 1), number(r["forward_backward_ms"], 1)]
                          for r in forward]))
    if writeback:
        out.append("\nWeights into Blender vertex groups (80 bones), milliseconds: the product's write vs the "
                   "per-vertex bmesh loop it replaced:\n")
        out.append(table(["vertices", "cap", "write", "rewrite", "per-vertex loop", "read"],
                         [[r["N"], r["k"], number(r["new_fresh_ms"], 1), number(r["new_rewrite_ms"], 1),
                           number(r["old_fresh_ms"], 1), number(r["new_read_ms"], 1)] for r in writeback]))
    out.append("\n![time vs vertices](results/speed.png)\n")
    out.append("\nCSV: `docs/results/generate_speed.csv`, `fit_speed.csv`, `forward_speed.csv`, "
               "`writeback_speed.csv`.")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the full set instead of the fast subset")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                        help="run only these parts (the report still shows the others' last CSV files)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    FIGURES.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = ROOT / "out" / "report_logs"
    logs.mkdir(parents=True, exist_ok=True)
    previous_path = FIGURES / "results.json"
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else None
    commit, dirty = git_state()
    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs = [run_part(name, args.full, logs) for name in args.parts]

    for name in PARTS:  # the report's numbers stay in git beside it
        if (RESULTS / CSV_OF[name]).is_file():
            shutil.copy(RESULTS / CSV_OF[name], FIGURES / CSV_OF[name])
    for extra in ("expressions.png", "expressions_jaw.csv"):
        if (RESULTS / extra).is_file():
            shutil.copy(RESULTS / extra, FIGURES / extra)
    multiview, capacity = read_csv("multiview"), read_csv("capacity")
    generate, fit, forward, writeback = (read_csv(n) for n in ("generate", "fit", "forward", "writeback"))
    plot_views(multiview, FIGURES / "error_vs_views.png")
    plot_capacity(capacity, FIGURES / "capacity_sweep.png")
    plot_speed(generate, fit, forward, writeback, FIGURES / "speed.png")
    figures = sorted(FIGURES.glob("multiview_*.png"))
    numbers = accuracy_numbers(multiview, capacity)
    mode = "full" if args.full else "fast"
    total_minutes = (time.perf_counter() - began) / 60
    failed = [r["name"] for r in runs if r["exit"] != 0]

    lines = [
        "# ASM Face Rig: evaluation results", "",
        f"Made by `.venv/bin/python -m benchmarks.report{' --full' if args.full else ''}` ({mode} mode) from commit "
        f"`{commit}`{' with uncommitted changes' if dirty else ''} on {started_at}, in {total_minutes:.1f} minutes.",
        f"Machine: {machine()}; {versions()}. Every number below was measured in that run; its CSV files are in "
        "`docs/results/`.", "",
        "Parts run: " + ", ".join(f"{r['name']} ({r['seconds'] / 60:.1f} min{', FAILED' if r['exit'] != 0 else ''})"
                                  for r in runs) + ".", "",
        "## Multi-view accuracy against ground-truth scans", "",
        "Each textured scan (`benchmarks/multiview/scans.json`; drop a folder with a mesh, a colour image and "
        "SOURCE.md into `benchmarks/multiview/scans/` to add one) is rendered with Cycles as a seeded sequence of "
        "views (yaw within +-60 degrees, pitch within +-20, 35-85 mm full-frame lenses, different image sizes, "
        "backdrops and key/fill/rim lights); the n-view set is the sequence's first n views. The rig generated on "
        "the bundled MakeHuman head (another mesh, another person) is fitted to each set by the product's photo "
        f"fit ({'balanced' if args.full else 'fast'} quality), and measured as the field does on Florence MICC: "
        "the scan's landmarks start a similarity, ICP refines it on the scan within 95 mm of the nose tip "
        "(**scale allowed**: photos carry no scale), then the RMS distance from the scan's vertices in that crop "
        "(and a 60 mm crop) to the fitted surface, in mm at the rig's adult scale, and the landmark NME (the 468 "
        "surface landmarks, over the outer-eye-corner distance). Baselines: the unfitted rig (the mean face, "
        "after the same alignment) and a landmarks-only fit. The fitted surface is the one the fit shows in "
        "view 1, with that photo's expression (the CSV's rms_95_mm_shared_pose measures the shared pose without "
        "it). NME counts all 468 surface landmarks, the face outline's too: on the Fran mask those lie on the "
        "scan's cut edge, which puts its NME near twice Lee Perry-Smith's before any fit.", "",
        multiview_section(multiview, figures), "",
        "![error vs views](results/error_vs_views.png)", "",
        "## The main job's photos and the photo fit's error budget", "",
        "The sample rig (MakeHuman head) fitted to the four bundled Cycles photos of the Lee Perry-Smith scan "
        "(`samples/lps_photos`, true cameras in its views.json) by the product's fit, beside the error budget: the "
        "same fit with oracle landmarks (the scan's own, projected through the true cameras), with the true "
        "cameras held fixed, with both, and the rig fitted to the scan itself in 3D (what the rig can reach). "
        "Measured as above; 'gap closed' is the share of the way from the unfitted rig to the rig's 3D fit "
        f"({'balanced' if args.full else 'fast'} quality; focal and rotation per photo against the truth). The "
        "RMS within 95 mm is also split into the skin that dense matching reaches (scan vertices within 3 mm of a "
        "point that stereo matching triangulates from the unfitted surface with the true cameras) and the rest "
        "(smooth skin with too little texture, the eyes, the nostrils, hidden parts):", "",
        photos_section(read_csv("photos")), "",
        "## Capacity: error against parameters", "",
        "Rigs of 24 / 52 / 83 bones (the game, standard and full presets) with K = 1 / 2 / 3 Gaussians per bone, "
        "generated on the ICT-FaceKit head and fitted to random faces of the kit's own morphable model (identity "
        "and three expressions): the 3DMM represents these exactly by construction (it is the upper bound, not a "
        "rival here); static skinning is the full rig with its bone poses only.", "",
        capacity_section(capacity), "",
        "## Expressions: can an artist pose the rig?", "",
        "The rig generated on the whole ICT-FaceKit head (full preset, cap 4; mouth socket, teeth, tongue and eyes "
        "included) is posed into the kit's artist-made expression shapes by its bone poses alone, (A) in "
        "`benchmarks/expressions.py`: what an artist can reach by posing. The full preset's Gaussians are learned "
        "from these same expressions on this same head (`benchmarks/template_mixtures.py`, below), and the pose "
        "fit starts from the expression's learned pose: (A) here is in-sample; the same fit from the rest pose "
        "is beside it, and the held-out check below measures shapes the learning never saw. (B): the rig's "
        "Gaussians and bindings shared by all the expressions of the run, each with its own pose, fitted together. "
        "Over the "
        "kit's face area: the residual RMS as a share of the expression's own RMS displacement, the share of face "
        "triangles turned more than 60 degrees from the target's normal, the creases and ripples a fold misses "
        "(the RMS of the error's uniform Laplacian over that of the expression's own displacement: a smooth "
        "deformation near the target is well below 1), the RMS (and largest) distance over the mouth's inside "
        "(the kit's mouth socket, gums, tongue and teeth), the median opening of lip vertex pairs "
        "the target opens, and the median gap of vertex pairs the target closes (the lids on a blink).", "",
        expressions_section(read_csv("expressions")), "",
        jaw_alone_section(RESULTS / "expressions_jaw.csv"), "",
        "### The template's Gaussians: drawn or learned, on expressions the learning never saw", "",
        "`benchmarks/template_mixtures.py --hold-out` learns the Gaussians from half of the kit's expression "
        "families (both sides of each) and poses the rig made with them, from the rest pose, into the other half, "
        "beside the rig from the hand-drawn ellipses (the product's template learns from all of them):", "",
        template_section(read_csv("template")), "",
        "## Face detector: MediaPipe's models on LiteRT against MediaPipe 0.10.21", "",
        detectors_section(read_csv("detectors")), "",
        "## Speed (2 cores) and memory", "",
        speed_section(generate, fit, forward, writeback), "",
        "## Batches: `asm batch` throughput", "",
        "Generate-only jobs (the game preset on the sample head, its face found on renders) through `asm batch` on "
        "the local pool, each job its own process (Python, bpy, the add-on, the solver worker's torch and face "
        "models), against the same Generate run again and again in one process (the first run starts the solver "
        "worker; the figure is the mean of the later, warm ones). Overhead: a job's mean wall time less a warm "
        "in-process Generate; with 2 processes the two jobs share the 2 cores.", "",
        batch_section(read_csv("batch")), "",
        "## Re-run check", "",
        rerun_check(previous, numbers), "",
    ]
    if failed:
        lines += [f"**Failed parts:** {', '.join(failed)} (logs in `out/report_logs/`).", ""]
    (DOCS / "results.md").write_text("\n".join(lines))
    previous_path.write_text(json.dumps({"commit": commit, "date": started_at, "mode": mode, "numbers": numbers},
                                        indent=1))
    log(f"wrote {(DOCS / 'results.md').relative_to(ROOT)} in {total_minutes:.1f} minutes"
        + (f"; failed parts: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
