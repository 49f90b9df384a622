"""Job folders in the system's temporary folder, and the error a solver job ends with."""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..protocol import tasks


class JobError(RuntimeError):
    """The solver reported a failure; `kind` is one of asm_protocol.tasks.ERROR_KINDS."""

    def __init__(self, kind: str, message: str, details: str = ""):
        super().__init__(message)
        self.kind, self.details = kind, details


def folder_error(folder: Path | str, error: OSError) -> JobError:
    return JobError(tasks.INPUT_ERROR, f"cannot write the solver's job folder {str(folder)!r} "
                                       f"({error.strerror or error}); make it writable, or point the TMPDIR "
                                       "environment variable at a writable folder and restart Blender")


def make_folder(prefix: str) -> Path:
    """A new folder for a job (or the worker's queue) in the system's temporary folder; JobError naming the folder
    when it cannot be made there (not writable, full, missing)."""
    parent = tempfile.gettempdir()
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as error:
        raise folder_error(parent, error) from error
