"""The state file that makes a batch resumable: JSON lines, one record per change of a job's state, appended and
flushed to disk as it happens (a batch killed outright loses at most the line being written, which is skipped when
read back). A job's state is its last record:

    {"job": "alice", "status": "done", "time": "2026-12-07T04:12:03Z", "spec": "9f2c...", "attempt": 1,
     "started": ..., "finished": ..., "seconds": 41.2, "outputs": {"/abs/out/alice.blend": "<sha256>", ...},
     "reason": null, "summary": {...}, "log": "logs/alice.log"}

status is one of STATUSES. `spec` is a digest of what the job does (its commands and its inputs' sizes and
modification times): a done job whose manifest row or inputs changed runs again.
"""
from __future__ import annotations

import datetime
import json
import os
import threading
from pathlib import Path

from .process import sha256

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATUSES = (QUEUED, RUNNING, DONE, FAILED)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def intact(outputs: dict[str, str]) -> str | None:
    """None when every recorded output is there with its recorded checksum, else what is wrong."""
    if not outputs:
        return "no outputs recorded"
    for path, digest in outputs.items():
        if not Path(path).is_file():
            return f"{path} is missing"
        if sha256(Path(path)) != digest:
            return f"{path} changed since it was written"
    return None


class StateFile:
    """Append-only JSON lines; `latest` is each job's last record. Safe to append from several threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.latest: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.path.is_file():
            with self.path.open("rb") as stream:
                for line in stream:
                    try:
                        record = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError):  # a line cut by a kill: its job runs again
                        continue
                    if isinstance(record, dict) and isinstance(record.get("job"), str):
                        self.latest[record["job"]] = record

    def record(self, job: str, status: str, **fields) -> dict:
        """Append the job's new state (one write of one whole line, synced to disk) and return it."""
        assert status in STATUSES
        record = {"job": job, "status": status, "time": now(), **fields}
        line = (json.dumps(record, default=str) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                while line:
                    line = line[os.write(descriptor, line):]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            self.latest[job] = record
        return record

    def status(self, job: str) -> str | None:
        record = self.latest.get(job)
        return record["status"] if record else None
