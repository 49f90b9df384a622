"""The batch's progress line on stderr and its summaries (JSON and Markdown) at the end."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SLOWEST = 5


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """One overall line on stderr: done / failed / running of the jobs this run starts, the elapsed time and an
    estimate of the time left. tqdm draws it when it is installed; else a plain line, redrawn in place on a
    terminal and printed anew (at most every few seconds) when stderr is a file or a pipe."""

    def __init__(self, total: int, workers: int, stream=None):
        self.total, self.workers = total, max(1, workers)
        self.stream = stream or sys.stderr
        self.done = self.failed = self.running = 0
        self.started = time.monotonic()
        self._printed = 0.0
        self._last = ""
        self._terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None and total:
            self._bar = tqdm(total=total, file=self.stream, unit="job", dynamic_ncols=True, smoothing=0)

    def update(self, done: int, failed: int, running: int, force: bool = False) -> None:
        finished_now = done + failed - (self.done + self.failed)
        self.done, self.failed, self.running = done, failed, running
        if not self.total:  # nothing runs: no line
            return
        if self._bar is not None:
            if finished_now > 0:
                self._bar.update(finished_now)
            self._bar.set_postfix_str(f"done {done}, failed {failed}, running {running}", refresh=True)
            return
        line = self.line()
        now = time.monotonic()
        if self._terminal:
            self.stream.write("\r" + line.ljust(len(self._last)))
            self.stream.flush()
        elif force or finished_now > 0 or now - self._printed > 30.0:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._printed = now
        self._last = line

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        finished = self.done + self.failed
        left = self.total - finished
        estimate = "-"
        if finished and left:
            estimate = "~" + duration(elapsed / finished * left)
        elif not left:
            estimate = "0m00s"
        return (f"batch: {finished}/{self.total} jobs (done {self.done}, failed {self.failed}, running "
                f"{self.running}), {duration(elapsed)} elapsed, {estimate} left")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._terminal:
            self.stream.write("\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own above the progress line."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
            return
        if self._terminal and self._last:
            self.stream.write("\r" + " " * len(self._last) + "\r")
        self.stream.write(text + "\n")
        if self._terminal and self._last:
            self.stream.write(self._last)
        self.stream.flush()


def job_entry(name: str, where: str, record: dict | None, ran: bool, log: str | None) -> dict:
    """A job's line of the summary, from its last state record."""
    record = record or {}
    summaries = record.get("summaries") or []
    main = summaries[0] if summaries else {}
    errors = main.get("pixel_error_after") or []
    return {
        "name": name, "where": where, "status": record.get("status", "queued"), "ran": ran,
        "reason": record.get("reason"), "attempts": record.get("attempts"),
        "started": record.get("started_at"), "finished": record.get("finished_at"),
        "seconds": record.get("seconds"),
        "landmark_error_px": round(sum(errors) / len(errors), 2) if errors else None,
        "landmark_error_per_photo": errors or None,
        "bones": main.get("bones"),
        "warnings": [w for s in summaries for w in s.get("warnings", [])] + [
            f"the job's process crashed and ran again: {c}" for c in record.get("crashes") or []],
        "outputs": sorted(record.get("outputs") or {}),
        "log": log,
    }


def summary(manifest: str, state: str, executor: str, workers: int, entries: list[dict],
            invalid: list[dict], wall_seconds: float, stopped: str | None) -> dict:
    ran = [e for e in entries if e["ran"]]
    finished_now = [e for e in ran if e["status"] in ("done", "failed")]
    counts = {status: sum(e["status"] == status for e in entries) for status in ("done", "failed", "queued")}
    timed = sorted((e for e in entries if e["ran"] and e["seconds"] is not None), key=lambda e: -e["seconds"])
    done_now = [e for e in ran if e["status"] == "done"]
    return {
        "manifest": manifest, "state": state, "executor": executor, "workers": workers,
        "stopped": stopped,
        "totals": {"jobs": len(entries) + len(invalid), **counts, "invalid": len(invalid),
                   "ran_now": len(ran), "done_earlier": sum(e["status"] == "done" and not e["ran"] for e in entries),
                   "wall_seconds": round(wall_seconds, 2),
                   "jobs_per_minute": round(len(finished_now) / wall_seconds * 60.0, 2) if wall_seconds > 0 and
                   finished_now else None,
                   "mean_job_seconds": round(sum(e["seconds"] for e in done_now) / len(done_now), 2)
                   if done_now else None},
        "slowest": [{"name": e["name"], "seconds": e["seconds"], "status": e["status"]} for e in timed[:SLOWEST]],
        "failed": [{"name": e["name"], "where": e["where"], "reason": e["reason"], "log": e["log"]}
                   for e in entries if e["status"] == "failed"] + invalid,
        "jobs": entries,
        "invalid": invalid,
    }


def markdown(result: dict) -> str:
    totals = result["totals"]
    lines = [f"# Batch: {Path(result['manifest']).name}", ""]
    if result["stopped"]:
        lines += [f"**Stopped** ({result['stopped']}): run the same command again to go on.", ""]
    lines += [f"{totals['jobs']} jobs: {totals['done']} done ({totals['done_earlier']} of them earlier), "
              f"{totals['failed']} failed, {totals['invalid']} invalid, {totals['queued']} not run; "
              f"{totals['ran_now']} ran now on {result['executor']} ({result['workers']} at once) in "
              f"{duration(totals['wall_seconds'])}"
              + (f", {totals['jobs_per_minute']} jobs per minute" if totals["jobs_per_minute"] else "") + ".", ""]
    if result["failed"]:
        lines += ["## Failed", "", "| job | where | reason | log |", "|---|---|---|---|"]
        lines += [f"| {_cell(f['name'])} | {_cell(f['where'])} | {_cell(f['reason'])} | {_cell(f.get('log'))} |"
                  for f in result["failed"]]
        lines.append("")
    if result["slowest"]:
        lines += ["## Slowest", "", "| job | seconds | status |", "|---|---:|---|"]
        lines += [f"| {_cell(s['name'])} | {s['seconds']} | {s['status']} |" for s in result["slowest"]]
        lines.append("")
    lines += ["## Jobs", "", "| job | status | seconds | attempts | landmark error (px) | warnings | outputs |",
              "|---|---|---:|---:|---:|---|---|"]
    for e in result["jobs"]:
        error = "-" if e["landmark_error_px"] is None else f"{e['landmark_error_px']:.2f}"
        earlier = "" if e["ran"] else " (earlier)"
        seconds = "-" if e["seconds"] is None else e["seconds"]
        lines.append(f"| {_cell(e['name'])} | {e['status']}{earlier} | {seconds} | {e['attempts'] or '-'} | {error} | "
                     f"{_cell('; '.join(e['warnings'])) or '-'} | "
                     f"{_cell(', '.join(Path(o).name for o in e['outputs'])) or '-'} |")
    return "\n".join(lines) + "\n"


def _cell(text) -> str:
    return "" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def write_text(path: Path, text: str) -> None:
    """Written under a temporary name and renamed: a reader never sees half a summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_summaries(folder: Path, result: dict) -> tuple[Path, Path]:
    json_path, markdown_path = folder / "summary.json", folder / "summary.md"
    write_text(json_path, json.dumps(result, indent=1) + "\n")
    write_text(markdown_path, markdown(result))
    return json_path, markdown_path
